"""``python -m icpy_kernels`` is ``icpy``."""

import sys

from .cli import main

sys.exit(main())
