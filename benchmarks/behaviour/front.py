"""The retention front (issue 18): what each recipe buys in behaviour against what it costs elsewhere.

    python benchmarks/behaviour/front.py                 # reads benchmarks/behaviour/results.jsonl
    python benchmarks/behaviour/front.py --plot benchmarks/behaviour/front.svg

A recipe is one (engine, recipe) measured on both tasks. Its three numbers, each the worse of the two tasks:

- **gain**: behaviour after − before, in points (the smaller of the two tasks' gains);
- **side effect**: the side-effect rate after (the larger);
- **cost**: the peer NLL change (`peer_nll_change`, retention.py: the chosen answers of LLaMA-Factory's
  dpo_en_demo, which no recipe trains on), the larger of the two tasks'.

Seeds of one recipe (`defaults_seed1` beside `defaults`) are one point: each task's numbers are the mean
over its seeds, and the largest spread between seeds of one recipe on one task is the **noise** of the cost.

The **front** is the recipes no other beats on both gain and cost. The **choice** follows the issue's rule:
among recipes with gain ≥ 50 points on both tasks and side effects < 10%, the smallest cost; when none
qualifies, the knee of the front (the point farthest from the straight line between its two ends, in units
of each axis's range), which the printout says plainly. A recipe that is cheaper than the qualifying
incumbent (today's defaults: a `defaults` row on them, or a recipe that pins exactly their values) by no more
than the noise does not replace it: that difference is not measured. A `defaults` row means the defaults it
ran under (its `defaults` field), not today's; rows on earlier defaults are named with what differed.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GAIN_TARGET = 0.50  # behaviour up by at least 50 points on both tasks
SIDE_EFFECT_LIMIT = 0.10
COST_TARGET = 0.05  # the retention target: at most +5% NLL on general answers


@dataclass(frozen=True)
class Point:
    engine: str
    recipe: str
    gain: float
    side_effect: float
    cost: float
    tasks: tuple[str, ...]
    seeds: int = 1  # runs averaged into each task's numbers
    spread: float = 0.0  # the largest cost difference between this recipe's seeds on one task
    incumbent: bool = False  # ran exactly today's defaults (`defaults`, or a recipe that pins their values)

    @property
    def name(self) -> str:
        return f"{self.engine} {self.recipe}"

    @property
    def qualifies(self) -> bool:
        return self.gain >= GAIN_TARGET and self.side_effect < SIDE_EFFECT_LIMIT


SEED = re.compile(r"^(?P<recipe>.+)_seed\d+$")


def seedless(recipe: str) -> str:
    """The recipe a seed variant repeats: defaults_seed1 -> defaults."""
    match = SEED.match(recipe)
    return match["recipe"] if match else recipe


def todays_defaults() -> dict:
    import dataclasses

    from prefalign.config import RECIPE

    return dataclasses.asdict(RECIPE)


# The config keys that pin each field of prefalign.config.RECIPE: a row that set one did not run on that default.
# (The benchmark's rows are LoRA rows unless they set model.lora, so full_lr counts only for those that did; a
# row that names method.loss runs on beta's own default, 0.1, not the recipe's.)
PINNED_BY = {
    "rpo_alpha": {"method.rpo_alpha", "method.loss"},
    "beta": {"method.beta", "method.loss"},
    "lora_lr": {"train.lr", "model.lora"},
    "full_lr": {"train.lr"},
    "epochs": {"train.epochs"},
}


# What rows recorded before a field joined prefalign.config.RECIPE ran on: beta was 0.1 until 2026-12-04.
BEFORE_RECIPE_HELD = {"beta": 0.1}


def named_loss_beta() -> float:
    """method.beta's own default, which a row that names method.loss runs on (not the recipe's)."""
    from prefalign.config import MethodConfig

    return MethodConfig.model_fields["beta"].default


def earlier_defaults(row: dict, today: dict | None = None) -> str:
    """For a prefalign row that ran on other defaults than today's, what differed and was not pinned by its
    recipe (` (lora_lr 0.0005)`), so that `defaults` before a change and after it are never one recipe; ''
    for every other row."""
    ran = row.get("defaults")
    if row.get("engine") != "prefalign" or not ran:
        return ""
    ran = {**BEFORE_RECIPE_HELD, **ran}
    today = todays_defaults() if today is None else today
    pinned = {text.partition("=")[0] for text in _overrides(row)}
    changed = [
        f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in ran.items()
        if today.get(key) != value and not pinned & PINNED_BY[key] and (key != "full_lr" or "model.lora" in pinned)
    ]
    return f" ({', '.join(changed)})" if changed else ""


def runs_todays_defaults(row: dict, today: dict | None = None) -> bool:
    """Whether a row trained exactly today's recipe: `defaults` on today's defaults, or a recipe whose overrides
    only restate them (rpo1_lr3e-4 once the defaults are rpo_alpha 1 at 3e-4), whatever its seed."""
    today = todays_defaults() if today is None else today
    if row.get("engine") != "prefalign" or earlier_defaults(row, today):
        return False
    if "recipe_value" not in row:  # a row that does not say what it set: only its name can tell
        return seedless(row["recipe"]) == "defaults"
    ran = dict(text.partition("=")[::2] for text in _overrides(row))
    if "method.loss" in ran:  # a named loss runs on beta's own default, not the recipe's
        ran.setdefault("method.beta", f"{named_loss_beta():g}")
    restating = {
        "method.loss": {"sigmoid"},
        "method.loss_weights": {"null"},
        "method.rpo_alpha": {f"{today['rpo_alpha']:g}"},
        "method.beta": {f"{today['beta']:g}"},
        "train.lr": {f"{today['lora_lr']:g}"},
        "train.epochs": {f"{today['epochs']:g}"},
    }
    for key, value in ran.items():
        if key != "train.seed" and (key not in restating or f"{_number(value)}" not in restating[key]):
            return False
    return True


def _overrides(row: dict) -> list[str]:
    """The config overrides a prefalign row ran with: its recipe's, then its --set values."""
    return [*(row.get("recipe_value") or []), *(row.get("set") or [])]


