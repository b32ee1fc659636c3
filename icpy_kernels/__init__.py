"""icpy_kernels: stateful Jupyter-kernel sessions behind a streaming WebSocket bridge."""

__version__ = "0.1.0"
