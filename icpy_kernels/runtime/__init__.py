"""Languages, kernels, sessions and executions."""
