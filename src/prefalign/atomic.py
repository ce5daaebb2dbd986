"""Atomic writes: a run's outputs, checkpoints and cached reference log-probs are whole or absent, never half."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(target: Path, write: Callable[[Path], None], *, directory: bool = True) -> Path:
    """Call `write(tmp)` on a temporary directory (or, with `directory=False`, file) beside `target`, then rename
    it over `target`: a killed or concurrent writer never leaves half of it under that name, and a failed
    `write` leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".tmp-{target.name}-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(handle)
        tmp = Path(name)
    try:
        write(tmp)
        if target.is_dir():  # os.replace cannot replace a directory that has files
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return target
