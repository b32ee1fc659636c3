"""Kernels written by this project."""
