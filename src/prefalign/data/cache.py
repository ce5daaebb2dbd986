"""The part of the tokenisation cache key that the data and settings do not give: the code that reads rows.

`datasets` caches a map's output in its cache directory (next to the Arrow copy it made of the user's file,
never beside the file), under a fingerprint of the input's fingerprint, the mapped function and its
arguments. The function is hashed by its own code, but what it calls — the format readers, the renderer's
methods — by name only, so a prefalign that reads or renders rows differently would reuse rows cached by
the old one. The readers and the renderer take `code_version()` among their arguments to close that gap.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


@functools.cache
def code_version() -> str:
    """A hash of the sources of prefalign.data, where every step from raw rows to token ids lives."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
