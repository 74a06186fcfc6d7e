"""Compile umap-learn's numba kernels once at set-up (``python -m topo_mi._warmup``).

numba caches the compiled code beside the installed package, so later processes (tests, the
demo) start in seconds instead of spending 15–30 s compiling on first use.
"""
from __future__ import annotations

import time


def main() -> None:
    t0 = time.perf_counter()
    import numpy as np

    try:
        from topo_mi.geometry._embed import import_umap

        umap = import_umap()  # turns on numba's disk cache for umap-learn's kernels
    except ImportError:  # pragma: no cover
        print("umap-learn is not installed; nothing to warm")
        return
    X = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    umap.UMAP(n_neighbors=10, n_components=2, random_state=0, n_epochs=20).fit_transform(X)
    umap.UMAP(n_neighbors=10, n_components=2, n_epochs=20).fit_transform(X)  # parallel code path
    print(f"umap warmed in {time.perf_counter() - t0:.1f}s")
    t1 = time.perf_counter()
    from topo_mi.geometry._neighbors import approximate_knn

    approximate_knn(X.astype(np.float64), 3)  # pynndescent's kernels, for neighbors="approximate"
    print(f"pynndescent warmed in {time.perf_counter() - t1:.1f}s")


if __name__ == "__main__":
    main()
