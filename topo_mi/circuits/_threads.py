"""Torch intra-op threads for small tensor work: :func:`topo_mi.parallel.torch_threads`."""
from topo_mi.parallel import torch_threads as intra_op_threads

__all__ = ["intra_op_threads"]