def _number(value: str) -> str:
    try:
        return f"{float(value):g}"
    except ValueError:
        return value


def points(rows: list[dict], tasks: tuple[str, ...] = ("tldr", "decline")) -> list[Point]:
    """One point per (engine, recipe) measured on every task with the peer retention column; the newest row
    of each (engine, recipe with its seed, task) counts, and a task's seeds are averaged. A prefalign row that
    ran on earlier defaults is its own recipe, named with what differed (`defaults (lora_lr 0.0005)`)."""
    today = todays_defaults()
    latest: dict[tuple[str, str, str], tuple[dict, str]] = {}
    for row in rows:
        if row.get("peer_nll_change") is None:
            continue  # a row from before the peer measure, or one whose retention was refused
        label = earlier_defaults(row, today)
        latest[(row["engine"], row["recipe"] + label, row["task"])] = (row, label)
    runs: dict[tuple[str, str, str], list[dict]] = {}
    for (engine, _, task), (row, label) in latest.items():
        runs.setdefault((engine, seedless(row["recipe"]) + label, task), []).append(row)
    result = []
    for engine, recipe in sorted({(e, r) for e, r, _ in runs}):
        per_task = [runs.get((engine, recipe, task)) for task in tasks]
        if any(seeds is None for seeds in per_task):
            continue
        gains = [[r["behaviour_after"] - r["behaviour_before"] for r in seeds] for seeds in per_task]
        sides = [[r["side_effect_after"] for r in seeds] for seeds in per_task]
        costs = [[r["peer_nll_change"] for r in seeds] for seeds in per_task]
        result.append(
            Point(
                engine=engine,
                recipe=recipe,
                gain=min(map(_mean, gains)),
                side_effect=max(map(_mean, sides)),
                cost=max(map(_mean, costs)),
                tasks=tasks,
                seeds=min(len(s) for s in per_task),
                spread=max(max(c) - min(c) for c in costs),
                incumbent=all(runs_todays_defaults(r, today) for seeds in per_task for r in seeds),
            )
        )
    return result


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def noise(candidates: list[Point]) -> float:
    """The cost's noise: the largest spread between seeds of one recipe on one task (0 without seeds)."""
    return max((p.spread for p in candidates), default=0.0)


def front(candidates: list[Point]) -> list[Point]:
    """The points no other point beats on both gain (higher) and cost (lower), by rising cost."""
    kept = [
        p
        for p in candidates
        if not any((q.gain >= p.gain and q.cost <= p.cost) and (q.gain > p.gain or q.cost < p.cost) for q in candidates)
    ]
    return sorted(kept, key=lambda p: p.cost)


