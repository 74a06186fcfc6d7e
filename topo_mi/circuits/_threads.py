"""Torch intra-op threads for small tensor work (restored afterwards).

On small matrices the cost of waking and synchronising threads exceeds the work; on a busy
machine (tests running side by side) it dominates. Work on small tensors runs single-threaded.
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def intra_op_threads(n: int | None):
    """Temporarily set torch's intra-op threads; ``None`` leaves them alone."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
