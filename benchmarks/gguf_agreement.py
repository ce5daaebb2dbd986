"""How closely each GGUF type reproduces the merged model: next-token logits on held-out text, read back by
transformers (`gguf_file=`). Run:  python benchmarks/gguf_agreement.py [MODEL_DIR] [--quant f16 q8_0 q4_k_m] [--rows 24]

Prints, per type: top-1 agreement of the next-token prediction with the merged model over every position of
the held-out answers, the largest logit difference, and the same two figures for the merged model with its
weights rounded to bf16 (the yardstick for "within bf16 rounding").
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def held_out_ids(tokenizer, rows: int = 24) -> list[torch.Tensor]:
    """Chat-rendered held-out conversations (prompt + chosen answer) of the quickstart's eval split."""
    texts = []
    for line in (REPO / "data/quickstart/eval.jsonl").read_text().splitlines()[:rows]:
        row = json.loads(line)
        texts.append(tokenizer.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False))
    return [tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids[:, :256] for text in texts]


@torch.no_grad()
def logits(model, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    return [model(ids).logits[0].float() for ids in batches]


@torch.no_grad()
def agreement(model, batches: list[torch.Tensor], expected: list[torch.Tensor]) -> tuple[float, float]:
    """Top-1 agreement and the largest logit difference, one conversation at a time (memory: one logits row set)."""
    same, total, diff = 0, 0, 0.0
    for ids, reference in zip(batches, expected, strict=True):
        got = model(ids).logits[0].float()
        same += int((got.argmax(-1) == reference.argmax(-1)).sum())
        total += got.shape[0]
        diff = max(diff, (got - reference).abs().max().item())
    return same / total, diff


def measure(model_dir: Path, quants: list[str], work: Path, rows: int = 24) -> dict[str, tuple[float, float]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefalign.export.gguf import export_gguf

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batches = held_out_ids(tokenizer, rows)
    merged = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    expected = logits(merged, batches)
    results = {"bf16-rounded weights": agreement(merged.to(torch.bfloat16).float(), batches, expected)}
    del merged
    for path, quant in zip(export_gguf(model_dir, work, "model", quants, overwrite=True), quants, strict=True):
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        results[quant] = agreement(model, batches, expected)
        del model
    results["positions"] = (float(sum(ids.shape[1] for ids in batches)), 0.0)
    return results


def main() -> None:
    from prefalign.model.load import resolve_path

    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", nargs="?", default=None)
    parser.add_argument("--quant", nargs="+", default=["f16", "q8_0", "q4_k_m"])
    parser.add_argument("--rows", type=int, default=24, help="held-out conversations (of 45)")
    args = parser.parse_args()
    model_dir = Path(args.model_dir or resolve_path("builtin:smollm2-135m-instruct"))
    with tempfile.TemporaryDirectory() as work:
        results = measure(model_dir, args.quant, Path(work), args.rows)
    positions = int(results.pop("positions")[0])
    print(f"{model_dir}: {positions} held-out positions")
    print("| file | top-1 agreement | max abs logit difference |\n| --- | --- | --- |")
    for name, (top1, diff) in results.items():
        print(f"| {name} | {top1:.2%} | {diff:.3f} |")


if __name__ == "__main__":
    main()
