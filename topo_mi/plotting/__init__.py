"""Every figure of topo_mi. The only place matplotlib is imported (Agg backend, never ``show()``).

Each result's ``.plot(ax=None)`` calls a function of a module here; the functions can also be
called directly, e.g. ``topo_mi.plotting.topology.plot_diagram(result, ax=ax)``.
"""
from __future__ import annotations


def pyplot():
    """Import matplotlib's pyplot with a non-interactive backend unless one is already chosen."""
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        try:
            matplotlib.use("Agg", force=False)
        except Exception:  # pragma: no cover - backend already fixed by the user
            pass
    import matplotlib.pyplot as plt

    return plt


def get_ax(ax=None, *, figsize=(5.0, 4.0)):
    """Return ``ax`` or a new Axes on a new figure."""
    if ax is not None:
        return ax
    plt = pyplot()
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def save_figure(fig_or_ax, path, *, dpi: int = 110) -> None:
    """Save a figure (or the figure of an Axes) atomically as PNG/SVG and close it."""
    from topo_mi._io import atomic_path

    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    suffix = str(path).rsplit(".", 1)[-1]
    with atomic_path(path, suffix=f".{suffix}") as tmp:
        fig.savefig(tmp, dpi=dpi, format=suffix)
    pyplot().close(fig)
