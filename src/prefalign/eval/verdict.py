"""A reward model's verdict on `prefalign eval`'s answers: each answer's reward, and the aligned model's win rate
over the base model's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from prefalign.config import ConfigError, load_config
from prefalign.report.rundir import is_run_dir


def load_reward_model_from(path: str, device) -> tuple[torch.nn.Module, Any]:
    """A prefalign reward model (run directory: merged/ or base + adapter/; or a model path) and its tokenizer.
    Anything that is not a sequence classifier with one output is a clear error."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from prefalign.model.load import hub_kernels, resolve_path, use_reward_pad_token

    run = Path(path)
    adapter = None
    if run.is_dir() and is_run_dir(run):
        run_config = load_config(yaml.safe_load((run / "config.yaml").read_text()))
        if run_config.method.kind != "reward":
            raise ConfigError(f"--reward-model: {run} is a policy run (method.kind: policy), not a reward model")
        if (run / "merged").is_dir():
            model_path = str(run / "merged")
        elif (run / "adapter").is_dir():
            model_path, adapter = resolve_path(run_config.model.path), str(run / "adapter")
        else:
            raise ConfigError(f"--reward-model: {run} saved no merged/ or adapter/ model")
    else:
        model_path = resolve_path(path)
    config = AutoConfig.from_pretrained(model_path)
    architectures = config.architectures or []
    if adapter is None and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ConfigError(
            f"--reward-model: {path} is not a sequence classifier ({', '.join(architectures) or 'no architecture'}); "
            "pass a reward model trained with method.kind: reward"
        )
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1, **hub_kernels())
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    if model.config.num_labels != 1:
        raise ConfigError(f"--reward-model: {path} has {model.config.num_labels} outputs; a reward model has one")
    tokenizer = AutoTokenizer.from_pretrained(adapter or model_path)
    # The reward is read at the last token that is not padding: the pad token must be the one training chose
    # (never the EOS that ends the answer). A base model's config + adapter still has the base's pad token.
    model.config.get_text_config().pad_token_id = use_reward_pad_token(tokenizer)
    return model.to(device).eval(), tokenizer


def reward_scores(reward_model, tokenizer, renderer, prompts, answers, device) -> list[float]:
    """The reward model's reward for each (prompt, answer), read at the answer's end-of-turn token."""
    rewards = []
    for prompt, answer in zip(prompts, answers, strict=True):
        reply = [{"role": "assistant", "content": answer}]
        row = {"prompt": prompt, "chosen": reply, "rejected": reply, "plain": False}
        prompt_ids, completions = renderer.untruncated(row)  # as training renders a pair: prompt, answer, EOS
        ids = prompt_ids + completions["chosen_ids"]
        input_ids = torch.tensor([ids], device=device)
        with torch.no_grad():
            out = reward_model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
        rewards.append(float(out.logits[0, 0]))
    return rewards


def win_rate(base: list[float], aligned: list[float]) -> dict[str, float]:
    """Aligned over base: wins / (wins + losses + ties), with ties (equal rewards) counted apart."""
    wins = sum(a > b for a, b in zip(aligned, base, strict=True))
    losses = sum(a < b for a, b in zip(aligned, base, strict=True))
    ties = len(base) - wins - losses
    n = max(len(base), 1)
    return {
        "mean_reward_base": sum(base) / n,
        "mean_reward_aligned": sum(aligned) / n,
        "win_rate": wins / n,
        "loss_rate": losses / n,
        "tie_rate": ties / n,
        "wins": wins,
        "losses": losses,
        "ties": ties,
    }


def judge(reward_model: str, answers: list[dict[str, Any]], messages: list, data_config, device) -> dict[str, float]:
    """Score every answer of base and aligned with `reward_model` (written into `answers`), and the win rate."""
    from prefalign.data.render import Renderer, RenderSettings

    d = data_config
    model, tokenizer = load_reward_model_from(reward_model, device)
    renderer = Renderer(tokenizer, RenderSettings(d.template, d.max_length, d.max_prompt_length, None))
    base = reward_scores(model, tokenizer, renderer, messages, [a["base"] for a in answers], device)
    aligned = reward_scores(model, tokenizer, renderer, messages, [a["aligned"] for a in answers], device)
    for answer, reward_base, reward_aligned in zip(answers, base, aligned, strict=True):
        answer.update(reward_base=reward_base, reward_aligned=reward_aligned)
    return win_rate(base, aligned)
