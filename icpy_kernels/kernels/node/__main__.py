"""Entry point: ``python -m icpy_kernels.kernels.node -f <connection file>``."""

from ipykernel.kernelapp import IPKernelApp

from icpy_kernels.kernels.node.kernel import NodeKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=NodeKernel)
