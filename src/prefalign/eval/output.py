"""What `prefalign eval` writes: eval.json (the figures), eval.jsonl (one line per prompt) and eval.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefalign.atomic import write_json_atomically, write_text_atomically
from prefalign.report.page import Raw, document, esc, pre, table


def write_eval(out_dir: Path, summary: dict[str, Any], answers: list[dict[str, Any]]) -> None:
    """The three files, each written atomically."""
    write_json_atomically(out_dir / "eval.json", summary)
    lines = "".join(json.dumps(answer, ensure_ascii=False) + "\n" for answer in answers)
    write_text_atomically(out_dir / "eval.jsonl", lines)
    write_text_atomically(out_dir / "eval.html", eval_html(summary, answers))


def eval_html(summary: dict[str, Any], answers: list[dict[str, Any]]) -> str:
    sections = []
    if summary["pairs"]:
        rows = [(name, value) for name, value in summary["pairs"].items()]
        sections.append("<h2>Preference pairs</h2>" + table(("metric", "value"), rows))
    if summary["rewards"]:
        r = summary["rewards"]
        rows = [
            ("mean reward, base", r["mean_reward_base"]),
            ("mean reward, aligned", r["mean_reward_aligned"]),
            ("win rate of aligned over base", r["win_rate"]),
            ("loss rate", r["loss_rate"]),
            ("ties (equal rewards)", r["tie_rate"]),
        ]
        sections.append(f"<h2>Reward model: {esc(summary['reward_model'])}</h2>" + table(("", "value"), rows))
    header = ["prompt", "base", "aligned"]
    with_rewards = bool(answers) and "reward_base" in answers[0]
    if with_rewards:
        header += ["reward base", "reward aligned"]
    rows = []
    for a in answers:
        row = [Raw(pre(a["prompt"])), Raw(pre(a["base"])), Raw(pre(a["aligned"]))]
        if with_rewards:
            row += [a["reward_base"], a["reward_aligned"]]
        rows.append(row)
    if rows:
        sections.append(
            f"<h2>Answers, base and aligned ({_how(summary)})</h2>" + table(header, rows, numeric_from=3, cls="wide")
        )
    else:
        sections.append('<div class="empty">No prompts to answer.</div>')
    subtitle = f"{summary['model']} on {summary['data']}" + (
        f", against {summary['reference']}" if summary["reference"] else ""
    )
    return document("prefalign eval", subtitle, sections)


def _how(summary: dict[str, Any]) -> str:
    g = summary.get("generation") or {"mode": "greedy"}
    if g["mode"] != "sampled":
        return "greedy"
    return f"sampled: seed {g['seed']}, temperature {g['temperature']}, top-p {g['top_p']}"
