"""A network with a planted circuit: the known answer for circuit discovery (tests, benchmarks)."""
from __future__ import annotations

import numpy as np

_PLANTED = (  # (layer of the weight: 1, 2 or 3; target unit; source unit; weight)
    (1, 0, 0, 1.0), (1, 0, 1, 1.0), (1, 1, 2, 1.0), (1, 1, 3, -1.0), (1, 2, 0, -1.0), (1, 2, 3, 1.0),
    (2, 0, 0, 1.0), (2, 0, 2, 0.8), (2, 1, 1, 1.0),
    (3, 0, 0, 1.0), (3, 1, 1, 1.0), (3, 1, 0, -0.6),
)


def planted_network(*, seed: int = 0, noise: float = 0.01, distractor: float = 3.0, n_samples: int = 1024):
    """An 8 -> 16 -> 16 -> 2 ReLU ``nn.Sequential`` where 12 known edges carry the task.

    Every other weight is small noise (``noise`` × N(0, 1)), except distractors with weight
    ``distractor`` (3× the circuit's) that carry nothing on the data: input 7 is always 0 and unit
    15 of each hidden layer is dead (bias −100). Magnitude pruning keeps the distractors first.

    Returns
    -------
    net : nn.Sequential
    x : ndarray of shape (n_samples, 8)
    truth : set of ((layer, i), (layer, j))
        The planted edges, named as in :func:`topo_mi.circuits.build_graph` (layers ``"input"``,
        ``"1"``, ``"3"``, ``"4"``).
    """
    import torch
    from torch import nn

    rng = np.random.default_rng(seed)
    W = [noise * rng.normal(size=s) for s in ((16, 8), (16, 16), (2, 16))]
    b = [np.zeros(16), np.zeros(16), np.zeros(2)]
    for layer, j, i, v in _PLANTED:
        W[layer - 1][j, i] = v
    W[0][:, 7] = distractor
    b[0][15], W[1][:, 15] = -100.0, distractor
    b[1][15], W[2][:, 15] = -100.0, distractor
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        for lin, w, bb in zip((net[0], net[2], net[4]), W, b):
            lin.weight.copy_(torch.tensor(w))
            lin.bias.copy_(torch.tensor(bb))
    x = rng.normal(size=(n_samples, 8))
    x[:, 7] = 0.0
    names = ["input", "1", "3", "4"]
    truth = {((names[layer - 1], i), (names[layer], j)) for layer, j, i, _ in _PLANTED}
    return net, x, truth


def precision_recall(kept, truth) -> tuple[float, float]:
    kept, truth = set(kept), set(truth)
    tp = len(kept & truth)
    return tp / max(len(kept), 1), tp / max(len(truth), 1)
