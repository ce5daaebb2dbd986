"""RUN_DIR/report.html from the files of a run directory: curves, held-out before/after, answers before/after,
warnings, data summary and the resolved config. Called at every eval and at the end of a run (ReportListener)
and by hand (`prefalign runs`); it reads only files, so it works on a finished, a running or a killed run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prefalign.atomic import write_text_atomically
from prefalign.report import plots
from prefalign.report.page import Raw, document, esc, fmt, pre, table
from prefalign.report.rundir import RunFiles, read_run

REPORT_FILE = "report.html"

# Curves in the order a reader looks for them; any other metric a run logs follows (throughput excepted).
POLICY_CURVES = (
    "loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected",
    "logps/chosen", "logps/rejected", "preference_accuracy", "label_accuracy", "kl", "nll_loss", "lr", "grad_norm",
)  # fmt: skip
REWARD_CURVES = (
    "loss", "accuracy", "margin", "mean_reward", "rewards/chosen", "rewards/rejected", "nll_loss", "lr", "grad_norm",
)  # fmt: skip
NOT_PLOTTED = {"step", "epoch", "split", "tokens_per_s", "scored_tokens_per_s", "examples_per_s", "min_reward",
               "max_reward"}  # fmt: skip

# The held-out table's rows: the metrics the summary in the terminal shows, then the rest.
HELD_OUT_FIRST = ("preference_accuracy", "rewards/accuracies", "rewards/margins", "accuracy", "margin", "loss")


def curve_names(files: RunFiles) -> list[str]:
    seen = {name for record in files.metrics for name, value in record.items() if isinstance(value, int | float)}
    seen -= NOT_PLOTTED
    first = REWARD_CURVES if files.reward_model else POLICY_CURVES
    return [name for name in first if name in seen] + sorted(seen - set(first))


def series(records: list[dict[str, Any]], name: str) -> list[tuple[float, float]]:
    return [(r["step"], r[name]) for r in records if isinstance(r.get(name), int | float) and "step" in r]


def render_report(run_dir: Path | str) -> Path:
    """Write RUN_DIR/report.html (atomically) and return its path. Raises ReportError for a directory that is
    not a prefalign run; a run with nothing logged yet gets a page that says so."""
    files = read_run(run_dir)
    return write_text_atomically(files.run_dir / REPORT_FILE, report_html(files))


def report_html(files: RunFiles) -> str:
    sections = [
        _overview(files),
        _warnings(files),
        _curves(files),
        _held_out(files),
        _reward_histograms(files),
        _generations(files),
        _data(files),
        _config(files),
    ]
    if files.problems:
        sections.insert(0, "".join(f'<div class="warn">{esc(p)}</div>' for p in files.problems))
    return document(f"prefalign run: {files.name}", str(files.run_dir), [s for s in sections if s])


def _overview(files: RunFiles) -> str:
    config, result = files.config, files.result or {}
    method = config.get("method") or {}
    train = config.get("train") or {}
    model = config.get("model") or {}
    last = max((r.get("step", 0) for r in files.metrics), default=0)
    if result:
        minutes, seconds = divmod(int(result.get("seconds", 0)), 60)
        status = f"finished: {result.get('steps', last)} steps in {minutes}m{seconds:02d}s"
    elif files.metrics:
        status = f"running or stopped: step {last} logged so far"
    else:
        status = "no step logged yet"
    beta = method.get("beta") if method.get("kind") != "reward" else None
    loss = method.get("loss") or ("bradley_terry" if method.get("kind") == "reward" else "default")
    if isinstance(loss, list):
        loss = " + ".join(loss)
    reference = result.get("reference_mode") or (config.get("reference") or {}).get("mode")
    processes = result.get("processes", 1)
    rows = [
        ("status", status),
        ("model", model.get("path")),
        ("method", f"{method.get('kind', 'policy')}: {loss}" + (f", beta {method['beta']}" if beta else "")),
        ("adapter", "LoRA r{r}".format(**model["lora"]) if model.get("lora") else "full fine-tuning"),
        ("precision", train.get("mixed_precision")),
        ("reference", reference if method.get("kind") != "reward" else "none (reward model)"),
        (
            "distribution",
            f"{processes} process{'es' if processes != 1 else ''}"
            + (f" on {result['device']}" if result.get("device") else ""),
        ),
        ("batch", f"{train.get('batch_size')} × {train.get('grad_accum', 1)} accumulation, lr {train.get('lr')}"),
    ]
    return "<h2>Run</h2>" + table(None, rows, numeric_from=99)


def _warnings(files: RunFiles) -> str:
    if not files.warnings:
        return ""
    items = "".join(
        f'<div class="warn">step {esc(w.get("step", "?"))}: {esc(w.get("message", ""))}</div>' for w in files.warnings
    )
    return f"<h2>Warnings ({len(files.warnings)})</h2>{items}"


def _curves(files: RunFiles) -> str:
    if not files.metrics:
        return (
            '<h2>Curves</h2><div class="empty" id="empty-state">No metrics yet: this run has not logged a step. '
            "The page is rewritten at every eval and at the end of the run.</div>"
        )
    train, evals = files.split("train"), files.split("eval")
    before = (files.before or {}).get("metrics") or {}
    warning_steps = [w["step"] for w in files.warnings if isinstance(w.get("step"), int | float)]
    figures = []
    for name in curve_names(files):
        lines = {"train": series(train, name)}
        held_out = series(evals, name)
        if name in before and isinstance(before[name], int | float):
            held_out = [(0, before[name]), *held_out]  # the model before training, as the eval curve's first point
        if held_out:
            lines["eval"] = held_out
        figures.append(plots.curve(name, lines, markers=warning_steps, caption=_caption(name)))
    return '<h2>Curves</h2><div class="plots">' + "".join(figures) + "</div>"


def _caption(name: str) -> str:
    return {
        "rewards/margins": "β·(log-ratio chosen − log-ratio rejected)",
        "rewards/accuracies": "share of pairs with chosen reward > rejected",
        "rewards/chosen": "β·log π/π_ref of the chosen answers",
        "rewards/rejected": "β·log π/π_ref of the rejected answers",
        "accuracy": "share of pairs with r(chosen) > r(rejected)",
        "margin": "r(chosen) − r(rejected)",
        "eval": "held out",
    }.get(name, "train and held-out (eval at step 0 = before training)")


def _held_out(files: RunFiles) -> str:
    before = (files.before or {}).get("metrics") or (files.result or {}).get("before") or {}
    evals = files.split("eval")
    after = (files.result or {}).get("after") or ({k: v for k, v in evals[-1].items()} if evals else {})
    if not before and not after:
        return ""
    names = [n for n in HELD_OUT_FIRST if n in before or n in after]
    names += sorted((set(before) | set(after)) - set(names) - NOT_PLOTTED)
    rows = []
    for name in names:
        b, a = before.get(name), after.get(name)
        change = a - b if isinstance(a, int | float) and isinstance(b, int | float) else None
        rows.append((name, b, a, change))
    title = "after" if (files.result or {}).get("after") else f"latest eval (step {evals[-1]['step']})" if evals else ""
    return "<h2>Held-out metrics</h2>" + table(("metric", "before", title or "after", "change"), rows)


def _reward_histograms(files: RunFiles) -> str:
    if not files.rewards:
        return ""
    figures = []
    for when in ("before", "after"):
        scores = files.rewards.get(when)
        if scores:
            groups = {"chosen": scores.get("chosen", []), "rejected": scores.get("rejected", [])}
            figures.append(plots.histogram(f"rewards {when} training", groups, caption="held-out answers"))
    return '<h2>Rewards of held-out answers</h2><div class="plots">' + "".join(figures) + "</div>"


def _generations(files: RunFiles) -> str:
    if not files.generations:
        return ""
    rows = [
        (Raw(pre(g.get("prompt", ""))), Raw(pre(g.get("before", ""))), Raw(pre(g.get("after", ""))))
        for g in files.generations
    ]
    header = ("prompt", "before", "after")
    return "<h2>Held-out answers before and after</h2>" + table(header, rows, numeric_from=99, cls="wide")


def _data(files: RunFiles) -> str:
    data = files.data
    if not data:
        return ""
    formats = ", ".join(f"{name} {count}" for name, count in (data.get("formats") or {}).items())
    dropped = data.get("dropped") or {}
    bad = data.get("bad_rows") or []
    rows = [
        ("rows read", f"{data.get('rows_read', '?')}" + (f" ({formats})" if formats else "")),
        ("bad rows skipped", len(bad) if isinstance(bad, list) else bad),
        ("dropped", ", ".join(f"{n} ({why})" for why, n in dropped.items()) or "none"),
        ("truncated", data.get("truncated", 0)),
    ]
    for key in ("train", "eval"):
        if key in data:
            rows.append((f"{key} examples", data[key]))
    out = "<h2>Data</h2>" + table(None, rows, numeric_from=99)
    lengths = data.get("lengths") or {}
    length_rows = []
    for split, columns in lengths.items():
        for column, values in columns.items():
            length_rows.append((f"{split} {column}", *values.values()))
    if length_rows:
        header = next(iter(next(iter(lengths.values())).values())).keys()
        out += "<p>Lengths in tokens after truncation:</p>" + table(("", *header), length_rows)
    return out


def _config(files: RunFiles) -> str:
    if not files.config:
        return ""
    text = yaml.safe_dump(files.config, sort_keys=False, allow_unicode=True)
    return "<h2>Resolved config</h2>" + pre(text, "config")


__all__ = ["REPORT_FILE", "fmt", "render_report", "report_html"]
