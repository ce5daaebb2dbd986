"""Resumable checkpoints, written atomically: a temp directory renamed into place when complete."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from prefalign.names import ConfigError

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch the next step belongs to
    step_in_epoch: int = 0  # optimizer steps already done in that epoch
    # How the steps were taken: the data position above counts steps of this many examples (0: not recorded,
    # a checkpoint of an older prefalign), drawn by this many processes.
    examples_per_step: int = 0
    processes: int = 1


class CheckpointError(OSError):
    """A checkpoint that could not be written; the message names the file and the checkpoint left intact."""


def rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rng_json(state: dict) -> dict:
    """`rng_state()` as JSON: plain numbers instead of pickled objects (only tensors and numbers are saved)."""
    version, internal, gauss = state["python"]
    name, keys, position, has_gauss, cached = state["numpy"]
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": state["torch"].tolist(),
        "cuda": None if state["cuda"] is None else [t.tolist() for t in state["cuda"]],
    }


def _rng_from_json(saved: dict) -> dict:
    version, internal, gauss = saved["python"]
    name, keys, position, has_gauss, cached = saved["numpy"]
    return {
        "python": (version, tuple(internal), gauss),
        "numpy": (name, np.array(keys, dtype=np.uint32), position, has_gauss, cached),
        "torch": torch.tensor(saved["torch"], dtype=torch.uint8),
        "cuda": None if saved["cuda"] is None else [torch.tensor(t, dtype=torch.uint8) for t in saved["cuda"]],
    }


# Written last into a checkpoint: every file's size, so that resuming can tell a complete checkpoint from one
# whose files were cut short (copied in part, or a disk that filled outside prefalign's own writes).
MANIFEST = "manifest.json"
# The folder of a sharded (FSDP) run's checkpoint where every process writes its shards (training.fsdp.save_sharded)
# before the main process writes the rest; such a checkpoint has no trainable.safetensors or optimizer.pt.
SHARDED = "sharded"


def temp_dir(root: Path, step: int) -> Path:
    """Where checkpoint step-N is written before it is renamed into place."""
    return root / f".tmp-step-{step}"


def save_checkpoint(
    root: Path,
    state: TrainState,
    trainable: dict[str, torch.Tensor] | None,
    optimizer,
    scheduler,
    rng_states: list[dict],
    keep: int,
) -> Path:
    """Write checkpoints/step-N atomically (main process) and prune all but the newest `keep`.

    Everything goes into `.tmp-step-N`, renamed to `step-N` only when complete: a process killed mid-write, or a
    disk that fills, leaves the earlier checkpoints as they were. Nothing is pickled beyond what torch's
    `weights_only` loader reads back (tensors, numbers, lists and dicts); the RNG states are JSON. With
    `trainable` and `optimizer` None (a sharded run), every process has already written its shards into the
    temp directory's SHARDED folder, which is kept.
    """
    final = root / f"step-{state.step}"
    tmp = temp_dir(root, state.step)
    writing = tmp
    try:
        if trainable is not None:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            writing = tmp / "trainable.safetensors"
            save_file({k: v.detach().contiguous().cpu() for k, v in trainable.items()}, writing)
            writing = tmp / "optimizer.pt"
            torch.save(optimizer.state_dict(), writing)
        writing = tmp / "scheduler.pt"
        torch.save(scheduler.state_dict(), writing)
        for rank, rng in enumerate(rng_states):
            writing = tmp / f"rng-{rank}.json"
            writing.write_text(json.dumps(_rng_json(rng)))
        writing = tmp / "state.json"
        writing.write_text(json.dumps(asdict(state)))
        sizes = {str(path.relative_to(tmp)): path.stat().st_size for path in sorted(tmp.rglob("*")) if path.is_file()}
        writing = tmp / MANIFEST
        writing.write_text(json.dumps(sizes))
    except Exception as exc:
        # torch.save and safetensors report a full disk as a RuntimeError of their own ("iostream error"), so any
        # error here is a failed write; how much space is left tells the user whether the disk is why.
        shutil.rmtree(tmp, ignore_errors=True)  # free what was written; the earlier checkpoints are untouched
        previous = latest_checkpoint(root)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        free = shutil.disk_usage(root).free if root.is_dir() else 0
        error = CheckpointError(
            f"checkpoint step {state.step}: could not write {writing}: {reason} ({free / 2**20:.1f} MiB free on "
            f"that disk); {kept}; free space (or fix the directory) and continue with train.resume: true (--resume)"
        )
        error.errno = getattr(exc, "errno", None) or errno.EIO
        raise error from exc
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(checkpoints(root), key=_step)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _step(path: Path) -> int:
    return int(path.name.removeprefix("step-"))


def incomplete(path: Path) -> str | None:
    """Why the checkpoint directory `path` cannot be resumed from, or None when it is complete."""
    if not (path / "state.json").is_file():
        return "no state.json"
    manifest = path / MANIFEST
    if not manifest.is_file():  # written by a prefalign before the manifest: complete if its state.json is there
        return None
    try:
        sizes = json.loads(manifest.read_text())
    except ValueError:
        return f"{MANIFEST} is not JSON"
    for name, size in sizes.items():
        found = (path / name).stat().st_size if (path / name).is_file() else None
        if found != size:
            return f"{name}: {'missing' if found is None else f'{found} bytes, {size} written'}"
    return None


def checkpoints(root: Path) -> list[Path]:
    """The complete checkpoints under `root`."""
    if not root.is_dir():
        return []
    return [p for p in root.glob("step-*") if p.name.removeprefix("step-").isdigit() and incomplete(p) is None]


def skipped_checkpoints(root: Path) -> list[str]:
    """The checkpoint directories under `root` that resuming ignores, each with the reason."""
    if not root.is_dir():
        return []
    skipped = [f"{p}: incomplete (the write was interrupted)" for p in sorted(root.glob(".tmp-step-*"))]
    for path in sorted(root.glob("step-*")):
        if (reason := incomplete(path)) is not None:
            skipped.append(f"{path}: incomplete ({reason})")
    return skipped


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint; incomplete ones are ignored (`skipped_checkpoints` says which)."""
    found = checkpoints(root)
    return max(found, key=_step) if found else None


