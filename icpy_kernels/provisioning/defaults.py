"""A kernel's sandbox limits by default: read by the server's settings and the provisioner's traits."""

from __future__ import annotations

# One place, so `icpy serve` and a kernel.json naming icpy-sandbox directly agree on them.
MEMORY = 1 << 30  # bytes
PROCESSES = 256
CPU = 1000  # millicores: one core
FILE_SIZE = 1 << 30  # bytes
OPEN_FILES = 1024
DISK_QUOTA = 1 << 30  # bytes
UID_RANGE = "3000000-3000999"  # uids leased to kernels when the server runs as root
