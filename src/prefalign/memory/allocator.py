"""Give freed tensor memory back to the system on CPU (glibc), so a process's resident memory tracks its tensors.

glibc's malloc serves a large block with mmap and returns it to the system when freed, but after the first
such free it raises its mmap threshold to that block's size (up to 32 MiB): from then on, the per-layer
tensors of a forward and backward come from the heap, whose freed space stays resident. Measured on
SmolLM2-135M (LoRA, fp32, 4 rows × 232 positions, tests/memory_probe.py): the training process peaked at
2896 MiB above its baseline with glibc's default and at 1953 MiB with the threshold fixed at 128 KiB — what its
tensors need (the plan: 1925 MiB). Fixing the threshold (mallopt(M_MMAP_THRESHOLD), as the environment variable
MALLOC_MMAP_THRESHOLD_ would) turns the dynamic rule off.

Which threshold: every block above it is mapped afresh and its pages faulted in (zeroed) at each use, which
costs system time. Measured 2026-12-03, the quickstart's config (SmolLM2-135M, LoRA, 5 steps, 2 threads, idle
machine), examples/s and peak RSS: 128 KiB 0.42-0.44 and 2573 MiB; 1 MiB 0.71 and 3065 MiB; 8 MiB 0.85 and
3243 MiB; glibc's default 0.78-0.82 and 3223-3301 MiB. 1 MiB is the knee: most of the speed back for a peak 6%
below glibc's default (128 KiB: 21%); the plan tests' runs peak 1-8% above 128 KiB and the plan stays within
11% of them (tests/test_memory_plan.py). Long sequences lose nothing to it (their per-layer tensors are many
MiB, mapped either way).
"""

from __future__ import annotations

import ctypes
import sys

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 2**20  # the knee measured above


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold for this process; True when it was set (Linux with glibc), else False."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # musl and other C libraries: no mallopt, nothing to change
        return False
