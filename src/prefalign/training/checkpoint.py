"""Resumable checkpoints, written atomically: a temp directory renamed into place when complete."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from prefalign.atomic import write_atomically


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch the next step belongs to
    step_in_epoch: int = 0  # optimizer steps already done in that epoch


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


def save_checkpoint(
    root: Path,
    state: TrainState,
    trainable: dict[str, torch.Tensor],
    optimizer,
    scheduler,
    rng_states: list[dict],
    keep: int,
) -> Path:
    """Write checkpoints/step-N atomically (main process) and prune all but the newest `keep`."""

    def write(tmp: Path) -> None:
        save_file({k: v.detach().contiguous().cpu() for k, v in trainable.items()}, tmp / "trainable.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        for rank, rng in enumerate(rng_states):
            torch.save(rng, tmp / f"rng-{rank}.pt")
        (tmp / "state.json").write_text(json.dumps(asdict(state)))

    final = write_atomically(root / f"step-{state.step}", write)
    for old in sorted(checkpoints(root), key=_step)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _step(path: Path) -> int:
    return int(path.name.removeprefix("step-"))


def checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.glob("step-*") if (p / "state.json").is_file()]


def latest_checkpoint(root: Path) -> Path | None:
    found = checkpoints(root)
    return max(found, key=_step) if found else None


def load_checkpoint(path: Path, trainable: dict[str, torch.nn.Parameter], optimizer, scheduler, rank: int):
    tensors = load_file(path / "trainable.safetensors")
    missing = set(trainable) - set(tensors)
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {len(missing)} trained tensors, e.g. {sorted(missing)[0]}")
    with torch.no_grad():
        for name, param in trainable.items():
            param.copy_(tensors[name])
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng_file = path / f"rng-{rank}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return TrainState(**json.loads((path / "state.json").read_text()))