def knee(line: list[Point]) -> Point:
    """The front's point farthest from the chord between its ends, each axis scaled to its range."""
    if len(line) <= 2:
        return max(line, key=lambda p: p.gain)
    first, last = line[0], line[-1]
    span_cost = (last.cost - first.cost) or 1.0
    span_gain = (last.gain - first.gain) or 1.0

    def distance(p: Point) -> float:
        x, y = (p.cost - first.cost) / span_cost, (p.gain - first.gain) / span_gain
        return abs(y - x)  # the chord runs from (0, 0) to (1, 1) in scaled units

    return max(line[1:-1], key=distance)


def choose(candidates: list[Point]) -> tuple[Point | None, str]:
    """The recipe to recommend and why."""
    qualified = [p for p in candidates if p.qualifies]
    if qualified:
        best = min(qualified, key=lambda p: p.cost)
        met = "meets" if best.cost <= COST_TARGET else "misses"
        why = (
            f"the cheapest of {len(qualified)} recipe(s) with behaviour ≥ {GAIN_TARGET:.0%} up on every task and "
            f"side effects < {SIDE_EFFECT_LIMIT:.0%}; it {met} the +{COST_TARGET:.0%} retention target"
        )
        defaults = next((p for p in qualified if p.incumbent), None)
        spread = noise(candidates)
        if defaults is not None and best is not defaults and defaults.cost - best.cost <= spread:
            return defaults, (
                f"{best.name} is the cheapest recipe that qualifies, but by {100 * (defaults.cost - best.cost):.1f} "
                f"points, within the seeds' noise ({100 * spread:.1f} points): the defaults stay; "
                f"they {'meet' if defaults.cost <= COST_TARGET else 'miss'} the +{COST_TARGET:.0%} retention target"
            )
        return best, why
    line = front([p for p in candidates if p.side_effect < SIDE_EFFECT_LIMIT]) or front(candidates)
    if not line:
        return None, "no recipe has been measured on every task yet"
    return knee(line), (
        f"no recipe reaches behaviour ≥ {GAIN_TARGET:.0%} up on every task with side effects < "
        f"{SIDE_EFFECT_LIMIT:.0%}: the knee of the front"
    )


def table(candidates: list[Point]) -> str:
    on_front = {p.name for p in front(candidates)}
    lines = [
        "| engine | recipe | behaviour gain (worse task) | side effect (worse task) "
        "| peer NLL change (worse task) | seeds | front |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in sorted(candidates, key=lambda p: p.cost):
        lines.append(
            f"| {p.engine} | {p.recipe} | {100 * p.gain:+.0f} pts | {p.side_effect:.0%} | {100 * p.cost:+.1f}% "
            f"| {p.seeds} | {'yes' if p.name in on_front else ''} |"
        )
    return "\n".join(lines)


def plot(candidates: list[Point], path: Path) -> None:
    """Gain against cost, the front joined, the chosen point ringed; SVG or PNG by the file's suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen, _ = choose(candidates)
    line = front(candidates)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for engine, marker in (("prefalign", "o"), ("trl", "s")):
        mine = [p for p in candidates if p.engine == engine]
        ax.scatter([100 * p.cost for p in mine], [100 * p.gain for p in mine], marker=marker, label=engine)
    ax.plot([100 * p.cost for p in line], [100 * p.gain for p in line], "k--", linewidth=1, label="front")
    for p in candidates:
        ax.annotate(p.recipe, (100 * p.cost, 100 * p.gain), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if chosen is not None:
        ax.scatter([100 * chosen.cost], [100 * chosen.gain], s=200, facecolors="none", edgecolors="red", label="chosen")
    ax.axhline(100 * GAIN_TARGET, color="grey", linewidth=0.5)
    ax.axvline(100 * COST_TARGET, color="grey", linewidth=0.5)
    ax.set_xlabel("peer NLL change, worse task (%)")
    ax.set_ylabel("behaviour gain, worse task (points)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> tuple[Point | None, str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(HERE / "results.jsonl"))
    parser.add_argument("--plot", help="write the front as SVG or PNG here")
    args = parser.parse_args(argv)
    path = Path(args.results)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    candidates = points(rows)
    print(table(candidates))
    chosen, why = choose(candidates)
    print()
    print(f"chosen: {chosen.name if chosen else '—'}: {why}")
    if args.plot and candidates:
        plot(candidates, Path(args.plot))
        print(f"plot: {args.plot}")
    return chosen, why


if __name__ == "__main__":
    main()
