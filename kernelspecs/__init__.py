"""Kernelspecs shipped with icpy_kernels (mapped into the package as icpy_kernels.kernelspecs)."""
