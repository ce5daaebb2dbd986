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


def model_card(config: RunConfig, final: dict[str, float], before: dict[str, float] | None, steps: int) -> str:
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
        "reference": config.resolved_reference_mode(),
        "LoRA": f"r={config.model.lora.r}, alpha={config.model.lora.alpha}" if lora else "none (full fine-tuning)",
        "seed": config.train.seed,
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", ""]
    lines += [
        f"# {Path(config.output.dir).name}",
        "",
        f"`{front['base_model']}` aligned with **{loss}** preference optimisation by prefalign.",
        "",
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
