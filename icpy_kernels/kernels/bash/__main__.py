"""Entry point: `python -m icpy_kernels.kernels.bash -f <connection_file>`."""

from ipykernel.kernelapp import IPKernelApp

from .kernel import BashKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=BashKernel)
