"""Where in the peer answers does a run's retention cost sit: at the opening of each answer, or all through it?

    python benchmarks/behaviour/where.py [--runs runs/behaviour] [--opening 8] [--tokens 12]

Both tasks teach how an answer opens (`TL;DR:`, a fixed refusal), and the peer NLL (retention.py, the
headline retention figure) scores whole answers that open differently. A rise confined to the first tokens
is the taught behaviour reaching other prompts, which a user may or may not want; a rise all through the
answer is the model getting worse at text in general. For the base model and every adapter the sweep kept
(`RUNS/TASK/ROW/run/adapter`, TRL's `RUNS/TASK/ROW/adapter`) this prints the peer NLL's relative change over
the first `--opening` answer tokens, over the rest, and the share of the total rise (in nats) that the
opening holds; and the answer tokens whose summed NLL rose most (`--tokens`), to see what the model now
finds unlikely. Scored as retention.py scores: plain transformers, float32, the tokenizer's chat template.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from retention import answer_ids, peer_rows, token_nlls
from score import load

REPO = Path(__file__).resolve().parents[2]


def split(nlls: list[list[float]], opening: int) -> tuple[float, float, int, int]:
    """(summed NLL of the first `opening` tokens of every answer, of the rest, their token counts)."""
    head = [x for row in nlls for x in row[:opening]]
    tail = [x for row in nlls for x in row[opening:]]
    return sum(head), sum(tail), len(head), len(tail)


def compare(base: list[list[float]], after: list[list[float]], opening: int) -> dict[str, float]:
    """Per-token NLL change over the opening and over the rest, and the opening's share of the summed rise."""
    b_head, b_tail, n_head, n_tail = split(base, opening)
    a_head, a_tail, _, _ = split(after, opening)
    rise = (a_head + a_tail) - (b_head + b_tail)
    return {
        "opening": (a_head - b_head) / b_head,
        "rest": (a_tail - b_tail) / b_tail,
        "whole": rise / (b_head + b_tail),
        "opening_share": (a_head - b_head) / rise if rise else 0.0,
        "opening_tokens": n_head,
        "rest_tokens": n_tail,
    }


def risers(texts: list[list[str]], base: list[list[float]], after: list[list[float]], n: int) -> list[tuple]:
    """The answer tokens (`texts`: each answer's tokens as text) whose NLL, summed over every place they occur,
    rose most."""
    rise: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for tokens, b, a in zip(texts, base, after, strict=True):
        for text, x, y in zip(tokens, b, a, strict=True):
            rise[text] += y - x
            count[text] += 1
    top = sorted(rise, key=rise.get, reverse=True)[:n]
    return [(text, rise[text], count[text]) for text in top]


def row_dir(adapter: Path) -> Path:
    """The benchmark row's directory (TASK/ROW) of an adapter: ROW/run/adapter (prefalign) or ROW/adapter (TRL)."""
    return adapter.parents[1] if adapter.parent.name == "run" else adapter.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "behaviour")
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--opening", type=int, default=8, help="answer tokens that count as the opening")
    parser.add_argument("--tokens", type=int, default=12, help="how many of the most-risen tokens to print")
    parser.add_argument("--only", nargs="*", help="row directory names (RECIPE-KEY) to score; default: all kept")
    args = parser.parse_args(argv)

    rows = peer_rows()
    model, tokenizer = load(args.model)
    base = token_nlls(model, tokenizer, rows)
    del model
    # the answers' tokens as text, once: an adapter keeps the base model's tokenizer
    texts = [[tokenizer.decode([t]) for t in answer_ids(tokenizer, r["prompt"], r["answer"])[1]] for r in rows]
    adapters = sorted([*args.runs.glob("*/*/run/adapter"), *args.runs.glob("*/trl-*/adapter")])  # prefalign's, TRL's
    if args.only:
        adapters = [a for a in adapters if row_dir(a).name in args.only]
    print(f"peer answers: {len(rows)}, opening = first {args.opening} answer tokens\n")
    print("| task | row | peer NLL change | opening | rest | opening's share of the rise |")
    print("|---|---|---|---|---|---|")
    tops = []
    for adapter in adapters:
        model, tokenizer = load(args.model, adapter)
        after = token_nlls(model, tokenizer, rows)
        del model
        change = compare(base, after, args.opening)
        task, row = row_dir(adapter).parent.name, row_dir(adapter).name
        print(
            f"| {task} | {row} | {100 * change['whole']:+.1f}% | {100 * change['opening']:+.1f}% "
            f"| {100 * change['rest']:+.1f}% | {100 * change['opening_share']:.0f}% |",
            flush=True,
        )
        tops.append((task, row, risers(texts, base, after, args.tokens)))
    for task, row, top in tops:
        listed = ", ".join(f"{text!r} +{rise:.1f} nats ({count}×)" for text, rise, count in top)
        print(f"\n{task} {row}: the tokens whose NLL rose most: {listed}")


if __name__ == "__main__":
    main()
