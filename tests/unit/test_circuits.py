"""topo_mi.circuits: graph construction, paths, masks, results, export, plots, errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import topo_mi.circuits as C
from topo_mi.errors import InvalidParameterError, ResourceError, UnknownNameError


# -- small stand-ins (independent of topo_mi.models) ---------------------------------------------------

def _mlp(dims=(5, 7, 6, 3), act=nn.ReLU, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    mods = []
    for i in range(len(dims) - 1):
        lin = nn.Linear(dims[i], dims[i + 1], bias=bias)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / np.sqrt(dims[i]))
            if bias:
                lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=g))
        mods.append(lin)
        if act is not None and i < len(dims) - 2:
            mods.append(act())
    return nn.Sequential(*mods)


class _Block(nn.Module):
    def __init__(self, d, dt):
        super().__init__()
        self.linear, self.act, self.dt = nn.Linear(d, d), nn.Tanh(), dt

    def forward(self, h):
        return h + self.dt * self.act(self.linear(h))


class _Residual(nn.Module):
    """Stand-in for topo_mi.models.ResidualMLP (same children and forward)."""

    def __init__(self, in_dim=4, d=6, n_blocks=2, out_dim=3, dt=0.5, seed=0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Linear(in_dim, d)
            self.blocks = nn.ModuleList(_Block(d, dt) for _ in range(n_blocks))
            self.out = nn.Linear(d, out_dim)

    def forward(self, x):
        h = self.embed(x)
        for b in self.blocks:
            h = b(h)
        return self.out(h)


def _attention_only(**kw):
    from topo_mi.models import AttentionOnlyTransformer

    return AttentionOnlyTransformer(**kw)


def _transformer(d_vocab=12, seed=0):
    return _attention_only(d_vocab=d_vocab, d_model=8, n_ctx=4, d_head=8, seed=seed)


def _x(n=40, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


# -- build_graph -----------------------------------------------------------------------------------

def test_graph_nodes_edges_and_attributes():
    net = _mlp()
    G = C.build_graph(net)
    assert G.graph["layers"] == ["input", "1", "3", "4"] and G.graph["sizes"] == [5, 7, 6, 3]
    assert G.number_of_nodes() == 21 and G.number_of_edges() == 5 * 7 + 7 * 6 + 6 * 3
    node = G.nodes[("1", 2)]
    assert node["layer"] == "1" and node["index"] == 2 and node["depth"] == 1 and node["kind"] == "hidden"
    assert node["bias"] == pytest.approx(float(net[0].bias[2].detach()))
    e = G.edges[("input", 3), ("1", 2)]
    assert e["weight"] == pytest.approx(float(net[0].weight[2, 3].detach())) and e["kind"] == "linear"
    assert "attribution" not in e
    assert G.nodes[("4", 0)]["kind"] == "output" and G.nodes[("input", 0)]["kind"] == "input"


def test_graph_attribution_is_weight_times_mean_activation():
    net = _mlp()
    x = _x()
    G = C.build_graph(net, data=x)
    with torch.no_grad():
        h1 = torch.relu(net[0](torch.tensor(x, dtype=torch.float32))).double().numpy()
    e = G.edges[("1", 4), ("3", 1)]
    w = float(net[2].weight[1, 4].detach())
    assert e["attribution"] == pytest.approx(w * h1[:, 4].mean(), rel=1e-5)
    assert e["attribution_var"] == pytest.approx(w ** 2 * h1[:, 4].var(), rel=1e-5)
    assert G.nodes[("1", 4)]["mean"] == pytest.approx(h1[:, 4].mean(), rel=1e-5)


def test_vectorised_graph_equals_per_edge_loop():
    import networkx as nx

    net = _mlp(dims=(4, 6, 5, 2), act=nn.Tanh)
    rng = np.random.default_rng(3)
    feats = {"1": rng.normal(size=(3, 6)), "3": rng.normal(size=(5, 5))}
    G = C.build_graph(net, features=feats)
    Ws = [net[0].weight.detach().double().numpy(), net[2].weight.detach().double().numpy(),
          net[4].weight.detach().double().numpy()]
    bases = [np.eye(4), feats["1"], feats["3"], np.eye(2)]
    names = ["input", "1", "3", "4"]
    H = nx.DiGraph()
    for l, W in enumerate(Ws):
        for i, di in enumerate(bases[l]):
            for j, dj in enumerate(bases[l + 1]):
                H.add_edge((names[l], i), (names[l + 1], j), weight=float(dj @ W @ di))
    assert set(G.edges) == set(H.edges)
    for u, v, d in H.edges(data=True):
        assert G.edges[u, v]["weight"] == pytest.approx(d["weight"], rel=1e-10, abs=1e-12)
    assert G.graph["basis"] == ["neuron", "custom", "custom", "neuron"]


def test_top_k_and_threshold():
    net = _mlp(dims=(6, 8, 4))
    G = C.build_graph(net, top_k=2)
    for node in G.nodes:
        if node[0] != "input":
            assert G.in_degree(node) == 2
    W = net[0].weight.detach().double().numpy()
    for j in range(8):
        kept = sorted(i for (_, i), _ in G.in_edges(("1", j)))
        assert kept == sorted(np.argsort(-np.abs(W[j]))[:2].tolist())
    thr = 0.3
    G2 = C.build_graph(net, threshold=thr)
    assert all(abs(d["weight"]) >= thr for _, _, d in G2.edges(data=True))
    n_expected = int((np.abs(W) >= thr).sum() + (np.abs(net[2].weight.detach().double().numpy()) >= thr).sum())
    assert G2.number_of_edges() == n_expected
    G3 = C.build_graph(net, data=_x(d=6), top_k=1, by="attribution")
    assert G3.number_of_edges() == 8 + 4


def test_features_from_pca_components_and_sae_decoder():
    net = _mlp()
    x = _x(n=60)

    class PCA:  # anything with components_ (scikit-learn convention: rows are directions)
        components_ = np.linalg.qr(np.random.default_rng(0).normal(size=(7, 7)))[0][:3]

    class SAE:
        W_dec = torch.randn(10, 6, generator=torch.Generator().manual_seed(0))

    G = C.build_graph(net, features={"1": PCA(), "3": SAE(), "input": "pca"}, data=x)
    assert G.graph["sizes"] == [5, 3, 10, 3]
    assert G.graph["basis"] == ["pca", "components", "sae_decoder", "neuron"]
    G2 = C.build_graph(net, features={"1": ("pca", 2)}, data=x)
    assert G2.graph["sizes"][1] == 2


def test_residual_graph_has_skip_and_block_edges():
    net = _Residual()
    G = C.build_graph(net)
    assert G.graph["layers"] == ["input", "embed", "blocks.0.act", "blocks.0", "blocks.1.act", "blocks.1", "out"]
    skip = G.edges[("embed", 2), ("blocks.0", 2)]
    scale = G.edges[("blocks.0.act", 2), ("blocks.0", 2)]
    assert skip["kind"] == "skip" and skip["weight"] == 1.0
    assert scale["kind"] == "scale" and scale["weight"] == pytest.approx(0.5)
    assert not G.has_edge(("embed", 2), ("blocks.0", 3))  # exact zeros of the identity are not edges
    w = G.edges[("embed", 1), ("blocks.0.act", 4)]["weight"]
    assert w == pytest.approx(float(net.blocks[0].linear.weight[4, 1].detach()))
    # a window of layers
    G2 = C.build_graph(net, layers=["blocks.0", "blocks.1.act", "blocks.1"])
    assert G2.graph["layers"] == ["blocks.0", "blocks.1.act", "blocks.1"]


def test_transformer_graph_is_eqke_evou_direct():
    m = _transformer()
    G = C.build_graph(m)
    ac = C.attention_circuits(m)
    dv = 12
    assert G.graph["layers"] == ["query", "key", "logits"] and G.number_of_edges() == 3 * dv * dv
    E, P = m.W_E.detach().double().numpy(), m.W_pos.detach().double().numpy()
    Q, K = m.W_Q[0].detach().double().numpy(), m.W_K[0].detach().double().numpy()
    V, O, U = m.W_V[0].detach().double().numpy(), m.W_O[0].detach().double().numpy(), m.W_U.detach().double().numpy()
    eqke = (E + P[-1]) @ Q @ K.T @ E.T / np.sqrt(8)
    np.testing.assert_allclose(ac.eqke, eqke, rtol=1e-10)
    np.testing.assert_allclose(ac.evou, E @ V @ O @ U, rtol=1e-10)
    np.testing.assert_allclose(ac.direct, (E + P[-1]) @ U, rtol=1e-10)
    assert G.edges[("query", 3), ("key", 5)]["weight"] == pytest.approx(eqke[3, 5])
    assert G.edges[("key", 3), ("logits", 5)]["kind"] == "ov"
    assert G.edges[("query", 3), ("logits", 5)]["weight"] == pytest.approx(ac.direct[3, 5])
    tok = torch.randint(0, dv, (50, 4), generator=torch.Generator().manual_seed(0))
    Gd = C.build_graph(m, data=tok, top_k=3)
    assert Gd.number_of_edges() == 3 * dv * 3
    assert all(np.isfinite(d["attribution"]) for _, _, d in Gd.edges(data=True))


# -- errors ----------------------------------------------------------------------------------------------

def test_unsupported_modules_name_what_is_supported():
    bad = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU())
    with pytest.raises(InvalidParameterError, match=r"Conv1d.*") as info:
        C.build_graph(bad)
    assert "nn.Linear" in str(info.value) and "ResidualMLP" in str(info.value)

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

    with pytest.raises(InvalidParameterError, match="model: expected .*nn.Sequential"):
        C.build_graph(Custom())
    with pytest.raises(InvalidParameterError, match="GELU"):
        C.build_graph(nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 1)))
    with pytest.raises(InvalidParameterError, match="model: expected"):
        C.find_circuit(_transformer(), np.zeros((4, 4), int), metric="r2")

    class Doubling(nn.Sequential):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(InvalidParameterError, match="custom forward"):
        C.build_graph(Doubling(nn.Linear(3, 2)), data=np.ones((4, 3)))


def test_feature_dimension_mismatch():
    net = _mlp()
    with pytest.raises(InvalidParameterError, match=r"features\['1'\]: expected a matrix of shape \(n_features, 7\)"):
        C.build_graph(net, features={"1": np.ones((3, 6))})
    with pytest.raises(InvalidParameterError, match="transpose"):
        C.build_graph(net, features={"1": np.ones((7, 3))})
    with pytest.raises(UnknownNameError, match="unknown layer in features 'act9'; valid names"):
        C.build_graph(net, features={"act9": np.ones((3, 7))})
    with pytest.raises(InvalidParameterError, match="data: expected inputs to compute"):
        C.build_graph(net, features={"1": "pca"})
    with pytest.raises(InvalidParameterError, match=r"data: expected inputs of shape \(n_samples, 5\)"):
        C.build_graph(net, data=np.ones((4, 3)))


def test_layers_must_be_consecutive_and_known():
    net = _mlp()
    with pytest.raises(InvalidParameterError, match="consecutive"):
        C.build_graph(net, layers=["input", "3"])
    with pytest.raises(UnknownNameError, match="closest valid names"):
        C.build_graph(net, layers=["input", "act1"])


def test_too_large_graph_is_refused_before_building():
    net = _mlp(dims=(30, 40, 40, 5))
    with pytest.raises(ResourceError, match=r"3,000 edges.*top_k=") as info:
        C.build_graph(net, max_edges=1000)
    assert "threshold" in str(info.value)
    G = C.build_graph(net, max_edges=1000, top_k=10)
    assert G.number_of_edges() == 40 * 10 + 40 * 10 + 5 * 10
    with pytest.raises(ResourceError, match="after top_k/threshold"):
        C.build_graph(net, max_edges=100, threshold=0.0)


def test_metric_must_be_scalar():
    net = _mlp()
    x = _x()
    with pytest.raises(InvalidParameterError, match=r"metric: expected a function returning a scalar.*shape \(40"):
        C.find_circuit(net, x, metric=lambda out, target: (out - target).abs().sum(dim=1), steps=1)
    with pytest.raises(UnknownNameError, match="did you mean 'r2'"):
        C.find_circuit(net, x, metric="r3", steps=1)
    with pytest.raises(UnknownNameError):
        C.find_circuit(net, x, ablation="random", steps=1)


# -- paths -----------------------------------------------------------------------------------------------

def _all_path_products(G, sources, targets):
    import networkx as nx

    out = []
    for s in sources:
        for t in targets:
            for p in nx.all_simple_paths(G, s, t):
                out.append((tuple(p), float(np.prod([G.edges[u, v]["weight"] for u, v in zip(p[:-1], p[1:])]))))
    return sorted(out, key=lambda item: -abs(item[1]))


@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_top_paths_match_exhaustive_enumeration(scale):
    net = _mlp(dims=(3, 4, 4, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)  # |w| > 1 makes -log|w| negative: still exact
    G = C.build_graph(net)
    want = _all_path_products(G, [n for n in G if n[0] == "input"], [n for n in G if n[0] == "4"])
    got = C.top_paths(G, "input", "4", k=7)
    assert len(got) == 7
    np.testing.assert_allclose([abs(p.weight) for p in got], [abs(w) for _, w in want[:7]], rtol=1e-10)
    for p in got:
        assert p.weight == pytest.approx(dict(want)[p.nodes], rel=1e-10)
    one = C.top_paths(G, ("input", 1), ("4", 0), k=100)
    assert len(one) == 16 and all(p.nodes[0] == ("input", 1) and p.nodes[-1] == ("4", 0) for p in one)
    res = C.find_circuit(net, _x(d=3), steps=2)
    from_result = C.top_paths(res, "input", "4", k=3)
    assert [p.nodes for p in from_result] == [p.nodes for p in got[:3]]


def test_top_paths_through_skip_connections():
    net = _Residual(d=3, n_blocks=2)
    G = C.build_graph(net)
    want = _all_path_products(G, [("input", 0)], [("out", 1)])
    got = C.top_paths(G, ("input", 0), ("out", 1), k=5)
    np.testing.assert_allclose([p.weight for p in got], [w for _, w in want[:5]], rtol=1e-10)
    with pytest.raises(InvalidParameterError, match="source: expected a node"):
        C.top_paths(G, ("input", 99), "out")


def test_path_activation_matches_contributions():
    net = _mlp(dims=(3, 4, 3, 2))
    x = _x(n=10, d=3)
    pc = C.path_contributions(net, x)
    row = np.flatnonzero(~pc.bias_start)[5]
    nodes = [(pc.layer_names[l], int(i)) for l, i in enumerate(pc.paths[row])]
    np.testing.assert_allclose(C.path_activation(net, nodes, x), pc.contributions[:, row],
                               rtol=1e-12, atol=1e-15)
    W = [net[i].weight.detach().double().numpy() for i in (0, 2, 4)]
    linear = C.path_activation(net, nodes, x, gated=False)
    idx = [n[1] for n in nodes]
    want = x[:, idx[0]] * W[0][idx[1], idx[0]] * W[1][idx[2], idx[1]] * W[2][idx[3], idx[2]]
    np.testing.assert_allclose(linear, want)
    with pytest.raises(InvalidParameterError, match="does not feed"):
        C.path_activation(net, [("input", 0), ("3", 1)], x)


def test_path_count_is_refused_when_too_large():
    net = _mlp(dims=(20, 30, 30, 30, 10))
    with pytest.raises(ResourceError, match="paths reach the output"):
        C.path_contributions(net, _x(n=3, d=20), max_paths=10_000)


# -- find_circuit ----------------------------------------------------------------------------------------

def test_find_circuit_result_fields_and_determinism():
    net = _mlp()
    x = _x(n=64)
    a = C.find_circuit(net, x, steps=40, seed=3)
    b = C.find_circuit(net, x, steps=40, seed=3)
    np.testing.assert_array_equal(a.gate_logits, b.gate_logits)
    assert a.granularity == "edges" and a.n_units == a.n_edges == 95
    assert a.kept.shape == (95,) and a.loss_history.shape == (40,)
    assert set(a.curve_scores) == {"mask", "magnitude", "patching"}
    assert a.curve_sizes[0] == 0 and a.curve_sizes[-1] == 95 and a.n_kept in a.curve_sizes
    for scores in a.curve_scores.values():
        assert scores[-1] == pytest.approx(a.full_score)
    assert a.full_score == pytest.approx(1.0) and a.alpha == pytest.approx(a.circuit_score / a.full_score)
    s = a.summary()
    assert {"n_kept", "alpha", "circuit_score", "full_score", "magnitude_score"} <= set(s)
    assert "alpha=" in repr(a)


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
@pytest.mark.parametrize("granularity", ["edges", "nodes"])
def test_find_circuit_ablations_and_granularities(ablation, granularity):
    net = _Residual() if granularity == "nodes" else _mlp()
    x = _x(n=48, d=4 if granularity == "nodes" else 5)
    r = C.find_circuit(net, x, granularity=granularity, ablation=ablation, steps=15, seed=0)
    if granularity == "nodes":
        assert r.kept.shape == (r.n_nodes,) and r.n_units == r.n_nodes - 3  # outputs are not gated
    assert np.isfinite(r.circuit_score) and np.isfinite(r.curve_scores["patching"]).all()
    assert r.curve_scores["mask"][-1] == pytest.approx(r.full_score, abs=1e-6)


def test_find_circuit_with_labels_and_custom_metric():
    net = _mlp(dims=(5, 8, 3))
    x = _x(n=80)
    with torch.no_grad():
        y = net(torch.tensor(x, dtype=torch.float32)).argmax(1).numpy()
    r = C.find_circuit(net, (x, y), metric="accuracy", steps=20)
    assert r.metric == "accuracy" and r.objective == "kl" and r.full_score == pytest.approx(1.0)

    def neg_l1(out, target):
        return -(out - target).abs().mean()

    r2 = C.find_circuit(net, x, metric=neg_l1, objective="metric", steps=10)
    assert r2.metric == "neg_l1" and r2.full_score == pytest.approx(0.0)
    assert np.isnan(r2.alpha)  # a ratio is meaningless when the full score is not positive


def test_find_circuit_ranks_only_the_window():
    net = _mlp()
    r = C.find_circuit(net, _x(), layers=["1", "3"], steps=5)
    assert r.layer_names == ["1", "3"] and r.n_units == 42


# -- results, export, plots ------------------------------------------------------------------------------

def test_result_save_load_and_graph(tmp_path):
    from topo_mi._results import load_result

    r = C.find_circuit(_mlp(), _x(), steps=10)
    r.save(tmp_path / "r")
    back = load_result(tmp_path / "r")
    assert type(back).__name__ == "CircuitResult"
    np.testing.assert_array_equal(back.edge_weight, r.edge_weight)
    np.testing.assert_array_equal(back.kept, r.kept)
    assert back.curve_scores.keys() == r.curve_scores.keys()
    G = back.graph
    assert G.number_of_edges() == r.n_edges and set(G.edges) == set(r.graph.edges)
    assert all("in_circuit" in d for _, _, d in G.edges(data=True))
    assert back.circuit.number_of_edges() == len(back.kept_edges) == int(r.kept.sum())
    json.dumps(r.to_dict())


def _graphs_equal(G, H):
    assert set(G.nodes) == set(H.nodes) and set(G.edges) == set(H.edges)
    for n, d in G.nodes(data=True):
        for k, v in d.items():
            if isinstance(v, float) and np.isnan(v):
                assert np.isnan(H.nodes[n][k])
            else:
                assert H.nodes[n][k] == v, (n, k)
    for u, v, d in G.edges(data=True):
        for k, val in d.items():
            assert H.edges[u, v][k] == val, (u, v, k)


def test_graphml_and_json_round_trip(tmp_path):
    net = _Residual()
    G = C.build_graph(net, data=_x(n=20, d=4))
    C.write_graphml(G, tmp_path / "g.graphml")
    H = C.read_graphml(tmp_path / "g.graphml")
    _graphs_equal(G, H)
    assert H.graph["layers"] == G.graph["layers"]
    C.write_json(G, tmp_path / "g.json")
    J = C.read_json(tmp_path / "g.json")
    _graphs_equal(G, J)
    assert J.graph["sizes"] == G.graph["sizes"]
    r = C.find_circuit(_mlp(), _x(), steps=5)
    r.to_graphml(tmp_path / "c.graphml", circuit_only=True)
    assert C.read_graphml(tmp_path / "c.graphml").number_of_edges() == int(r.kept.sum())
    r.to_json(tmp_path / "r.json")
    _graphs_equal(r.graph, C.read_json(tmp_path / "r.json"))


def test_plots_to_files(tmp_path):
    from topo_mi.plotting import save_figure
    from topo_mi.plotting.circuits import plot_graph

    r = C.find_circuit(_mlp(), _x(), steps=10)
    for kind in ("graph", "faithfulness"):
        ax = r.plot(kind=kind)
        save_figure(ax, tmp_path / f"{kind}.png")
        assert (tmp_path / f"{kind}.png").stat().st_size > 1000
    ax = plot_graph(C.build_graph(_mlp(dims=(30, 40, 3))), max_edges=50)
    assert "50 of 1,320 edges" in ax.get_title()
    save_figure(ax, tmp_path / "nx.svg")
    ac = C.attention_circuits(_transformer())
    save_figure(ac.plot(), tmp_path / "attn.png")
    assert (tmp_path / "attn.png").stat().st_size > 1000
    with pytest.raises(InvalidParameterError, match="attention"):
        r.plot(kind="attention")


def test_pipeline_circuit_graph():
    from topo_mi.pipelines import circuit_graph

    net = _mlp()
    x = _x()
    r = circuit_graph(net, x, steps=10, n_paths=3)
    assert r.granularity == "edges" and len(r.paths) <= 3
    for p in r.paths:  # paths run inside the circuit
        pairs = list(zip(p["nodes"][:-1], p["nodes"][1:]))
        kept = set(r.kept_edges)
        assert all(((a[0], a[1]), (b[0], b[1])) in kept for a, b in pairs)
    g = circuit_graph(net, x, features={"1": "pca"}, n_paths=2)
    assert g.granularity == "none" and g.layer_basis[1] == "pca" and len(g.paths) == 2
    with pytest.raises(InvalidParameterError, match="features: expected None when find=True"):
        circuit_graph(net, x, features={"1": "pca"}, find=True)
    t = circuit_graph(_transformer(), np.random.default_rng(0).integers(0, 12, (30, 4)))
    assert t.attention is not None and t.paths[0]["nodes"][0][0] == "key"
    assert "attention_evou_diagonal_dominance" in t.summary()


def test_import_is_lazy():
    code = ("import sys, topo_mi.circuits, topo_mi.circuits.result, topo_mi.pipelines.circuits; "
            "print([m for m in ('torch', 'networkx', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_circuit_graph_with_class_labels_scores_accuracy():
    import torch

    from topo_mi.circuits import find_circuit
    from topo_mi.errors import InvalidParameterError
    from topo_mi.models import MLP
    from topo_mi.pipelines import circuit_graph

    net = MLP(4, [8], 3, seed=0)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    y = net(x).argmax(dim=1)  # the model's own classes: full accuracy 1
    res = circuit_graph(net, (x, y), steps=20, seed=0)
    assert res.metric == "accuracy" and res.full_score == 1.0
    with pytest.raises(InvalidParameterError, match=r"metric: expected metric='accuracy' for integer class labels"):
        find_circuit(net, (x, y), metric="r2", steps=5)
    assert circuit_graph(net, x, steps=20, seed=0).metric == "r2"  # no labels: fidelity to the output
    sec = res.report_section()
    assert sec["table"]["index"] == list(res.layer_names) and "accuracy = 1" in sec["headline"]
    units = [row[sec["table"]["columns"].index("units")] for row in sec["table"]["rows"]]
    assert units == [int(v) for v in res.layer_sizes] and sec["caption"]
