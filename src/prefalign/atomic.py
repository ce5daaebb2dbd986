"""Atomic writes: a run's outputs, checkpoints and cached reference log-probs are whole or absent, never half."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(
    target: Path, write: Callable[[Path], None], *, directory: bool = True, clear_stale: bool = False
) -> Path:
    """Call `write(tmp)` on a temporary directory (or, with `directory=False`, file) beside `target`, then rename
    it over `target`: a killed or concurrent writer never leaves half of it under that name, and a failed
    `write` leaves nothing behind. `clear_stale` first removes what a killed writer of the same target left
    (only where no other process writes it at the same time: a run's own outputs, not the shared caches)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".tmp-{target.name}-"
    for stale in target.parent.glob(prefix + "*") if clear_stale else ():
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(handle)
        tmp = Path(name)
    try:
        write(tmp)
        _make_readable(tmp, directory)
        if directory and target.is_dir():  # os.replace cannot replace a directory that has files
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return target


def write_text_atomically(target: Path, text: str) -> Path:
    return write_atomically(Path(target), lambda tmp: tmp.write_text(text, encoding="utf-8"), directory=False)


def write_json_atomically(target: Path, value: object) -> Path:
    return write_text_atomically(target, json.dumps(value, indent=1, ensure_ascii=False, default=str) + "\n")


def _make_readable(tmp: Path, directory: bool) -> None:
    """Give `tmp`, and under it every file and folder, the mode a plain mkdir / open would: mkdtemp and mkstemp
    make them private, and so does safetensors' writer (its files come out 0600), but outputs are for reading,
    for example by a llama.cpp or an inference server running as another user."""
    os.chmod(tmp, _default_mode(directory))
    for path in tmp.rglob("*") if directory else ():
        if not path.is_symlink():
            os.chmod(path, _default_mode(path.is_dir()))


def _default_mode(directory: bool) -> int:
    """What a plain mkdir / open would have given under the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask
