"""`prefalign eval`: a trained policy against its reference on preference pairs, its answers beside the base
model's, and (with a reward model) which of the two answers the reward model prefers.

MODEL_OR_RUN is a `prefalign train` run directory (its adapter or merged model is the policy and its own
reference, the base model or reference.path, is the reference) or a model path (then --reference names the
reference; without one the implicit-reward metrics are left out). Everything is written to --out
(default RUN_DIR/eval, or ./eval for a model path): eval.json, eval.jsonl (one line per prompt), eval.html.

Each job has its module: target (what is evaluated), pairs (pair metrics), prompts and answers (the answers side
by side, greedy or seeded sampling), verdict (the reward model's), output (the files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prefalign.config import ConfigError, RunConfig
from prefalign.data import prepare_data
from prefalign.data.render import Renderer, RenderSettings
from prefalign.eval.answers import side_by_side
from prefalign.eval.output import write_eval
from prefalign.eval.pairs import pair_metrics
from prefalign.eval.prompts import data_prompts, read_prompts
from prefalign.eval.sampling import Sampling
from prefalign.eval.target import resolve_target
from prefalign.eval.verdict import judge
from prefalign.model.load import load_tokenizer


@dataclass
class EvalResult:
    pairs: dict[str, float] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)  # prompt, base, aligned (+ rewards)
    rewards: dict[str, float] = field(default_factory=dict)  # mean rewards, win rate, ties
    out_dir: Path | None = None


def _load_causal(path: str, adapter: str | None, config: RunConfig, device) -> torch.nn.Module:
    from prefalign.model.load import load_base

    model = load_base(config.model, path)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.to(device).eval()


def evaluate(
    model_or_run: str,
    data: Path,
    *,
    reference: str | None = None,
    reward_model: str | None = None,
    prompts: Path | None = None,
    n: int = 50,
    max_new_tokens: int = 96,
    sampling: Sampling | None = None,
    out: Path | None = None,
) -> EvalResult:
    """Everything `prefalign eval` does; writes eval.json, eval.jsonl and eval.html to the output directory.
    Answers are greedy unless `sampling` is given."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    if not Path(data).is_file():
        raise ConfigError(f"--data: {data}: no such file")
    messages = read_prompts(prompts) if prompts is not None else None  # a bad file fails before any model loads
    target = resolve_target(model_or_run, Path(data), reference)
    if reward_model is not None and target.reference is None:  # checked before any model loads
        raise ConfigError("--reward-model compares the base model's answers with the aligned ones: give --reference")
    config, d = target.config, target.config.data
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(config.model.model_copy(update={"path": target.adapter or target.policy}))
    prepared = prepare_data(d, tokenizer, config.train.seed, method=config.method)
    policy = _load_causal(target.policy, target.adapter, config, device)
    reference_model = _load_causal(target.reference, None, config, device) if target.reference else None

    result = EvalResult()
    result.pairs = pair_metrics(config, policy, reference_model, prepared.train, tokenizer.pad_token_id, device)
    messages = (messages if messages is not None else data_prompts(prepared.eval_prompts))[:n]
    renderer = Renderer(tokenizer, RenderSettings(d.template, d.max_length, d.max_prompt_length, None))
    result.answers = side_by_side(policy, reference_model, tokenizer, renderer, messages, max_new_tokens, sampling)
    if reward_model is not None:
        result.rewards = judge(reward_model, result.answers, messages, d, device)

    result.out_dir = Path(out or ((target.run_dir / "eval") if target.run_dir else "eval"))
    generation = sampling.as_dict() if sampling else {"mode": "greedy"}
    summary = {"model": model_or_run, "data": str(data), "reference": target.reference,
               "reward_model": reward_model, "prompts": len(messages), "pairs": result.pairs,
               "rewards": result.rewards, "generation": {**generation, "max_new_tokens": max_new_tokens}}  # fmt: skip
    write_eval(result.out_dir, summary, result.answers)
    return result