def load_checkpoint(path: Path, trainable: dict[str, torch.nn.Parameter] | None, optimizer, scheduler, rank: int):
    """Read a checkpoint back into the trained parameters, optimizer, scheduler and RNG; returns its TrainState.
    `trainable` and `optimizer` None: a sharded run, which has read its shards already (training.fsdp)."""
    sharded = (path / SHARDED).is_dir()
    if sharded != (trainable is None):
        written, launched = ("a sharded (FSDP)", "an unsharded") if sharded else ("an unsharded", "a sharded (FSDP)")
        raise ConfigError(
            f"train.resume: {path} was written by {written} run and this is {launched} one; resume it as it was "
            "written (train.fsdp, or the accelerate FSDP config, on several processes for a sharded checkpoint)"
        )
    if trainable is not None:
        tensors = load_file(path / "trainable.safetensors")
        missing = set(trainable) - set(tensors)
        if missing:
            raise ValueError(f"{path}: checkpoint lacks {len(missing)} trained tensors, e.g. {sorted(missing)[0]}")
        with torch.no_grad():
            for name, param in trainable.items():
                param.copy_(tensors[name])
        # weights_only: torch's safe loader, which rebuilds tensors and plain containers and runs no pickled code.
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng_file = path / f"rng-{rank}.json"
    if rng_file.is_file():
        set_rng_state(_rng_from_json(json.loads(rng_file.read_text())))
    elif (path / f"rng-{rank}.pt").is_file():  # an older checkpoint pickled numpy's state, which is not safe to load
        log.warning("%s: RNG state saved by an older prefalign is not loaded; dropout may differ", path)
    return TrainState(**json.loads((path / "state.json").read_text()))


def check_resume_layout(root: Path, processes: int, examples_per_step: int, launch: str) -> str | None:
    """Before any weight loads: can the newest checkpoint under `root` continue with `processes` processes taking
    `examples_per_step` examples a step? Another process count with the same examples per step draws the same
    steps (the step's examples are split across processes, loop.micro_batches), so it continues, and the note
    returned says so; another number of examples per step would read other examples at the saved data position,
    so it is refused, naming what the checkpoint was written with and what `launch` gives."""
    last = latest_checkpoint(root)
    if last is None:
        return None
    saved = TrainState(**json.loads((last / "state.json").read_text()))
    if saved.examples_per_step and saved.examples_per_step != examples_per_step:
        per_process = saved.examples_per_step // saved.processes
        raise ConfigError(
            f"train.resume: {last} was written by {saved.processes} process(es) taking {saved.examples_per_step} "
            f"examples a step; this launch ({launch}) takes {examples_per_step}, so the saved data position would "
            f"point at other examples. Resume with batch_size × grad_accum × processes = {saved.examples_per_step} "
            f"(e.g. {saved.processes} process(es) with batch_size × grad_accum = {per_process})"
        )
    if saved.processes != processes:
        return (
            f"{last} was written by {saved.processes} process(es); continuing on {processes} with the same "
            f"{examples_per_step} examples a step, so the same data order (dropout's random numbers differ)"
        )
    return None
