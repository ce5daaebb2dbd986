"""Experiment trackers (TensorBoard, Weights & Biases, MLflow, trackio) through accelerate's tracker classes.

A listener of the training loop: each metrics.jsonl record goes to every tracker under the name
`{split}/{metric}` (train/loss, eval/rewards/margins: the metric names of metrics.jsonl, with its `split`
field in front so that train and held-out curves stay apart), at its step; the resolved config goes in
once, flattened to dotted keys (model.lora.r), as the run's hyper-parameters.

Where each one writes: TensorBoard under RUN_DIR/tensorboard/RUN_NAME; W&B's files under RUN_DIR/wandb
(online or offline as WANDB_MODE says); MLflow to MLFLOW_TRACKING_URI, or a file store in RUN_DIR/mlruns when
that is not set (with MLFLOW_ALLOW_FILE_STORE=true, which MLflow 3 asks for a file store); trackio to its own
local store (TRACKIO_DIR, by default ~/.cache/huggingface/trackio), which its dashboard (`trackio show`) reads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefalign.config import ConfigError
from prefalign.training.events import Listener

TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")
PROJECT = "prefalign"  # the W&B / trackio project and MLflow experiment, unless their own variables say otherwise

# Each tracker's import name and the extra that installs it.
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}


class TrackerError(ConfigError):
    """A tracker that cannot be used: unknown, or its package is not installed."""


def check_trackers(names: Sequence[str]) -> None:
    """Raise TrackerError for an unknown tracker or one whose package is missing, naming the extra to install."""
    import importlib.util

    for name in names:
        if name not in _PACKAGES:
            raise TrackerError(f"output.report_to: unknown tracker {name!r}; known: {', '.join(TRACKERS)}")
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            raise TrackerError(
                f"output.report_to: {name} is not installed; install it with: pip install 'prefalign[{name}]'"
            )


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """{"model": {"lora": {"r": 16}}} -> {"model.lora.r": 16}; lists and None as text (what every tracker takes)."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def tracker_values(record: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record as tracker values: `{split}/{metric}` for every number but step and split."""
    split = record.get("split", "train")
    return {
        f"{split}/{name}": float(value)
        for name, value in record.items()
        if name not in ("step", "split") and isinstance(value, int | float) and not isinstance(value, bool)
    }


def _make(name: str, run_name: str, run_dir: Path):
    from accelerate import tracking

    if name == "tensorboard":
        return tracking.TensorBoardTracker(run_name, str(run_dir / "tensorboard"))
    if name == "wandb":
        return tracking.WandBTracker(os.environ.get("WANDB_PROJECT", PROJECT), name=run_name, dir=str(run_dir))
    if name == "mlflow":
        import mlflow

        if not os.environ.get("MLFLOW_TRACKING_URI"):
            # A file store inside the run directory, as the issue asks: MLflow 3 keeps it in maintenance mode and
            # refuses it unless told; a tracking server or a database is chosen with MLFLOW_TRACKING_URI.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
        return tracking.MLflowTracker(experiment_name=PROJECT, run_name=run_name)
    return tracking.TrackioTracker(os.environ.get("TRACKIO_PROJECT", PROJECT), name=run_name)


class TrackerListener(Listener):
    """Sends the run's metrics and config to the trackers named in output.report_to (main process only)."""

    def __init__(self, names: Sequence[str], run_name: str, run_dir: Path | str, config: dict[str, Any]):
        check_trackers(names)
        run_dir = Path(run_dir)
        self.trackers = []
        for name in names:
            tracker = _make(name, run_name, run_dir)
            tracker.start()
            tracker.store_init_configuration(flatten(config))
            self.trackers.append(tracker)

    def on_log(self, record: dict) -> None:
        self._log(record)

    def on_eval(self, record: dict) -> None:
        self._log(record)

    def _log(self, record: dict) -> None:
        values = tracker_values(record)
        for tracker in self.trackers:
            tracker.log(values, step=int(record["step"]))

    def on_end(self, result: Any = None) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []
