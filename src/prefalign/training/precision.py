"""train.mixed_precision: auto picks bf16 (or fp16) autocast where the device computes it fast.

A CPU without native bf16 (AVX2, AVX-512 without its bf16 extension) multiplies bf16 matrices hundreds of
times slower than float32 (measured on a 2-core AMD EPYC with AVX2: 0.27 against 93 GFLOP/s), so bf16 there
is not a saving but a stall. Whether it is fast is measured, once per process, by timing one small matmul
in each type.
"""

from __future__ import annotations

import functools
import time

import torch

# bf16 counts as fast on a CPU when its matmul takes at most this many times float32's (native bf16 is faster
# than float32; without it, hundreds of times slower).
_SLOWDOWN_LIMIT = 2.0


@functools.cache
def cpu_bf16_slowdown(size: int = 256, repeat: int = 3) -> float:
    """How many times longer a [size×size] bf16 matmul takes than a float32 one on this CPU (best of `repeat`)."""

    def best(dtype: torch.dtype) -> float:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        a @ b  # warm-up: kernel selection, first-touch of the buffers
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - started)
        return min(times)

    return best(torch.bfloat16) / best(torch.float32)


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str | None]:
    """(the autocast precision to train in, a note for the user or None) for `train.mixed_precision` on `device`.

    auto: bf16 on a GPU that has it (else fp16), bf16 on a CPU that computes it fast, no autocast otherwise.
    An explicit bf16 on a CPU that computes it slowly is kept, with a warning.
    """
    if device.type == "cuda":
        if requested == "auto":
            return ("bf16" if torch.cuda.is_bf16_supported() else "fp16"), None
        return requested, None
    if device.type != "cpu":  # MPS and the others: autocast only when asked for
        return ("no" if requested == "auto" else requested), None
    if requested not in ("auto", "bf16"):
        return requested, None
    slowdown = cpu_bf16_slowdown()
    if slowdown <= _SLOWDOWN_LIMIT:
        return "bf16", None
    why = f"this CPU multiplies bf16 matrices {slowdown:.0f}× slower than float32 (no native bf16)"
    if requested == "auto":
        return "no", f"train.mixed_precision auto: float32, because {why}"
    return "bf16", f"train.mixed_precision bf16: {why}; training will be much slower than with auto or no"
