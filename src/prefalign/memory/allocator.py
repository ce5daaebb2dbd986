"""Give freed tensor memory back to the system on CPU (glibc), so a process's resident memory tracks its tensors.

glibc's malloc serves a large block with mmap and returns it to the system when freed, but after the first
such free it raises its mmap threshold to that block's size (up to 32 MiB): from then on, the per-layer
tensors of a forward and backward come from the heap, whose freed space stays resident. Measured on
SmolLM2-135M (LoRA, fp32, 4 rows × 232 positions, tests/memory_probe.py): the training process peaked at
2896 MiB above its baseline with glibc's default and at 1953 MiB with the threshold fixed at 128 KiB — what its
tensors need (the plan: 1925 MiB). Fixing the threshold (mallopt(M_MMAP_THRESHOLD), as the environment variable
MALLOC_MMAP_THRESHOLD_ would) turns the dynamic rule off.
"""

from __future__ import annotations

import ctypes
import sys

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 128 * 2**10  # glibc's own default, now fixed


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold for this process; True when it was set (Linux with glibc), else False."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # musl and other C libraries: no mallopt, nothing to change
        return False
