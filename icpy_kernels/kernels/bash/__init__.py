"""A Jupyter kernel for Bash: one persistent interactive shell with separate stdout/stderr."""

from .kernel import BashKernel

__all__ = ["BashKernel"]
