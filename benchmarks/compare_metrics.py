"""The largest relative difference, per metric, between the train steps of two or more runs' metrics.jsonl.

    python benchmarks/compare_metrics.py runs/one runs/ddp runs/fsdp2 [--tolerance 1e-4]

The first run is the reference; each other run is compared step by step on the metrics both logged (loss, rewards,
log-probs, KTO's kl, a reward model's accuracy and margins, grad_norm; not the timings). Exits 1 when a run's
steps differ from the reference's or a value x' differs from x by more than tolerance·|x| + atol.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SKIPPED = {"step", "epoch", "split", "lr", "tokens_per_s", "scored_tokens_per_s", "examples_per_s"}


def train_steps(run_dir: Path) -> dict[int, dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, filter(None, lines)) if r["split"] == "train"}


def differences(reference: dict[int, dict], other: dict[int, dict]) -> dict[str, list[tuple[float, float, int]]]:
    """metric -> per step (|x' − x|, |x|, step), for the metrics both runs logged."""
    found: dict[str, list[tuple[float, float, int]]] = {}
    for step, ref in reference.items():
        for name, value in ref.items():
            if name in SKIPPED or name not in other[step] or not isinstance(value, (int, float)):
                continue
            found.setdefault(name, []).append((abs(other[step][name] - value), abs(value), step))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories; the first is the reference")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="relative")
    parser.add_argument("--atol", type=float, default=1e-5, help="absolute slack (rewards near 0 are differences "
                        "of summed log-probs, whose float32 rounding is ~1e-5)")  # fmt: skip
    args = parser.parse_args()
    reference = train_steps(args.runs[0])
    failed = False
    for run in args.runs[1:]:
        other = train_steps(run)
        if sorted(other) != sorted(reference):
            print(f"{run}: steps {sorted(other)} differ from {args.runs[0]}'s {sorted(reference)}")
            failed = True
            continue
        print(f"{run} vs {args.runs[0]} ({len(reference)} steps): largest difference per metric")
        for metric, steps in sorted(differences(reference, other).items()):
            relative, at = max((diff / max(size, 1e-12), step) for diff, size, step in steps)
            absolute = max(diff for diff, _, _ in steps)
            past = [step for diff, size, step in steps if diff > args.tolerance * size + args.atol]
            failed |= bool(past)
            note = f"  OVER {args.tolerance:g}·|x| + {args.atol:g} at steps {past}" if past else ""
            print(f"    {metric:24s} relative {relative:.2e} (step {at}), absolute {absolute:.2e}{note}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
