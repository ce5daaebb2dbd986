"""The loop's everyday listeners: the progress display, the likelihood watch and the warnings file.

(The metrics log, training.metrics.MetricsLog, is a listener too.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from prefalign.training.events import Listener
from prefalign.training.metrics import truncate_jsonl_after
from prefalign.training.watch import Finding, LikelihoodWatch


class ProgressDisplay(Listener):
    """A progress bar with the step's loss, accuracy and margin; plain lines when the output is not a terminal.

    A context manager, so the bar is closed even when the loop raises.
    """

    def __init__(self, console: Console, headline: tuple[str, str], enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        accuracy, margin = headline
        # A step of unpaired rows with only one label has no margin: show what there is.
        self.shown = (("loss", "loss", ".4f"), (accuracy, "acc", ".2f"), (margin, "margin", ".3f"))
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            disable=not enabled,
        )
        self.task = self.progress.add_task("train", total=None, info="")
        self.total = 0

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_start(self, step: int, total_steps: int) -> None:
        self.total = total_steps
        if self.enabled and step:
            self.console.print(f"Resuming from checkpoint step-{step} (step {step} of {total_steps})")
        self.progress.update(self.task, total=total_steps, completed=step)

    def on_step(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def on_log(self, record: dict) -> None:
        info = "  ".join(f"{label} {record[name]:{fmt}}" for name, label, fmt in self.shown if name in record)
        self.progress.update(self.task, info=info)
        if self.enabled and not self.console.is_terminal:
            rate = f"{record['examples_per_s']:.2f} examples/s" if "examples_per_s" in record else ""
            self.console.print(f"step {record['step']}/{self.total}  {info}  {rate}")

    def on_finding(self, finding: Finding) -> None:
        if self.enabled:
            self.progress.console.print(f"[yellow]warning:[/yellow] {finding}")


class WatchListener(Listener):
    """Feeds logged train steps to a LikelihoodWatch and reports each new finding through `report`."""

    def __init__(self, watch: LikelihoodWatch, report: Callable[[Finding], None]) -> None:
        self.watch = watch
        self.report = report
        self.findings: list[Finding] = []

    def on_log(self, record: dict) -> None:
        for finding in self.watch.update(record):
            self.findings.append(finding)
            self.report(finding)


class FindingsFile(Listener):
    """RUN_DIR/warnings.jsonl: one {"step", "kind", "message"} line per finding, for reports read mid-run."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    def on_start(self, step: int, total_steps: int) -> None:
        if self.enabled:  # a resumed run forgets findings made after its checkpoint
            truncate_jsonl_after(self.path, step)

    def on_finding(self, finding: Finding) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": finding.step, "kind": finding.kind, "message": str(finding)}) + "\n")
