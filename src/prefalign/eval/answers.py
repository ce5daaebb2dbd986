"""`prefalign eval`'s answers: the base and the aligned model answer the same prompts, side by side."""

from __future__ import annotations

from typing import Any

import torch

from prefalign.eval.evaluate import generate
from prefalign.eval.sampling import Sampling


def side_by_side(
    policy: torch.nn.Module,
    base_model: torch.nn.Module | None,
    tokenizer: Any,
    renderer: Any,
    messages: list[list[dict[str, str]]],
    max_new_tokens: int,
    sampling: Sampling | None = None,
) -> list[dict[str, Any]]:
    """{"prompt", "base", "aligned"} for each prompt (base "" without a base model), greedy unless `sampling`."""
    prompt_ids = [renderer.prompt_ids(m, False) for m in messages]
    aligned = generate(policy, tokenizer, prompt_ids, max_new_tokens, sampling)
    base = generate(base_model, tokenizer, prompt_ids, max_new_tokens, sampling) if base_model is not None else []
    return [
        {"prompt": m[-1]["content"], "base": b, "aligned": a}
        for m, b, a in zip(messages, base or [""] * len(messages), aligned, strict=True)
    ]
