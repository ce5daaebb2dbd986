"""Memory budgets: `train.memory_budget` strings, and what the device has free."""

from __future__ import annotations

from prefalign.config import ConfigError
from prefalign.sizes import parse_size as _parse_size


def parse_size(value: str | int | float, key: str = "train.memory_budget") -> int:
    """Bytes in `value` (prefalign.sizes.parse_size), a ConfigError naming `key` when it is not a size."""
    try:
        return _parse_size(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def device_memory(device) -> tuple[int | None, str]:
    """(bytes the process can still use on `device`, where the figure comes from); None when it cannot be read.

    GPU: the free memory torch.cuda.mem_get_info reports (other processes' use already taken off). CPU: the
    system's available memory (psutil: free + reclaimable caches), which a training process shares with others.
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except RuntimeError as exc:
            return None, f"torch.cuda.mem_get_info failed: {exc}"
        return int(free), f"free memory of {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        try:
            import psutil
        except ImportError:  # accelerate depends on psutil; without it the budget must be given
            return None, "psutil is not installed, so the available RAM cannot be read"
        return int(psutil.virtual_memory().available), "available RAM"
    return None, f"the free memory of a {device.type} device cannot be read"
