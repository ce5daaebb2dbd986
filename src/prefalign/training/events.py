"""Events the training loop emits, and the listeners that act on them.

The loop runs the steps and says what happened; it knows none of its listeners. The metrics log, the progress
display, the likelihood watch and the warnings file listen today; trackers and the HTML report are listeners too.
Every method is optional: a listener overrides the events it cares about.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


class Listener:
    def on_start(self, step: int, total_steps: int) -> None:
        """The loop is about to run from optimizer step `step` (0, or where a resumed run left off)."""

    def on_step(self, step: int) -> None:
        """Optimizer step `step` is done (logged or not)."""

    def on_log(self, record: dict) -> None:
        """A logged train step: the record written to metrics.jsonl."""

    def on_eval(self, record: dict) -> None:
        """A held-out evaluation: the record (split "eval") written to metrics.jsonl."""

    def on_finding(self, finding: Any) -> None:
        """A likelihood-watch finding (training.watch.Finding: `.step`, `.kind`, str() for people)."""

    def on_checkpoint(self, path: Path) -> None:
        """A resumable checkpoint directory is complete."""

    def on_end(self, result: Any) -> None:
        """The loop finished (a training.loop.LoopResult)."""


class Events:
    """Hands each event to every listener, in the order they were added."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self.listeners: list[Listener] = list(listeners)

    def add(self, *listeners: Listener) -> None:
        self.listeners.extend(listeners)

    def start(self, step: int, total_steps: int) -> None:
        for listener in self.listeners:
            listener.on_start(step, total_steps)

    def step(self, step: int) -> None:
        for listener in self.listeners:
            listener.on_step(step)

    def log(self, record: dict) -> None:
        for listener in self.listeners:
            listener.on_log(record)

    def eval(self, record: dict) -> None:
        for listener in self.listeners:
            listener.on_eval(record)

    def finding(self, finding: Any) -> None:
        for listener in self.listeners:
            listener.on_finding(finding)

    def checkpoint(self, path: Path) -> None:
        for listener in self.listeners:
            listener.on_checkpoint(path)

    def end(self, result: Any) -> None:
        for listener in self.listeners:
            listener.on_end(result)
