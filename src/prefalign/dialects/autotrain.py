"""AutoTrain Advanced: `LLMTrainingParams` (the `llm` task) for the dpo, orpo and reward trainers, as a flat
parameter set with `trainer:`, as AutoTrain's config YAML (`task: llm-dpo`, `data:`, `params:`), or as the
flags of `autotrain llm --train ...` (`prefalign autotrain`, `parse_args`).

AutoTrain fills every parameter it is not given with its own default; those that change what is trained
(learning rate, epochs, batch, LoRA shape, beta, prompt length) are applied here too and shown as `(key)` rows,
so a command trains as it would under AutoTrain.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefalign.config import ConfigError
from prefalign.dialects.table import (
    Builder,
    Rule,
    as_bool,
    as_float,
    as_int,
    as_str,
    ignored,
    only_unset,
    optimizer,
    schedule,
    to,
    unset,
)

TRAINERS = {"dpo": {"method.loss": "sigmoid", "method.rpo_alpha": None}, "orpo": {"method.loss": "orpo"},
            "reward": {"method.kind": "reward"}}  # fmt: skip

# AutoTrain's defaults that shape the training (LLMTrainingParams).
DEFAULTS = {
    "lr": 3e-5, "epochs": 1, "batch_size": 2, "gradient_accumulation": 4, "warmup_ratio": 0.1, "scheduler": "linear",
    "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "dpo_beta": 0.1, "max_prompt_length": 128,
}  # fmt: skip

# `autotrain llm` flags that take no value.
FLAGS = {"train", "deploy", "inference", "peft", "merge_adapter", "push_to_hub", "auto_find_batch_size",
         "disable_gradient_checkpointing", "use_flash_attention_2", "add_eos_token", "unsloth"}  # fmt: skip


def parse_args(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """`llm --train --model M --trainer dpo ...` -> (the parameters by LLMTrainingParams name, prefalign's
    `key=value` overrides). Values are read as AutoTrain's argparse reads them: strings, typed later."""
    args = list(args)
    if args and args[0] == "llm":
        args = args[1:]
    elif args and not args[0].startswith("-") and "=" not in args[0]:
        raise ConfigError(f"autotrain {args[0]}: prefalign reads the llm task only (autotrain llm --train ...)")
    params: dict[str, Any] = {}
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            if "=" in arg:
                overrides.append(arg)
                i += 1
                continue
            raise ConfigError(f"autotrain: unexpected argument {arg!r}; flags look like --lora-r 16")
        name, eq, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if eq:
            params[name] = value
        elif name in FLAGS:
            params[name] = True
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            params[name] = args[i + 1]
            i += 1
        else:
            raise ConfigError(f"autotrain: --{name.replace('_', '-')} needs a value")
        i += 1
    return params, overrides


def flatten(raw: dict[str, Any]) -> dict[str, Any]:
    """AutoTrain's config YAML (task, base_model, project_name, data: {...}, params: {...}) as flat parameters."""
    if "params" not in raw and "task" not in raw:
        return raw
    flat: dict[str, Any] = {}
    task = str(raw.get("task", ""))
    if not task.startswith("llm"):
        raise ConfigError(f"task: {task!r}: prefalign reads AutoTrain's llm tasks (llm-dpo, llm-orpo, llm-reward)")
    if "-" in task:
        flat["trainer"] = task.split("-", 1)[1]
    for key, value in raw.items():
        if key in ("task", "params", "data", "hub"):
            continue
        flat["model" if key == "base_model" else key] = value
    data = raw.get("data") or {}
    for key, value in data.items():
        if key == "column_mapping":
            flat.update(value or {})
        elif key == "path":
            flat["data_path"] = value
        else:
            flat[key] = value
    flat.update(raw.get("params") or {})
    for key, value in (raw.get("hub") or {}).items():
        flat[key] = value
    return flat


def _columns(raw: dict[str, Any], b: Builder, trainer: str) -> dict[str, str]:
    mapping = {"prompt": "prompt_text_column", "chosen": "text_column", "rejected": "rejected_text_column"}
    columns = {}
    for name, key in mapping.items():
        if not unset(raw.get(key)):
            columns[name] = b.convert(key, raw[key], as_str)
            b.record(key, raw[key], f"data.train.columns.{name}")
        elif key in raw:
            b.ignore(key, raw[key], "not set")
    if "prompt" not in columns or "rejected" not in columns:
        missing = [key for name, key in mapping.items() if name not in columns and name != "chosen"]
        raise b.error(missing[0], f"the {trainer} trainer reads a prompt, a chosen and a rejected column: "
                                  f"give --{missing[0].replace('_', '-')}")  # fmt: skip
    columns.setdefault("chosen", "text")  # AutoTrain's default text_column
    return {k: v for k, v in columns.items() if k != v}


