"""The files of a run directory, read for the report: what a run has written so far, nothing required but the
marker (a run that has only just started has no metrics yet, and its report says so)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RUN_MARKER = ".prefalign-run"  # the same name run.py writes (run.py sits above report/ and may not be imported)


class ReportError(ValueError):
    """A directory that is not a prefalign run, or a run file that cannot be read."""


@dataclass
class RunFiles:
    run_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    before: dict[str, Any] | None = None  # {"metrics", "answers"}
    result: dict[str, Any] | None = None
    generations: list[dict[str, str]] = field(default_factory=list)  # {"prompt", "before", "after"}
    data: dict[str, Any] | None = None  # data.json: rows_read, formats, bad_rows, dropped, truncated, lengths
    warnings: list[dict[str, Any]] = field(default_factory=list)  # warnings.jsonl: {"step", "message"}
    rewards: dict[str, Any] | None = None  # rewards.json (reward models): {"before"|"after": {"chosen", "rejected"}}
    problems: list[str] = field(default_factory=list)  # files present but unreadable: shown, never raised

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def reward_model(self) -> bool:
        return (self.config.get("method") or {}).get("kind") == "reward"

    def split(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.metrics if r.get("split") == name]


def is_run_dir(path: Path) -> bool:
    return (Path(path) / RUN_MARKER).is_file()


def read_run(run_dir: Path | str) -> RunFiles:
    """Read what `run_dir` holds. Raises ReportError if it is not a prefalign run directory; a damaged file is
    recorded in `problems` (the report shows it) so that one bad line never hides the rest."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such directory")
    if not is_run_dir(run_dir):
        raise ReportError(
            f"{run_dir} is not a prefalign run directory (no {RUN_MARKER} file): "
            "pass the output.dir of a `prefalign train` run"
        )
    files = RunFiles(run_dir)
    files.config = _read(files, "config.yaml", lambda text: yaml.safe_load(text) or {}) or {}
    files.metrics = _read(files, "metrics.jsonl", lambda text: _jsonl(text, "metrics.jsonl")) or []
    files.before = _read(files, "before.json", json.loads)
    files.result = _read(files, "result.json", json.loads)
    files.generations = _read(files, "generations.json", json.loads) or []
    files.data = _read(files, "data.json", json.loads)
    files.warnings = _read(files, "warnings.jsonl", lambda text: _jsonl(text, "warnings.jsonl")) or []
    files.rewards = _read(files, "rewards.json", json.loads)
    if not files.generations and files.result:
        files.generations = files.result.get("generations") or []
    return files


def _read(files: RunFiles, name: str, parse) -> Any:
    path = files.run_dir / name
    if not path.is_file():
        return None
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        files.problems.append(f"{name}: cannot be read ({exc})")
        return None


def _jsonl(text: str, name: str) -> list[dict[str, Any]]:
    rows = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if number == len(lines):  # the line a running writer has not finished: the next refresh has it
                continue
            raise ValueError(f"line {number} is not JSON") from None
    return rows
