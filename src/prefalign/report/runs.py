"""`prefalign runs`: the runs under a directory as one table, and several runs' curves overlaid on one page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefalign.atomic import write_text_atomically
from prefalign.report import plots
from prefalign.report.page import document, table
from prefalign.report.render import curve_names, series
from prefalign.report.rundir import ReportError, RunFiles, is_run_dir, read_run


@dataclass
class RunRow:
    name: str
    method: str
    data: str
    steps: int
    accuracy_before: float | None
    accuracy_after: float | None
    margin: float | None
    seconds: float | None
    warnings: int
    status: str


def _accuracy_names(files: RunFiles) -> tuple[str, str]:
    return ("accuracy", "margin") if files.reward_model else ("rewards/accuracies", "rewards/margins")


def run_row(files: RunFiles) -> RunRow:
    method = files.config.get("method") or {}
    loss = method.get("loss") or ("bradley_terry" if files.reward_model else "")
    loss = " + ".join(loss) if isinstance(loss, list) else loss
    sources = (files.config.get("data") or {}).get("train") or []
    data = ", ".join(Path(s.get("path", "?")).name for s in sources if isinstance(s, dict))
    accuracy, margin = _accuracy_names(files)
    before = (files.before or {}).get("metrics") or {}
    evals = files.split("eval")
    after = (files.result or {}).get("after") or (evals[-1] if evals else {})
    steps = max((r.get("step", 0) for r in files.metrics), default=0)
    status = "finished" if files.result else ("running or stopped" if files.metrics else "no step yet")
    return RunRow(
        name=files.name,
        method=f"{method.get('kind', 'policy')}: {loss}" if loss else method.get("kind", "policy"),
        data=data,
        steps=(files.result or {}).get("steps", steps),
        accuracy_before=before.get(accuracy),
        accuracy_after=after.get(accuracy),
        margin=after.get(margin),
        seconds=(files.result or {}).get("seconds"),
        warnings=len(files.warnings),
        status=status,
    )


def find_runs(root: Path | str) -> list[RunFiles]:
    """Every prefalign run directory under `root` (the root itself, its children and grandchildren), by name."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{root}: no such directory")
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    candidates += [q for p in candidates[1:] for q in sorted(p.iterdir()) if q.is_dir()]
    return [read_run(p) for p in candidates if is_run_dir(p)]


def compare_html(runs: list[RunFiles]) -> str:
    """One page: for each metric any of the runs logged, every run's train curve (and held-out, dashed in name)."""
    names: list[str] = []
    for files in runs:
        names += [n for n in curve_names(files) if n not in names]
    figures = []
    for name in names:
        lines = {}
        for files in runs:
            train = series(files.split("train"), name)
            held_out = series(files.split("eval"), name)
            if train:
                lines[f"{files.name}"] = train
            if held_out:
                lines[f"{files.name} (eval)"] = held_out
        if lines:
            figures.append(plots.curve(name, lines))
    rows = [
        (r.name, r.method, r.data, r.steps, r.accuracy_before, r.accuracy_after, r.margin, r.seconds, r.warnings)
        for r in map(run_row, runs)
    ]
    header = ("run", "method", "data", "steps", "accuracy before", "after", "margin", "seconds", "warnings")
    sections = ["<h2>Runs</h2>" + table(header, rows, numeric_from=3)]
    sections.append('<h2>Curves</h2><div class="plots">' + "".join(figures) + "</div>" if figures else "")
    return document("prefalign runs compared", ", ".join(str(f.run_dir) for f in runs), sections)


def write_compare(runs: list[RunFiles], out: Path | str) -> Path:
    return write_text_atomically(Path(out), compare_html(runs))
