"""Keeps RUN_DIR/report.html current while a run goes: redrawn at every held-out evaluation and at the end."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from prefalign.report.render import render_report
from prefalign.training.events import Listener

log = logging.getLogger(__name__)


class ReportListener(Listener):
    """A training-loop listener (on_eval, on_end) that rewrites the run's report.html.

    Writing the report never fails a run: an error becomes a warning (Python's `warnings`, once per kind of
    error) and is kept in `errors`; training goes on and its results are kept.
    """

    def __init__(self, run_dir: Path | str, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled  # main process only: the others share the directory
        self.errors: list[str] = []

    def render(self) -> Path | None:
        if not self.enabled:
            return None
        try:
            return render_report(self.run_dir)
        except Exception as exc:  # any failure of a report is reported, never raised into the training loop
            message = f"report.html was not written: {type(exc).__name__}: {exc}"
            self.errors.append(message)
            log.debug("report rendering failed", exc_info=True)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            return None

    def on_eval(self, record: dict) -> None:
        self.render()

    def on_end(self, result: Any = None) -> None:
        self.render()