def _data(raw: dict[str, Any], b: Builder, trainer: str) -> None:
    path = raw.get("data_path", "data")
    source: dict[str, Any] = {"path": b.convert("data_path", path, as_str), "format": "trl_standard"}
    columns = _columns(raw, b, trainer)
    if columns:
        source["columns"] = columns
    split = raw.get("train_split")
    if not unset(split):
        source["split"] = b.convert("train_split", split, as_str)
        b.record("train_split", split, "data.train[0].split")
    b.set("data_path", path, "data.train", [source], "TRL standard rows (prompt, chosen, rejected strings)")
    valid = raw.get("valid_split")
    if not unset(valid):
        b.set("valid_split", valid, "data.eval", [{**source, "split": b.convert("valid_split", valid, as_str)}])
    elif "valid_split" in raw:
        b.ignore("valid_split", valid, "not set")


def _chat_template(b: Builder, key: str, value: Any) -> None:
    name = "none" if unset(value) else b.convert(key, value, as_str)
    target = {"none": "none", "tokenizer": "tokenizer", "chatml": "chatml", "zephyr": "zephyr"}.get(name)
    if target is None:
        raise b.error(key, f"unknown chat template {name!r}; AutoTrain's are none, tokenizer, chatml, zephyr")
    b.set(key, value, "data.template", target, "no template: the strings joined as they are" if name == "none" else "")


def _peft(b: Builder, key: str, value: Any) -> None:
    if b.convert(key, value, as_bool):
        b.ignore(key, value, "LoRA: prefalign's default (model.lora)")
    else:
        b.set(key, value, "model.lora", None, "full fine-tuning")


def _quantization(b: Builder, key: str, value: Any) -> None:
    name = "none" if unset(value) else b.convert(key, value, as_str).lower()
    if name == "none":
        b.ignore(key, value, "not quantised")
    elif name in ("int4", "int8"):
        b.pending(key, value, "model.quantization", "nf4" if name == "int4" else "int8")
    else:
        raise b.error(key, f"unknown quantization {name!r}; AutoTrain's are int4, int8, none")


def _mixed_precision(b: Builder, key: str, value: Any) -> None:
    name = "no" if unset(value) else b.convert(key, value, as_str).lower()
    if name not in ("fp16", "bf16", "no", "none"):
        raise b.error(key, f"unknown mixed precision {name!r}; AutoTrain's are fp16, bf16, none")
    b.set(key, value, "train.mixed_precision", "no" if name == "none" else name)


def _log(b: Builder, key: str, value: Any) -> None:
    name = "none" if unset(value) else b.convert(key, value, as_str)
    if name == "none":
        b.ignore(key, value, "no tracker: prefalign writes metrics.jsonl")
    else:
        b.pending(key, value, "output.report_to", [name])


def _merge_adapter(b: Builder, key: str, value: Any) -> None:
    merge = b.convert(key, value, as_bool)
    b.set(key, value, "output.save", ["adapter", "merged"] if merge else ["adapter"],
          "the adapter, and the merged model" if merge else "the adapter only (AutoTrain's default)")  # fmt: skip


def _logging_steps(b: Builder, key: str, value: Any) -> None:
    steps = b.convert(key, value, as_int)
    if steps <= 0:
        b.ignore(key, value, "AutoTrain's automatic choice; prefalign logs every train.log_every steps (default 1)")
    else:
        b.set(key, value, "train.log_every", steps)


def _block_size(b: Builder, key: str, value: Any) -> None:
    size = b.convert(key, value, as_int)
    if size <= 0:
        b.ignore(key, value, "not set: data.max_length")
    else:
        b.set(key, value, "data.max_length", size)


def _beta(trainer: str) -> Rule:
    def rule(b: Builder, key: str, value: Any) -> None:
        beta = b.convert(key, value, as_float)
        if trainer == "orpo":  # AutoTrain passes dpo_beta to ORPOConfig's beta, ORPO's λ
            b.set(key, value, "method.orpo_lambda", beta, "the ORPO trainer's beta is ORPO's λ")
        elif trainer == "reward":
            b.ignore(key, value, "not read by the reward trainer")
        else:
            b.set(key, value, "method.beta", beta)

    return rule


