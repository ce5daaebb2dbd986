"""The run's README.md: a model card in Hub format (YAML front matter, then what was done and measured)."""

from __future__ import annotations

from pathlib import Path

import yaml

from prefalign.config import RunConfig
from prefalign.model.load import base_model_name


def _dataset_names(config: RunConfig) -> list[str]:
    return [s.path for s in config.data.train if not Path(s.path).exists()]  # hub ids only


def _number(metrics: dict[str, float] | None, name: str) -> str:
    return "" if metrics is None or name not in metrics else f"{metrics[name]:.4f}"


def _settings_and_metrics(hp: dict, before: dict | None, final: dict) -> list[str]:
    """The card's hyper-parameter table and its held-out before/after table, as markdown lines."""
    return [
        "## Hyper-parameters",
        "",
        "| setting | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in hp.items()],
        "",
        "## Held-out metrics",
        "",
        "| metric | before | after |",
        "| --- | --- | --- |",
        *[f"| {name} | {_number(before, name)} | {_number(final, name)} |" for name in final],
        "",
    ]


def _distribution(distributed: dict | None) -> dict[str, str]:
    """A row saying how many processes trained and how (DDP, FSDP, ZeRO), when the run recorded it."""
    if not distributed:
        return {}
    processes, kind = distributed["processes"], distributed["type"]
    if processes == 1:
        return {"processes": f"1 ({kind})"}
    return {"processes": f"{processes} ({kind}, {distributed['backend']}); sharding: {distributed['sharding']}"}


def _remote_code(config: RunConfig) -> dict[str, str]:
    """A row saying that the model's own code from the hub ran (model.trust_remote_code), when it did."""
    if not config.model.trust_remote_code:
        return {}
    return {"trust_remote_code": "true: the base model's own code ran; loading it needs trust_remote_code=True"}


def model_card(
    config: RunConfig,
    final: dict[str, float],
    before: dict[str, float] | None,
    steps: int,
    reference_mode: str | None = None,
    distributed: dict | None = None,
) -> str:
    """The run's model card; `reference_mode` is the mode the run resolved (auto depends on the data size),
    `distributed` how the run was spread over processes (training.distributed.distribution)."""
    if config.method.kind == "reward":
        return reward_model_card(config, final, before, steps, distributed)
    lora = config.model.lora is not None
    terms = config.method.terms()
    loss = " + ".join(f"{weight:g}·{spec.name}" if weight != 1 else spec.name for spec, weight in terms)
    families = {spec.family for spec, _ in terms}
    front = {
        "base_model": base_model_name(config.model.path),
        "library_name": "peft" if lora else "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["prefalign", *sorted(families - {"term"}), *(["lora"] if lora else [])],
    }
    if datasets := _dataset_names(config):
        front["datasets"] = datasets
    hp = {
        "loss": loss,
        "beta": config.method.beta,
        "learning rate": config.train.lr,
        "schedule": f"{config.train.schedule}, warm-up {config.train.warmup_ratio}",
        "batch size × accumulation": f"{config.train.batch_size} × {config.train.grad_accum}",
        "optimizer steps": steps,
        "reference": reference_mode or config.resolved_reference_mode(),
        "LoRA": f"r={config.model.lora.r}, alpha={config.model.lora.alpha}" if lora else "none (full fine-tuning)",
        "seed": config.train.seed,
        **_distribution(distributed),
        **_remote_code(config),
    }
    if not config.method.paired:  # unpaired rows: one answer each, labelled desirable or not
        data = "pairs split into desirable chosen and undesirable rejected answers" if config.data.split_pairs else ""
        hp = {
            **hp,
            "data": data or "unpaired answers labelled desirable or undesirable",
            "desirable / undesirable weight": f"{config.method.desirable_weight} / {config.method.undesirable_weight}",
        }
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", ""]
    lines += [
        f"# {Path(config.output.dir).name}",
        "",
        f"`{front['base_model']}` aligned with **{loss}** preference optimisation by prefalign.",
        "",
        *_settings_and_metrics(hp, before, final),
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
    ]
    if lora:
        lines += [
            "from peft import PeftModel",
            "",
            f"base = AutoModelForCausalLM.from_pretrained({front['base_model']!r})",
            "model = PeftModel.from_pretrained(base, 'adapter')",
        ]
    if "merged" in config.output.save:
        lines += ["", "# or the merged model", "model = AutoModelForCausalLM.from_pretrained('merged')"]
    tokenizer_dir = "merged" if "merged" in config.output.save else "adapter"
    lines += [f"tokenizer = AutoTokenizer.from_pretrained({tokenizer_dir!r})", "```", ""]
    return "\n".join(lines)


def reward_model_card(
    config: RunConfig,
    final: dict[str, float],
    before: dict[str, float] | None,
    steps: int,
    distributed: dict | None = None,
) -> str:
    """The card of a reward model: a sequence classifier with one label, the reward."""
    lora = config.model.lora is not None
    method = config.method
    base = base_model_name(config.model.path)
    front = {
        "base_model": base,
        "library_name": "peft" if lora else "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["prefalign", "reward", "reward-model", *(["lora"] if lora else [])],
    }
    if datasets := _dataset_names(config):
        front["datasets"] = datasets
    hp = {
        "loss": "bradley_terry (−log σ(r_chosen − r_rejected − margin))",
        "center_rewards_coefficient": method.center_rewards_coefficient,
        "lm_coef": method.lm_coef,
        "learning rate": config.train.lr,
        "schedule": f"{config.train.schedule}, warm-up {config.train.warmup_ratio}",
        "batch size × accumulation": f"{config.train.batch_size} × {config.train.grad_accum}",
        "optimizer steps": steps,
        "LoRA": f"r={config.model.lora.r}, alpha={config.model.lora.alpha}" if lora else "none (full fine-tuning)",
        "seed": config.train.seed,
        **_distribution(distributed),
        **_remote_code(config),
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", ""]
    lines += [
        f"# {Path(config.output.dir).name}",
        "",
        f"A **reward model** trained from `{base}` by prefalign on preference pairs (Bradley–Terry loss). "
        "It is `AutoModelForSequenceClassification` with one label: the logit is the reward of the whole "
        "conversation, read at its last token (the end-of-turn token closing the answer). It does not generate text.",
        "",
        *_settings_and_metrics(hp, before, final),
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
    ]
    tokenizer_dir = "merged" if "merged" in config.output.save else "adapter"
    lines += [f"tokenizer = AutoTokenizer.from_pretrained({tokenizer_dir!r})"]
    if "merged" in config.output.save:
        lines += ["model = AutoModelForSequenceClassification.from_pretrained('merged')"]
    elif lora:
        lines += [
            "from peft import PeftModel",
            "",
            "# the tokenizer's pad token never ends an answer, so the reward is read at the answer's last token",
            f"base = AutoModelForSequenceClassification.from_pretrained({base!r}, num_labels=1, "
            "pad_token_id=tokenizer.pad_token_id)",
            "model = PeftModel.from_pretrained(base, 'adapter')",
        ]
    lines += [
        "",
        "messages = [{'role': 'user', 'content': 'Name a colour.'}, {'role': 'assistant', 'content': 'It is RED.'}]",
        "# As in training, the text ends at the answer's end-of-turn token (templates print a newline after it).",
        "text = tokenizer.apply_chat_template(messages, tokenize=False).rstrip()",
        "ids = tokenizer(text, add_special_tokens=False, return_tensors='pt').input_ids",
        "reward = model(ids).logits[0, 0].item()",
        "```",
        "",
    ]
    return "\n".join(lines)
