"""Score a model on a behaviour task: greedy answers to the held-out prompts, read by the task's rule.

    python benchmarks/behaviour/score.py --task tldr --model builtin:smollm2-135m-instruct
    python benchmarks/behaviour/score.py --task tldr --model BASE_DIR --adapter runs/.../adapter
    python benchmarks/behaviour/score.py --task decline --model runs/.../merged --limit 4

The model is a directory (or hub id, or `builtin:` name) that `from_pretrained` reads, optionally with a
PEFT adapter on it (merged before generating); `score()` also takes a loaded model. Generation is greedy,
in float32, batched with left padding (prompts sorted by length so each batch pads little), and the chat
template is the tokenizer's own, so prefalign- and TRL-trained models are read the same way.
Deterministic: the same model, prompts and settings give the same answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rules import TASKS, Task, is_degenerate


@dataclass
class Score:
    task: str
    behaviour: float  # share of held-out target prompts whose answer shows the behaviour
    side_effect: float  # share of held-out control prompts whose answer shows it
    degenerate: float  # share of all answers that are empty or loop (rules.is_degenerate)
    n_target: int
    n_control: int
    seconds: float
    answers: list[dict] = field(default_factory=list)  # prompt, kind, topic, answer, shows, degenerate

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "answers"}


def resolve(model: str) -> str:
    """`builtin:` names and .gguf files become the cached directory prefalign converts them to."""
    if model.startswith("builtin:") or model.endswith(".gguf"):
        from prefalign.model.load import resolve_path

        return resolve_path(model)
    return model


def load(model: str, adapter: str | Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) in float32 eval mode; an adapter is merged into the weights."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.disable_progress_bar()
    path = resolve(model)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        policy = PeftModel.from_pretrained(policy, str(adapter)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter) if adapter and _has_tokenizer(adapter) else path)
    return policy.eval(), tokenizer


def _has_tokenizer(path: str | Path) -> bool:
    return (Path(path) / "tokenizer_config.json").is_file()


def generate(
    model: Any, tokenizer: Any, prompts: list[list[dict]], max_new_tokens: int = 48, batch_size: int = 8
) -> list[str]:
    """Greedy answers to chat prompts (message lists), in the order given."""
    import torch

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    # The template writes its own special tokens; the tokenizer must not add a second BOS.
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    answers: list[str] = [""] * len(ids)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.tensor([[pad_id] * (width - len(ids[i])) + ids[i] for i in batch], device=device)
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in batch], device=device)
            out = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
            )
            for row, i in enumerate(batch):
                answers[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True).strip()
    model.train(was_training)
    return answers


def score(
    task: Task | str,
    model: Any,
    tokenizer: Any = None,
    *,
    adapter: str | Path | None = None,
    limit: int | None = None,
    max_new_tokens: int = 48,
    batch_size: int = 8,
) -> Score:
    """Behaviour and side-effect rates of `model` (a loaded model with `tokenizer`, or a path) on `task`."""
    task = TASKS[task] if isinstance(task, str) else task
    if isinstance(model, (str, Path)):
        model, tokenizer = load(str(model), adapter)
    rows = task.heldout(limit)
    started = time.perf_counter()
    answers = generate(model, tokenizer, [row["prompt"] for row in rows], max_new_tokens, batch_size)
    seconds = time.perf_counter() - started
    records = [
        {
            "prompt": row["prompt"][-1]["content"],
            "kind": row["kind"],
            "topic": row["topic"],
            "answer": answer,
            "shows": task.rule(answer),
            "degenerate": is_degenerate(answer),
        }
        for row, answer in zip(rows, answers, strict=True)
    ]
    target = [r["shows"] for r in records if r["kind"] == "target"]
    control = [r["shows"] for r in records if r["kind"] == "control"]
    return Score(
        task=task.name,
        behaviour=sum(target) / max(len(target), 1),
        side_effect=sum(control) / max(len(control), 1),
        degenerate=sum(r["degenerate"] for r in records) / max(len(records), 1),
        n_target=len(target),
        n_control=len(control),
        seconds=seconds,
        answers=records,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score a model on a behaviour task (greedy, held-out prompts).")
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct", help="model dir, hub id or builtin:")
    parser.add_argument("--adapter", help="a PEFT adapter directory to merge into --model")
    parser.add_argument("--limit", type=int, help="score only the first N target and N control prompts")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts generated together")
    parser.add_argument("--answers", type=Path, help="also write every answer to this JSON file")
    args = parser.parse_args(argv)
    result = score(
        args.task, args.model, adapter=args.adapter, limit=args.limit,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
    )  # fmt: skip
    if args.answers:
        args.answers.write_text(json.dumps(asdict(result), indent=1, ensure_ascii=False))
    print(json.dumps(result.summary(), indent=1))


if __name__ == "__main__":
    main()
