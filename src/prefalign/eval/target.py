"""What `prefalign eval` evaluates: a run directory (its saved policy and its own reference) or a model path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from prefalign.config import ConfigError, RunConfig, load_config
from prefalign.report.rundir import is_run_dir


@dataclass
class Target:
    """What is evaluated: the run's config (or one made for a bare model), the policy path and the reference's."""

    config: RunConfig
    policy: str  # a merged model directory or model path; or the base when `adapter` is set
    adapter: str | None
    reference: str | None
    run_dir: Path | None = None


def resolve_target(model_or_run: str, data: Path, reference: str | None) -> Target:
    """A run directory's config with --data as its (only) data, or a config made for a bare model path."""
    path = Path(model_or_run)
    source = {"path": str(data), "format": "auto"}
    if path.is_dir() and is_run_dir(path):
        raw = yaml.safe_load((path / "config.yaml").read_text())
        raw["data"] = {**raw["data"], "train": [source], "eval": [source], "eval_fraction": 0.0}
        raw["output"] = {**raw.get("output", {}), "dir": str(path), "report_to": []}
        config = load_config(raw)
        if config.method.kind != "policy":
            raise ConfigError(f"{path}: a reward model run; pass it as --reward-model, and a policy as MODEL_OR_RUN")
        if (path / "adapter").is_dir():
            policy, adapter = config.model.path, str(path / "adapter")
        elif (path / "merged").is_dir():
            policy, adapter = str(path / "merged"), None
        else:
            raise ConfigError(f"{path}: this run saved no adapter/ or merged/ model to evaluate")
        ref = reference or config.reference.path or config.model.path
        return Target(config, policy, adapter, ref, path)
    if path.is_dir() and (path / "config.yaml").is_file() and not (path / "config.json").is_file():
        raise ConfigError(f"{path} is not a prefalign run directory (no .prefalign-run file) nor a model directory")
    config = load_config({"model": {"path": model_or_run, "lora": None}, "data": {"train": [source], "eval": [source]}})
    return Target(config, model_or_run, None, reference)