AUTOTRAIN_KEYS: dict[str, Rule] = {
    "train": ignored("prefalign autotrain trains"),
    "model": to("model.path", as_str),
    "project_name": to("output.dir", as_str),
    "add_eos_token": ignored("every answer ends with the template's end of turn"),
    "block_size": _block_size,
    "model_max_length": ignored("data.max_length limits the sequences"),
    "padding": ignored("prefalign pads (where it pads at all) on the right"),
    "use_flash_attention_2": lambda b, k, v: (
        b.set(k, v, "model.attention", "flash_attention_2") if as_bool(v) else b.ignore(k, v, "not set")
    ),
    "log": _log,
    "disable_gradient_checkpointing": lambda b, k, v: b.set(k, v, "train.gradient_checkpointing", not as_bool(v)),
    "logging_steps": _logging_steps,
    "eval_strategy": ignored("prefalign evaluates at the end when there is held-out data"),
    "evaluation_strategy": ignored("prefalign evaluates at the end when there is held-out data"),
    "save_total_limit": to("train.keep_checkpoints", as_int),
    "save_strategy": ignored("prefalign saves the outputs at the end"),
    "auto_find_batch_size": only_unset("prefalign does not search for a batch size", False),
    "mixed_precision": _mixed_precision,
    "lr": to("train.lr", as_float),
    "epochs": to("train.epochs", as_float),
    "batch_size": to("train.batch_size", as_int),
    "warmup_ratio": to("train.warmup_ratio", as_float),
    "gradient_accumulation": to("train.grad_accum", as_int),
    "optimizer": optimizer,
    "scheduler": schedule,
    "weight_decay": to("train.weight_decay", as_float),
    "max_grad_norm": to("train.max_grad_norm", as_float),
    "seed": to("train.seed", as_int),
    "chat_template": _chat_template,
    "quantization": _quantization,
    "target_modules": to(
        "model.lora.target_modules", lambda v: "all-linear" if v == "all-linear" else as_str(v).split(",")
    ),
    "merge_adapter": _merge_adapter,
    "peft": _peft,
    "lora_r": to("model.lora.r", as_int),
    "lora_alpha": to("model.lora.alpha", as_float),
    "lora_dropout": to("model.lora.dropout", as_float),
    "model_ref": to("reference.path", as_str),
    "max_prompt_length": to("data.max_prompt_length", as_int),
    "max_completion_length": to("data.max_completion_length", as_int),
    "push_to_hub": only_unset("prefalign does not push to the Hub", False),
    "repo_id": only_unset("prefalign does not push to the Hub"),
    "username": ignored("prefalign does not push to the Hub"),
    "token": ignored("a secret: prefalign does not read it from a config"),
    "unsloth": only_unset("Unsloth is not used", False),
    "distributed_backend": only_unset("prefalign scales with `accelerate launch`"),
    "backend": ignored("prefalign trains here"),
}

_JOINT = {"trainer", "data_path", "train_split", "valid_split", "prompt_text_column", "text_column",
          "rejected_text_column"}  # fmt: skip


def translate(raw: dict[str, Any], b: Builder) -> None:
    given = flatten(raw)
    trainer = b.convert("trainer", given.get("trainer", "default"), as_str)
    if trainer not in TRAINERS:
        raise b.error("trainer", f"trainer {trainer!r} is not one prefalign trains; it reads dpo, orpo and reward "
                                 "(sft and default are supervised fine-tuning)")  # fmt: skip
    b.set_many("trainer", trainer, TRAINERS[trainer], f"AutoTrain's {trainer} trainer")
    peft = b.convert("peft", given.get("peft", False), as_bool)
    if "peft" not in given:
        b.set("(peft)", None, "model.lora", None, "AutoTrain fine-tunes every weight unless --peft")
    elif peft and "merge_adapter" not in given:
        b.set("(merge_adapter)", None, "output.save", ["adapter"], "AutoTrain keeps the adapter only unless "
                                                                    "--merge-adapter")  # fmt: skip
    if peft and "quantization" not in given:
        b.ignore("(quantization)", None, "AutoTrain quantises to int4 under --peft by default; prefalign does not "
                                         "unless --quantization int4 is given")  # fmt: skip
    _data(given, b, trainer)
    for key, value in given.items():
        if key in _JOINT:
            continue
        rule = _beta(trainer) if key == "dpo_beta" else AUTOTRAIN_KEYS.get(key)
        if rule is None:
            b.refuse(key, value, "not an AutoTrain llm parameter prefalign knows")
        elif key.startswith("lora_") and not peft:
            (b.ignore if unset(value) else b.refuse)(key, value, "read only with --peft")
        else:
            b.apply(rule, key, value)
    # AutoTrain's defaults for what was not given, each shown as a `(key)` row.
    for key, value in DEFAULTS.items():
        if key in given or (key.startswith("lora_") and not peft) or (key == "dpo_beta" and trainer == "reward"):
            continue
        rule = _beta(trainer) if key == "dpo_beta" else AUTOTRAIN_KEYS[key]
        before = len(b.table.rows)
        b.apply(rule, f"({key})", value)
        for i in range(before, len(b.table.rows)):
            row = b.table.rows[i]
            note = "AutoTrain's default" + (f"; {row.note}" if row.note else "")
            b.table.rows[i] = replace(row, note=note)
