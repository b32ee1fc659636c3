"""JavaScript kernel: a Jupyter kernel that drives a long-lived Node.js process."""

from icpy_kernels.kernels.node.kernel import NodeKernel

__all__ = ["NodeKernel"]
