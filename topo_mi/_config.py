"""Where topo_mi keeps data it makes: trained zoo models, cached activations, downloaded nothing.

``data_home()`` is, in order: ``$TOPO_MI_DATA_HOME``; the repository's ``datasets/cache`` folder
when topo_mi runs from a checkout (the layout ``make demo`` creates); ``~/.cache/topo_mi``.
"""
from __future__ import annotations

import os
from pathlib import Path


def data_home(create: bool = True) -> Path:
    env = os.environ.get("TOPO_MI_DATA_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        repo_cards = Path(__file__).resolve().parents[1] / "datasets"
        if repo_cards.is_dir() and os.access(repo_cards, os.W_OK):
            path = repo_cards / "cache"
        else:
            path = Path.home() / ".cache" / "topo_mi"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def cards_dir() -> Path | None:
    """The repository's ``datasets/`` folder of dataset cards, when running from a checkout."""
    path = Path(__file__).resolve().parents[1] / "datasets"
    return path if path.is_dir() else None
