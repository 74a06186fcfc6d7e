"""Geometry pipeline overhead and TwoNN at scale.

1. ``geometry_profile`` over 6 layers of 10,000 x 512 activations (a random 6-layer ReLU network
   on a 16-dimensional latent input) vs the same computations written by hand with numpy/scipy,
   scikit-learn and umap-learn: SVD (rank@eps, participation ratio, effective rank), TwoNN from
   ``NearestNeighbors``, a seeded ``umap.UMAP``, ``sklearn.manifold.trustworthiness`` both ways
   (trustworthiness and continuity), k-NN preservation and the Kruskal stress from ``pdist``.
   Run twice: everything without resamples (identical work and identical UMAP seeds; goal ratio
   <= 1.1), then spectra and TwoNN only with the profile's default 50 resamples (by hand: a new
   neighbour search per resample).
2. TwoNN on 100,000 x 128 (a 10-dimensional latent through a random tanh layer) vs
   scikit-dimension's ``skdim.id.TwoNN`` when it is importable, and always vs a straightforward
   implementation (``NearestNeighbors(n_neighbors=2)`` plus the Ansuini et al. fit).

Prints seconds, ratios (topo_mi / reference) and the agreement of the numbers.

    python benchmarks/bench_geometry.py [--quick] [--repeat N] [--skip-profile] [--skip-twonn]

scikit-dimension (``pip install scikit-dimension``; it needs nothing beyond topo_mi's own
dependencies) is compared when importable and skipped otherwise.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message=".*n_jobs value.*")


def timed(fn, repeat=1):
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# -- data ------------------------------------------------------------------------------------------

def make_layers(n, width, n_layers, latent=16, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, latent)) @ rng.normal(size=(latent, width)) / math.sqrt(latent)
    layers = {}
    for i in range(n_layers):
        h = np.maximum(h @ (rng.normal(size=(width, width)) * math.sqrt(2.0 / width)), 0.0)
        layers[f"layer{i + 1}"] = h.astype(np.float32)
    return layers


def make_twonn_data(n, dim, latent=10, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, latent))
    return np.tanh(z @ rng.normal(size=(latent, dim)) / math.sqrt(latent)).astype(np.float32)


# -- by hand ---------------------------------------------------------------------------------------

def twonn_by_hand(X, fraction=0.9):
    from sklearn.neighbors import NearestNeighbors

    dist, _ = NearestNeighbors(n_neighbors=2).fit(X).kneighbors()
    r1, r2 = dist[:, 0], dist[:, 1]
    good = (r1 > 0) & (r2 > r1)
    mu = np.sort(r2[good] / r1[good])
    N = mu.size
    m = min(int(N * fraction), N - 2)
    x = np.log(mu[:m])
    y = -np.log(1 - np.arange(1, m + 1) / N)
    return float(x @ y / (x @ x))


def layer_by_hand(X, *, eps, n_boot, seed, embed_seed=None, k=5, with_embedding=True):
    import scipy.linalg
    import umap
    from scipy.spatial.distance import pdist
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors

    X64 = np.asarray(X, dtype=np.float64)
    A = X64 - X64.mean(axis=0)
    s = scipy.linalg.svd(A, compute_uv=False)
    s2 = s ** 2
    tail = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]])
    rank = int(np.flatnonzero(tail <= eps * s2.sum())[0])
    pr = s2.sum() ** 2 / (s2 ** 2).sum()
    p = s / s.sum()
    erank = float(np.exp(-(p * np.log(p)).sum()))
    twonn = twonn_by_hand(X64)
    rng = np.random.default_rng(seed)
    boots = [twonn_by_hand(X64[rng.choice(len(X64), int(0.9 * len(X64)), replace=False)]) for _ in range(n_boot)]
    out = {"rank": rank, "pr": pr, "erank": erank, "id": twonn,
           "id_error": np.std(boots, ddof=1) if n_boot > 1 else float("nan")}
    if not with_embedding:
        return out
    E = umap.UMAP(random_state=seed if embed_seed is None else embed_seed, n_jobs=1).fit_transform(X)
    T = trustworthiness(X64, E, n_neighbors=k)
    C = trustworthiness(E, X64, n_neighbors=k)
    nx = NearestNeighbors(n_neighbors=k).fit(X64).kneighbors(return_distance=False)
    ne = NearestNeighbors(n_neighbors=k).fit(E).kneighbors(return_distance=False)
    knn = np.mean([len(set(a) & set(b)) / k for a, b in zip(nx, ne)])
    dx, de = pdist(X64), pdist(E.astype(np.float64))
    scale = (dx @ de) / (de @ de)
    kruskal = math.sqrt(((dx - scale * de) ** 2).sum() / ((scale * de) ** 2).sum())
    out.update(T=T, C=C, knn=knn, stress=kruskal)
    return out


def profile_by_hand(layers, *, eps, n_boot, seed, with_embedding=True):
    from topo_mi.pipelines.geometry import _layer_seeds

    # the UMAP seed the profile derives for each layer, so both sides compute the same embedding
    return {name: layer_by_hand(X, eps=eps, n_boot=n_boot, seed=seed, embed_seed=_layer_seeds(seed, name)[1],
                                with_embedding=with_embedding)
            for name, X in layers.items()}


# -- cases -----------------------------------------------------------------------------------------

def profile_case(n, width, n_layers, n_boot, repeat, with_embedding=True):
    from topo_mi.pipelines import geometry_profile

    layers = make_layers(n, width, n_layers)
    seed = 0
    import umap  # noqa: F401  (import and numba set-up outside the timings, for both sides)
    from topo_mi.geometry._embed import import_umap

    import_umap()
    tiny = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    if with_embedding:  # numba compilation outside the timings
        geometry_profile({"w": tiny}, embed="umap", n_boot=2, seed=0, progress=False)
        layer_by_hand(tiny, eps=0.01, n_boot=2, seed=0)

    def ours():
        return geometry_profile(layers, eps=0.01, n_boot=n_boot, seed=seed, embed="umap" if with_embedding else None,
                                progress=False)

    def hand():
        return profile_by_hand(layers, eps=0.01, n_boot=n_boot, seed=seed, with_embedding=with_embedding)

    t_hand, ref = timed(hand, repeat)
    t_ours, prof = timed(ours, repeat)
    agree = {
        "rank equal": all(prof[k].rank.rank == ref[k]["rank"] for k in layers),
        "PR max rel diff": max(abs(prof[k].spectrum.participation_ratio / ref[k]["pr"] - 1) for k in layers),
        "TwoNN max rel diff": max(abs(prof[k].intrinsic_dimension.value / ref[k]["id"] - 1) for k in layers),
    }
    if with_embedding:
        for key, ours_of, name in (("T", lambda e: e.trustworthiness, "trustworthiness"),
                                   ("C", lambda e: e.continuity, "continuity"),
                                   ("knn", lambda e: e.knn_preservation, "kNN preservation"),
                                   ("stress", lambda e: e.stress, "Kruskal stress")):
            agree[f"{name} max abs diff"] = max(abs(ours_of(prof[k].embedding) - ref[k][key]) for k in layers)
    return t_hand, t_ours, agree, prof


def twonn_case(n, dim, repeat):
    from topo_mi.geometry import intrinsic_dimension

    X = make_twonn_data(n, dim)
    rows = []
    t_ours, res = timed(lambda: intrinsic_dimension(X), repeat)
    t_hand, ref = timed(lambda: twonn_by_hand(np.asarray(X, dtype=np.float64)), repeat)
    rows.append(("straightforward (NearestNeighbors + fit)", t_hand, ref))
    if importlib.util.find_spec("skdim") is not None:
        import skdim

        t_sk, sk = timed(lambda: float(skdim.id.TwoNN().fit(X).dimension_), repeat)
        rows.append((f"scikit-dimension {getattr(skdim, '__version__', '?')} TwoNN", t_sk, sk))
    else:
        rows.append(("scikit-dimension: not importable, skipped", float("nan"), float("nan")))
    t_boot, boot = timed(lambda: intrinsic_dimension(X, n_boot=50, seed=0), 1)
    return t_ours, res, rows, t_boot, boot


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--repeat", type=int, default=1, help="best of N timings (default 1)")
    ap.add_argument("--skip-profile", action="store_true")
    ap.add_argument("--skip-twonn", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        n, width, n_layers, tn, tdim = 1000, 32, 2, 5_000, 32
    else:
        n, width, n_layers, tn, tdim = 10_000, 512, 6, 100_000, 128
    print(f"# bench_geometry ({'quick' if args.quick else 'full'})", flush=True)
    if not args.skip_profile:
        print(f"\n## geometry_profile: {n_layers} layers of {n} x {width}, UMAP seeded, T/C/kNN at k=5")
        for n_boot, with_emb in ((0, True), (50, False)):
            t_hand, t_ours, agree, prof = profile_case(n, width, n_layers, n_boot, args.repeat, with_emb)
            what = "all, with UMAP + quality" if with_emb else "spectra + TwoNN only"
            print(f"n_boot={n_boot:>2} ({what}): by hand {t_hand:8.1f} s   geometry_profile {t_ours:8.1f} s   "
                  f"ratio {t_ours / t_hand:5.2f}", flush=True)
            for key, val in agree.items():
                print(f"    {key}: {val:.3g}" if isinstance(val, float) else f"    {key}: {val}")
            print("    per layer: " + "; ".join(
                f"{r.layer}: rank {r.rank.rank}, PR {r.spectrum.participation_ratio:.1f}, "
                f"ID {r.intrinsic_dimension.value:.2f}+-{r.intrinsic_dimension.error:.2f}"
                + (f", T {r.embedding.trustworthiness:.3f}" if r.embedding is not None else "") for r in prof),
                flush=True)
    if not args.skip_twonn:
        print(f"\n## TwoNN on {tn} x {tdim} (10-dimensional latent)")
        t_ours, res, rows, t_boot, boot = twonn_case(tn, tdim, args.repeat)
        print(f"topo_mi intrinsic_dimension: {t_ours:8.1f} s   ID {res.value:.4f}", flush=True)
        for name, t, val in rows:
            if math.isnan(t):
                print(name)
                continue
            print(f"{name}: {t:8.1f} s   ID {val:.4f}   time ratio topo_mi/peer {t_ours / t:5.2f}   "
                  f"rel diff {abs(res.value / val - 1):.2e}")
        print(f"topo_mi with 50 resamples (error bars): {t_boot:8.1f} s   ID {boot.value:.4f} +- {boot.error:.4f}")


if __name__ == "__main__":
    main()
