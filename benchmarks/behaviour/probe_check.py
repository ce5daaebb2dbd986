"""Does the training-time probe see the cost the benchmark's peer NLL sees? Checked on the trained adapters.

    python benchmarks/behaviour/probe_check.py [--runs runs/behaviour] [--probe FILE.jsonl]

For the base model and for every adapter the retention sweep kept (`RUNS/TASK/ROW/run/adapter`), the per-token
NLL of the peer answers (retention.peer_rows, the headline retention figure) and of the general-text probe that
a run scores as `eval/general_nll` (`prefalign/data/probe/general.jsonl`, or `--probe` to try a candidate
before shipping it), each as a relative change from the base. Per probe row too (`--rows`), to see which
voices move with the peer answers and which against them. Scored here as retention.py scores (plain
transformers, float32, the tokenizer's chat template), not through a run's renderer, so the figures are the
probe's text alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from retention import general_nll, peer_rows, written_probe_rows
from score import load

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "src" / "prefalign" / "data" / "probe" / "general.jsonl"


def own_answers(model, tokenizer, max_new_tokens: int) -> list[dict]:
    """The probe's questions with the model's own sampled answers, exactly as a run samples them
    (prefalign.eval.probe.own_answer_rows, through the tokenizer's chat template), timed."""
    from prefalign.data.render import Renderer, RenderSettings
    from prefalign.eval.probe import own_answer_rows

    start = time.perf_counter()
    rows = own_answer_rows(model, Renderer(tokenizer, RenderSettings(None, 4096, None, None)), max_new_tokens)
    print(f"sampled the base model's answers in {time.perf_counter() - start:.1f} s")
    return [{"prompt": r["prompt"], "answer": r["completion"][0]["content"]} for r in rows]


def scores(model, tokenizer, peer: list[dict], probe: list[dict]) -> dict:
    """Per-token NLL of the peer answers and of the probe, and of each probe row; the probe's is pooled from its
    rows (each answer scored once)."""
    rows = [general_nll(model, tokenizer, [row]) for row in probe]
    pooled = sum(nll * n for nll, n in rows) / sum(n for _, n in rows)
    return {"peer": general_nll(model, tokenizer, peer)[0], "probe": pooled, "rows": [nll for nll, _ in rows]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "behaviour")
    parser.add_argument("--probe", type=Path, default=SHIPPED, help="probe rows (the shipped probe's format)")
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--rows", action="store_true", help="also the change of each probe row")
    parser.add_argument("--own", action="store_true", help="score the base model's own answers to the probe's "
                        "questions, sampled as a run samples them, instead of the written answers")  # fmt: skip
    parser.add_argument("--max-new-tokens", type=int, default=128, help="with --own: tokens per answer (a run: 128)")
    args = parser.parse_args(argv)

    import torch

    torch.manual_seed(0)
    peer, probe = peer_rows(), written_probe_rows(args.probe)
    adapters = sorted(args.runs.glob("*/*/run/adapter"))
    if not adapters:
        raise SystemExit(f"{args.runs}: no kept adapters (RUNS/TASK/ROW/run/adapter)")
    base_model, tokenizer = load(args.model)
    if args.own:
        probe = own_answers(base_model, tokenizer, args.max_new_tokens)
    base = scores(base_model, tokenizer, peer, probe)
    what = "the base model's own answers" if args.own else "the written answers"
    print(f"probe {args.probe}: {len(probe)} questions, {what}; base NLL: peer {base['peer']:.3f}, "
          f"probe {base['probe']:.3f}")  # fmt: skip
    print(f"{'run':<44} {'peer':>7} {'probe':>7}")
    for adapter in adapters:
        after = scores(*load(args.model, adapter), peer, probe)
        name = f"{adapter.parents[2].name}/{adapter.parents[1].name}"
        change = {k: after[k] / base[k] - 1 for k in ("peer", "probe")}
        print(f"{name:<44} {change['peer']:>+7.1%} {change['probe']:>+7.1%}", flush=True)
        if args.rows:
            for row, b, a in zip(probe, base["rows"], after["rows"], strict=True):
                question = row["prompt"][-1]["content"][:60]
                print(f"    {a / b - 1:>+7.1%}  {question}")


if __name__ == "__main__":
    main()
