"""The topo-mi command and the spec runner."""
import json
from pathlib import Path

import pytest

from topo_mi.cli import main
from topo_mi.errors import SpecError
from topo_mi.pipelines.runner import DEMO_SPEC
from topo_mi.pipelines.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "pipelines").glob("*.toml"))


def test_shipped_specs_validate():
    names = {p.stem for p in SPECS}
    assert {"demo", "naitzat_d1", "minilm_layers", "rnn_chaos", "compare_seeds"} <= names
    for p in SPECS:
        spec = load_spec(p)
        assert spec["analyses"], p


def test_demo_spec_file_is_the_builtin_one():
    assert (ROOT / "pipelines" / "demo.toml").read_text() == DEMO_SPEC


BROKEN = {
    "unknown_key": ('seeed = 1\n[dataset]\nname="digits"\n[model]\nzoo="mlp-digits"\n[analyses.geometry]\n',
                    "seeed: unknown key"),
    "wrong_type": ('[dataset]\nname=3\n[model]\nzoo="mlp-digits"\n[analyses.geometry]\n',
                   "dataset.name: expected a string"),
    "out_of_range": ('[dataset]\nname="digits"\n[model]\nzoo="mlp-digits"\n[activations]\nbatch_size=0\n'
                     '[analyses.geometry]\n', "activations.batch_size: expected an integer >= 1"),
    "no_analysis": ('[dataset]\nname="digits"\n[model]\nzoo="mlp-digits"\n', "analyses: expected at least one"),
    "bad_toml": ('[dataset\nname="digits"', "<toml>: not valid TOML"),
    "two_models": ('[dataset]\nname="digits"\n[model]\nzoo="a"\nhf="b"\n[analyses.geometry]\n',
                   "model: expected exactly one of"),
    "bad_reduce": ('[dataset]\nname="digits"\n[model]\nzoo="mlp-digits"\n[activations]\nreduce="max"\n'
                   '[analyses.geometry]\n', "activations.reduce"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_specs_exit_2_with_key_path(case, tmp_path, capsys):
    text, needle = BROKEN[case]
    p = tmp_path / f"{case}.toml"
    p.write_text(text)
    assert main(["run", str(p), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert not (tmp_path / "o").exists()


def test_all_problems_reported_at_once():
    with pytest.raises(SpecError) as info:
        load_spec({"seeed": 1, "dataset": {"name": 3}, "analyses": {"topo": {}}})
    paths = [p for p, _ in info.value.problems]
    assert {"seeed", "dataset.name", "analyses.topo"} <= set(paths)


def test_cli_misc(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert "topo-mi 0." in capsys.readouterr().out
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert main(["show", str(tmp_path)]) == 2
    for sub in ("run", "demo", "show", "list"):
        with pytest.raises(SystemExit):
            main([sub, "--help"])
        assert "example" in capsys.readouterr().out


SMALL_SPEC = """
name = "small"
seed = 3

[dataset]
name = "digits"

[model]
architecture = "mlp"
params = { widths = [32, 16] }
train = { epochs = 5 }

[activations]
max_samples = 400

[analyses.topology]
max_dim = 1
subsample = 150

[analyses.geometry]
embed = "pca"
n_boot = 5
"""


def test_run_is_deterministic_and_writes_the_report(tmp_path, report_checker, capsys):
    spec = tmp_path / "small.toml"
    spec.write_text(SMALL_SPEC)
    assert main(["run", str(spec), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", str(spec), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    res = report_checker(tmp_path / "a")
    assert set(res["analyses"]) == {"topology", "geometry"}
    assert (tmp_path / "a" / "results.json").read_bytes() == (tmp_path / "b" / "results.json").read_bytes()
    assert (tmp_path / "a" / "figures" / "topology.png").is_file()
    from topo_mi._results import load_result

    prof = load_result(tmp_path / "a" / "analyses" / "topology")
    assert type(prof).__name__ == "BettiProfile"
    # an existing folder is refused without --force
    assert main(["run", str(spec), "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "a")]) == 0
    assert "topology" in capsys.readouterr().out
    # a different seed changes the numbers
    assert main(["run", str(spec), "--out", str(tmp_path / "c"), "--quiet", "--seed", "4"]) == 0
    assert (tmp_path / "c" / "results.json").read_bytes() != (tmp_path / "a" / "results.json").read_bytes()


def test_run_failure_names_the_step(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(SMALL_SPEC.replace("widths = [32, 16]", 'widths = [32, 16], activation = "gelu"'))
    assert main(["run", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "step 'model' failed" in err and "activation" in err
    assert not (tmp_path / "o").exists()


def test_unknown_names_and_wrong_types_exit_2_before_running(tmp_path, capsys, monkeypatch):
    import topo_mi.pipelines.runner as runner

    def never(*a, **k):  # nothing may run
        raise AssertionError("the dataset step ran")

    monkeypatch.setattr(runner, "_make_dataset", never)
    text = (SMALL_SPEC.replace('name = "digits"', 'name = "digitz"')
            .replace('architecture = "mlp"', 'zoo = "mlp-digit"')
            .replace("params = { widths = [32, 16] }\ntrain = { epochs = 5 }\n", "")
            .replace("max_samples = 400", 'max_samples = 400\nlayers = ["act1", "act9"]')
            .replace("max_dim = 1", 'max_dim = "1"\nmetric = "cosin"')
            .replace('embed = "pca"', 'embed = "umapp"'))
    text += '\n[analyses.compare]\nmethods = ["cka", "ckaa"]\nn_perm = 1.5\n'
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    assert main(["run", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    for needle in ("dataset.name: unknown dataset 'digitz'", "did you mean 'digits'",
                   "model.zoo: unknown zoo model 'mlp-digit'", "analyses.topology.metric: unknown metric 'cosin'",
                   "analyses.topology.max_dim: expected an integer, got str '1'",
                   "analyses.geometry.embed: unknown embedding method 'umapp'",
                   "analyses.compare.methods: unknown comparison method 'ckaa'",
                   "analyses.compare.n_perm: expected an integer"):
        assert needle in err, (needle, err)
    # layer names are checked against the (untrained) zoo architecture
    text2 = SMALL_SPEC.replace('architecture = "mlp"', 'zoo = "mlp-digits"').replace(
        "params = { widths = [32, 16] }\ntrain = { epochs = 5 }\n", "").replace(
        "max_samples = 400", 'max_samples = 400\nlayers = ["act1", "act9", "fc*"]')
    spec.write_text(text2)
    assert main(["run", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "activations.layers[1]" in err and "'act9'" in err and "layers[0]" not in err


def test_run_a_shipped_spec_by_name_and_show_in_network_order(tmp_path, capsys, monkeypatch):
    from topo_mi import cli

    assert cli._shipped("minilm_layers") == ROOT / "pipelines" / "minilm_layers.toml"
    assert cli._shipped("nope") is None
    assert main(["run", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "minilm_layers" in capsys.readouterr().err  # the names on offer
    seen = {}

    def fake_run(spec, **kw):  # records what would run, then stops
        seen["spec"] = spec
        raise SpecError([("stop", "recorded")])

    monkeypatch.setattr("topo_mi.pipelines.runner.run", fake_run)
    assert main(["run", "naitzat_d1", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert seen["spec"] == ROOT / "pipelines" / "naitzat_d1.toml"
    keys = ["n_layers", "betti[act10]", "betti[act2]", "betti[act1]", "complexity[act10]", "complexity[act1]"]
    assert cli._network_order(keys, ["act1", "act2", "act10"]) == [
        "n_layers", "betti[act1]", "betti[act2]", "betti[act10]", "complexity[act1]", "complexity[act10]"]
    assert cli._network_order(["b[x10]", "b[x9]"], None) == ["b[x9]", "b[x10]"]


def test_bad_analysis_parameter_is_caught_before_running(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(SMALL_SPEC.replace("max_dim = 1", "max_dimension = 1"))
    assert main(["run", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "analyses.topology.max_dimension: unknown parameter" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_produces_the_report(tmp_path, report_checker):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    res = report_checker(tmp_path / "demo")
    assert set(res["analyses"]) == {"topology", "geometry", "dynamics", "circuits", "synthesis"}
    syn = res["analyses"]["synthesis"]
    members = {k: v for k, v in syn.items() if k.startswith("coverage[") and k != "coverage[union]"}
    assert len(members) >= 2 and all(0.0 <= v <= 1.0 for v in members.values())
    # an input is explained by the union when any member explains it: never less than the best member
    assert syn["coverage[union]"] >= max(members.values()) - 1e-12
