"""How closely each GGUF type reproduces the merged model: next-token logits on text it was not trained on, read
back by transformers (`gguf_file=`). Run:

    python benchmarks/gguf_agreement.py [MODEL_DIR] [--quant f16 q8_0 q6_k q5_k_m q4_k_m] [--split eval|all] [--rows N]

Prints, per type, over every position of the quickstart's conversations (prompt + chosen answer, chat-rendered):
top-1 agreement of the next-token prediction with the merged model (float32), the largest logit difference, the
mean KL divergence KL(merged ‖ file) (llama.cpp's `llama-perplexity --kl-divergence` measure), and the largest
top-2 logit gap of the merged model at a position where the file's top-1 differs. The same figures for the merged
model with its weights rounded to bf16 are the yardstick for "within bf16 rounding".

Why the last column: rounding the weights moves each logit a little, so the top-1 changes where the merged
model's best two tokens were that close (a near-tie). A bug (a wrong permutation, a misread scale) flips
confident positions too, so "every flip is a near-tie" tells a correct file from a broken one where the
agreement figure alone cannot.

With --llama-cpp, each file is also run by llama.cpp itself (llama-cpp-python, `logits_all`), whose logits
are what a llama.cpp, Ollama or LM Studio user gets (its CPU matrix products also round the activations, to
8 bits against quantised weights).

Memory: one conversation's logits at a time, the merged model and one file's model loaded (about 1.2 GB for
SmolLM2-135M); the merged model's logits are recomputed for each file rather than kept.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SPLITS = {"eval": ["eval"], "all": ["eval", "train"]}  # the base model was trained on neither
NEAR_TIE = 0.2  # nats between the merged model's best two logits


def held_out_ids(tokenizer, rows: int | None = None, split: str = "eval") -> list[torch.Tensor]:
    """Chat-rendered quickstart conversations (prompt + chosen answer), the first `rows`, 256 tokens at most."""
    texts = []
    for name in SPLITS[split]:
        for line in (REPO / f"data/quickstart/{name}.jsonl").read_text().splitlines():
            row = json.loads(line)
            texts.append(tokenizer.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False))
    texts = texts[:rows] if rows else texts
    return [tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids[:, :256] for text in texts]


@dataclass
class Agreement:
    top1: float  # share of positions whose next-token prediction is the merged model's
    max_diff: float  # largest |logit difference| anywhere
    mean_kl: float  # mean KL(merged ‖ file) per position, in nats
    flip_gap: float  # largest top-2 gap of the merged model at a position whose top-1 changed (0: none changed)
    positions: int
    near_ties: float  # share of positions where the merged model's best two logits are within NEAR_TIE


class Tally:
    """The figures of one model against the merged model, added up one conversation at a time."""

    def __init__(self) -> None:
        self.same = self.total = self.ties = 0
        self.max_diff = self.kl = self.flip_gap = 0.0

    def add(self, got: torch.Tensor, expected: torch.Tensor) -> None:
        agree = got.argmax(-1) == expected.argmax(-1)
        self.same += int(agree.sum())
        self.total += got.shape[0]
        self.max_diff = max(self.max_diff, (got - expected).abs().max().item())
        log_p, log_q = expected.log_softmax(-1), got.log_softmax(-1)
        self.kl += float((log_p.exp() * (log_p - log_q)).sum())
        top2 = expected.topk(2, -1).values
        gaps = top2[:, 0] - top2[:, 1]
        self.ties += int((gaps < NEAR_TIE).sum())
        if not agree.all():
            self.flip_gap = max(self.flip_gap, gaps[~agree].max().item())

    def result(self) -> Agreement:
        n = self.total
        return Agreement(self.same / n, self.max_diff, self.kl / n, self.flip_gap, n, self.ties / n)


@torch.no_grad()
def agreement(candidates: dict, merged, batches: list[torch.Tensor]) -> dict[str, Agreement]:
    """Each of `candidates` (name -> a function from token ids [1, T] to logits [T, V]) against `merged`, one
    conversation at a time: the merged model's logits are computed once per conversation for all of them."""
    tallies = {name: Tally() for name in candidates}
    for ids in batches:
        expected = merged(ids).logits[0].float()
        for name, logits_of in candidates.items():
            tallies[name].add(logits_of(ids).float(), expected)
    return {name: tally.result() for name, tally in tallies.items()}


def _hf(model):
    return lambda ids: model(ids).logits[0]


def _llama_cpp(path: Path):
    """llama.cpp's own logits for the file (what a llama.cpp, Ollama or LM Studio user runs)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=512, logits_all=True, verbose=False, n_threads=2, seed=0)

    def logits_of(ids: torch.Tensor) -> torch.Tensor:
        llm.reset()
        llm.eval(ids[0].tolist())
        return torch.from_numpy(np.array(llm.scores[: ids.shape[1]]))

    return logits_of


def measure(
    model_dir: Path,
    quants: list[str],
    work: Path,
    rows: int | None = None,
    split: str = "eval",
    llama_cpp: bool = False,
) -> dict[str, Agreement]:
    """{"bf16-rounded weights": …, quant: …} for each of `quants`, written to `work` by prefalign's export and read
    back by transformers; with `llama_cpp`, also "<quant> in llama.cpp": the same file run by llama.cpp."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefalign.export.gguf import export_gguf

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batches = held_out_ids(tokenizer, rows, split)
    merged = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rounded = copy.deepcopy(merged).to(torch.bfloat16).float()
    results = agreement({"bf16-rounded weights": _hf(rounded)}, merged, batches)
    del rounded
    for path, quant in zip(export_gguf(model_dir, work, "model", quants, overwrite=True), quants, strict=True):
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        candidates = {quant: _hf(model)}
        if llama_cpp:
            candidates[f"{quant} in llama.cpp"] = _llama_cpp(path)
        results.update(agreement(candidates, merged, batches))
        del model, candidates
        path.unlink()  # one file on disk at a time
    return results


def main() -> None:
    import transformers

    from prefalign.model.load import resolve_path

    transformers.logging.set_verbosity_error()
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", nargs="?", default=None)
    parser.add_argument("--quant", nargs="+", default=["f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m"])
    parser.add_argument("--split", choices=sorted(SPLITS), default="eval", help="eval: 45 conversations; all: 326")
    parser.add_argument("--rows", type=int, default=None, help="only the first N conversations")
    parser.add_argument("--llama-cpp", action="store_true", help="also each file's logits as llama.cpp computes them")
    args = parser.parse_args()
    model_dir = Path(args.model_dir or resolve_path("builtin:smollm2-135m-instruct"))
    with tempfile.TemporaryDirectory() as work:
        results = measure(model_dir, args.quant, Path(work), args.rows, args.split, args.llama_cpp)
    first = next(iter(results.values()))
    print(f"{model_dir} ({args.split} split{f', {args.rows} rows' if args.rows else ''}): {first.positions} "
          f"positions, {first.near_ties:.1%} of them near-ties (the merged model's best two logits within "
          f"{NEAR_TIE} nats)")  # fmt: skip
    print("| file | top-1 agreement | max abs logit difference | mean KL (nats) | largest top-2 gap at a flip |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r.top1:.2%} | {r.max_diff:.3f} | {r.mean_kl:.5f} | {r.flip_gap:.3f} |")


if __name__ == "__main__":
    main()
