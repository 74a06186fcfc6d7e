"""Built-in data sets: point clouds with known topology, the Naitzat et al. sets, toy tasks and
small real data that work offline.

>>> from topo_mi import datasets
>>> ds = datasets.make("torus", n=500, noise=0.05, ambient_dim=10, seed=1)
>>> ds.X.shape, ds.card["betti"]["2"]
((500, 10), [1, 2, 1])
>>> datasets.make("naitzat_d1").card["betti_by_class"]["b"]
{'2': [1, 9], '3': [1, 9]}

``make(name, *, n=None, seed=0, **params)`` returns a :class:`Dataset` (``.X``, ``.y``,
``.card``); ``names()`` lists the names; ``card(name)`` gives a card at the default parameters.
The same seed gives identical arrays; ``make(**ds.card["params"], name=ds.name)`` rebuilds a
data set. Only numpy is imported here (scikit-learn when ``digits`` is made).
"""
from __future__ import annotations

from topo_mi.datasets._base import Dataset, card, make, names
from topo_mi.datasets import _manifolds, _naitzat, _real, _toy  # noqa: F401  (registration)

__all__ = ["Dataset", "make", "names", "card"]
