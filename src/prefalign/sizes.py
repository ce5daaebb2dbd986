"""Memory sizes as people write them: 16GB, 16 GiB, 16000MiB (config values; no dependency on anything else)."""

from __future__ import annotations

import re

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,  # bare letters as `ulimit` and `docker --memory` read them
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
GiB = 2**30


def parse_size(value: str | int | float) -> int:
    """Bytes in `value`: 16GB (10⁹ each), 16 GiB or 16G (2³⁰ each), 16000MiB, or a plain number of bytes.

    Raises ValueError naming the accepted forms for anything else ("lots", "-1GB", "16 GiBs").
    """
    hint = "write it as 16GiB, 16 GB or 16000MiB (GB = 10⁹ bytes, GiB = 2³⁰)"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{value!r} is not a size; {hint}")
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"{value!r} is not a size; {hint}")
        size, unit = float(match.group(1)), _UNITS[match.group(2).lower()]
    else:
        size, unit = float(value), 1
    if size <= 0:
        raise ValueError(f"{value!r} is not a size: it must be more than 0 bytes")
    return int(size * unit)


def describe_bytes(n: float) -> str:
    """1.23 GiB / 456 MiB: sizes in binary units, as the budget takes them."""
    if abs(n) >= GiB:
        return f"{n / GiB:.2f} GiB"
    return f"{n / 2**20:.0f} MiB"
