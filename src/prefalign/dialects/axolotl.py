"""Axolotl: `rl: dpo | ipo | kto | orpo | simpo` and `reward_model: true` configs (its examples/*/dpo.yaml,
reward-model.yaml), with their `datasets: [{path, type, ...}]`.

Each dataset `type` is one of Axolotl's prompt strategies; it becomes a prefalign reader (`format`) with the
column renaming the strategy hard-codes or reads from `field_*`, and the chat template it applies
(`chatml.*` render ChatML, `llama3.*` Llama 3, `chat_template.*` the top-level `chat_template`).
"""

from __future__ import annotations

from typing import Any

from prefalign.dialects.hf_args import checkpointing, positive_or_unset, precision, resume
from prefalign.dialects.table import (
    Builder,
    Rule,
    as_bool,
    as_dict,
    as_float,
    as_int,
    as_str,
    ignored,
    only_unset,
    optimizer,
    quantization,
    schedule,
    to,
    unset,
    warmup_steps,
)

# Axolotl's `rl:` -> method.loss. Online methods are named so the error can say what they are.
RL_METHODS = {"dpo": "sigmoid", "ipo": "ipo", "kto": "kto", "orpo": "orpo", "simpo": "simpo"}
ONLINE_METHODS = ("grpo", "gdpo", "ppo", "gspo", "rloo", "online_dpo")

# Axolotl's `chat_template:` names -> data.template (None: the tokenizer's own).
TEMPLATES: dict[str, str | None] = {
    "chatml": "chatml", "llama3": "llama3", "mistral_v1": "mistral", "mistral_v2v3": "mistral", "gemma": "gemma",
    "gemma3": "gemma", "qwen_25": "qwen", "zephyr": "zephyr", "tokenizer_default": "tokenizer",
}  # fmt: skip

# Paired strategies of chatml.* / llama3.*: (reader, columns renamed to the reader's names). Axolotl's argilla
# strategy picks its prompt column per row among prompt/input/question/instruction; prefalign names one.
_PAIRED = {
    "intel": ("trl_standard", {"prompt": "question"}),
    "prompt_pairs": ("trl_standard", {}),
    "argilla": (
        "trl_standard",
        {"prompt": "instruction", "chosen": "chosen_response", "rejected": "rejected_response"},
    ),
    "icr": ("trl_standard", {"prompt": "input"}),
    "ultra": ("axolotl_chat_template", {"field_messages": "prompt"}),
    "argilla_chat": ("trl_conversational", {}),
}
_UNPAIRED = {
    "intel": ("trl_unpaired_standard", {"prompt": "question"}),
    "prompt_pairs": ("trl_unpaired_standard", {}),
    "argilla": ("trl_unpaired_standard", {"prompt": "instruction"}),
    "ultra": ("trl_unpaired_standard", {}),
    "argilla_chat": ("sharegpt_kto", {"messages": "completion", "kto_tag": "label"}),
}
_ARGILLA_CHAT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}

# Dataset keys that every type accepts and what they become.
_SOURCE_KEYS = {"path", "split", "name", "type", "data_files", "ds_type", "trust_remote_code"}


def readable_types(unpaired: bool, reward: bool) -> list[str]:
    if reward:
        return ["bradley_terry.chat_template"]
    names = [
        f"{family}.{strategy}" for family in ("chatml", "llama3") for strategy in (_UNPAIRED if unpaired else _PAIRED)
    ]
    return (
        ["chat_template.default", "chat_template.argilla_chat", *names, "user_defined.default"]
        if not unpaired
        else [*names, "user_defined.default"]
    )


def _columns(mapping: dict[str, str]) -> dict[str, str] | None:
    """The renaming with the identity entries left out (None when nothing is renamed)."""
    renamed = {k: v for k, v in mapping.items() if k != v}
    return renamed or None


def _user_defined(item: dict, unpaired: bool, b: Builder, key: str) -> tuple[dict, list[str]]:
    """user_defined.default: the field_* names; the *_format strings must leave the text as it is."""
    fields = {"prompt": "field_prompt", "system": "field_system"}
    fields.update({"completion": "field_completion", "label": "field_label"} if unpaired else
                  {"chosen": "field_chosen", "rejected": "field_rejected"})  # fmt: skip
    columns = {name: as_str(item[field]) for name, field in fields.items() if field in item}
    used = [field for field in fields.values() if field in item]
    for name in ("prompt", "completion") if unpaired else ("prompt", "chosen", "rejected"):
        text = item.get(f"{name}_format")
        if text is not None:
            used.append(f"{name}_format")
            if text.strip() not in ("{" + name + "}", "{" + columns.get(name, name) + "}"):
                b.refuse(f"{key}.{name}_format", text, "format strings are not applied: write the text into the "
                                                       "file, or name a chat template with data.template")  # fmt: skip
    fmt = "trl_unpaired_standard" if unpaired else "trl_standard"
    return {"format": fmt, **({"columns": columns} if _columns(columns) else {})}, used


def _chat_template_default(item: dict, b: Builder, key: str) -> tuple[dict, list[str]]:
    source: dict[str, Any] = {"format": "axolotl_chat_template"}
    used = []
    for option in ("field_messages", "field_chosen", "field_rejected", "message_property_mappings", "roles"):
        if option in item:
            source[option] = item[option]
            used.append(option)
    # Older Axolotl releases named the message keys message_field_role / message_field_content.
    for old, new in (("message_field_role", "role"), ("message_field_content", "content")):
        if old in item:
            source.setdefault("message_property_mappings", {})[new] = item[old]
            used.append(old)
    return source, used


def _dataset(item: Any, index: int, rl: str | None, reward: bool, b: Builder, key: str) -> tuple[dict, str | None]:
    """One `datasets` entry: the prefalign source and the data.template its type renders with (None: not fixed)."""
    where = f"{key}[{index}]"
    item = b.convert(where, item, as_dict)
    if "path" not in item:
        raise b.error(where, "a dataset needs a path (a hub name or a local file)")
    unpaired = rl == "kto"
    kind = str(item.get("type", ""))
    family, _, strategy = kind.partition(".")
    source: dict[str, Any] = {"path": as_str(item["path"])}
    template: str | None = None
    if reward and kind == "bradley_terry.chat_template":
        # system, input, chosen, rejected as strings, rendered with the chat template.
        source.update(format="trl_standard", columns={"prompt": "input"})
        used: list[str] = []
        template = "chat_template"
    elif not reward and kind in ("chat_template.default", "chat_template") and not unpaired:
        extra, used = _chat_template_default(item, b, where)
        source.update(extra)
        template = "chat_template"
    elif not reward and kind == "chat_template.argilla_chat" and not unpaired:
        columns = {"chosen": item.get("field_chosen", "chosen"), "rejected": item.get("field_rejected", "rejected")}
        source.update(format="trl_conversational", **({"columns": c} if (c := _columns(columns)) else {}))
        used = [k for k in ("field_chosen", "field_rejected") if k in item]
        template = "chat_template"
    elif not reward and family in ("chatml", "llama3") and strategy in (_UNPAIRED if unpaired else _PAIRED):
        fmt, columns = (_UNPAIRED if unpaired else _PAIRED)[strategy]
        source["format"] = fmt
        if fmt == "axolotl_chat_template":
            source.update(columns)
        elif columns:
            source["columns"] = columns
        if fmt == "sharegpt_kto":
            source["tags"] = _ARGILLA_CHAT_TAGS
        used = []
        template = family
    elif not reward and kind == "user_defined.default":
        extra, used = _user_defined(item, unpaired, b, where)
        source.update(extra)
        template = "none"
    else:
        what = "reward model (reward_model: true)" if reward else f"rl: {rl}"
        raise b.error(f"{where}.type", f"type {kind or '(none)'!r} is not one prefalign reads for a {what}; it reads: "
                                       f"{', '.join(readable_types(unpaired, reward))}")  # fmt: skip
    for option in ("split", "name"):
        if option in item and not unset(item[option]):
            source[option] = as_str(item[option])
    if not unset(item.get("data_files")):
        files = item["data_files"]
        source["path"] = files if isinstance(files, str) else files[0]
    described = ", ".join(f"{k} {v}" for k, v in source.items() if k != "path")
    b.record(f"{where}", item["path"], f"{'data.eval' if key == 'test_datasets' else 'data.train'}", described)
    for option in item:
        if option in _SOURCE_KEYS or option in used:
            continue
        if option in ("roles_to_train", "train_on_eos", "train_on_split", "drop_system_message"):
            b.refuse(f"{where}.{option}", item[option], "prefalign scores the final assistant answers only")
        elif option != "type":
            b.refuse(f"{where}.{option}", item[option], f"not a dataset option of type {kind} prefalign reads")
    return source, template


def _template_name(b: Builder, raw: dict[str, Any]) -> tuple[str, str]:
    """The top-level chat_template as data.template, and what to say about it."""
    name = raw.get("chat_template")
    if unset(name):
        return "tokenizer", "the tokenizer's chat template (no chat_template given)"
    name = b.convert("chat_template", name, as_str)
    if name == "jinja":
        b.refuse("chat_template_jinja", raw.get("chat_template_jinja"), "a custom Jinja template is not read; "
                 "name a built-in one with data.template")  # fmt: skip
        return "tokenizer", "jinja (refused)"
    target = TEMPLATES.get(name)
    if target is None:
        return "tokenizer", f"{name} has no built-in equivalent here: the tokenizer's chat template is used"
    return target, f"prefalign's built-in {target} renders what {name} does" if target != "tokenizer" else \
        "the tokenizer's own"  # fmt: skip


def _datasets(raw: dict[str, Any], b: Builder) -> None:
    rl = None if unset(raw.get("rl")) else str(raw["rl"])
    reward = bool(raw.get("reward_model"))
    templates: dict[str, str] = {}
    for key, target in (("datasets", "train"), ("test_datasets", "eval")):
        if unset(raw.get(key)):
            if key in raw:
                b.ignore(key, raw[key], "not set")
            continue
        items = raw[key] if isinstance(raw[key], list) else [raw[key]]
        sources = []
        for index, item in enumerate(items):
            source, template = _dataset(item, index, rl, reward, b, key)
            sources.append(source)
            if template is not None:
                templates[f"{key}[{index}]"] = template
        b.config.setdefault("data", {})[target] = sources
    chosen = {"chat_template": None}
    resolved = {}
    for where, template in templates.items():
        if template == "chat_template":
            if chosen["chat_template"] is None:
                chosen["chat_template"] = _template_name(b, raw)
            template = chosen["chat_template"][0]
        resolved[where] = template
    if len(set(resolved.values())) > 1:
        listed = ", ".join(f"{where}: {template}" for where, template in resolved.items())
        raise b.error(
            "datasets",
            f"the dataset types render with different chat templates ({listed}); prefalign "
            "renders every row with one data.template: split them into separate runs",
        )
    if "chat_template" in raw:
        if chosen["chat_template"] is not None:
            b.set(
                "chat_template",
                raw["chat_template"],
                "data.template",
                chosen["chat_template"][0],
                chosen["chat_template"][1],
            )
        else:
            b.ignore("chat_template", raw["chat_template"], "the dataset types fix their own template")
    if resolved:
        template = next(iter(resolved.values()))
        if chosen["chat_template"] is None or template != chosen["chat_template"][0]:
            b.set(
                "(dataset type)",
                ", ".join(sorted({str(i.get("type")) for i in raw.get("datasets") or []})),
                "data.template",
                template,
                "the template the dataset type renders with",
            )
    if "chat_template_jinja" in raw and raw.get("chat_template") != "jinja":
        (b.ignore if unset(raw["chat_template_jinja"]) else b.refuse)(
            "chat_template_jinja", raw["chat_template_jinja"], "a custom Jinja template is not read"
        )


def _rl(raw: dict[str, Any], b: Builder) -> None:
    reward = "reward_model" in raw and b.convert("reward_model", raw["reward_model"], as_bool)
    rl = raw.get("rl")
    if reward:
        if not unset(rl):
            raise b.error("rl", "reward_model: true trains a reward model; remove rl")
        b.set("reward_model", raw["reward_model"], "method.kind", "reward", "a Bradley–Terry reward model")
        if "rl" in raw:
            b.ignore("rl", rl, "not set")
        return
    if "reward_model" in raw:
        b.ignore("reward_model", raw["reward_model"], "false")
    if unset(rl):
        raise b.error(
            "rl",
            "an Axolotl config prefalign trains names rl: dpo, ipo, kto, orpo or simpo, or "
            "reward_model: true (without them it is supervised fine-tuning, which prefalign does not do)",
        )
    name = b.convert("rl", rl, as_str)
    if name in ONLINE_METHODS:
        raise b.error(
            "rl",
            f"{name} is an online RL method (it samples answers and scores them while training); "
            "prefalign trains offline on preference data: dpo, ipo, kto, orpo, simpo",
        )
    if name not in RL_METHODS:
        raise b.error("rl", f"rl: {name} is not a method prefalign has; it reads {', '.join(RL_METHODS)}")
    # Axolotl trains the method as named, with no NLL term (rpo_alpha, when given, adds it).
    b.set_many("rl", rl, {"method.loss": RL_METHODS[name], "method.rpo_alpha": None},
               "plain DPO (Axolotl adds no NLL term)" if name == "dpo" else "")  # fmt: skip


def adapter(b: Builder, key: str, value: Any) -> None:
    name = "" if unset(value) else b.convert(key, value, as_str)
    if name == "lora":
        b.ignore(key, value, "LoRA: prefalign's default (model.lora)")
    elif name == "qlora":
        b.pending(key, value, "model.quantization", "nf4", "LoRA on a 4-bit base")
    else:
        b.refuse(key, value, f"adapter {name!r}: prefalign trains LoRA (and QLoRA) adapters")


def lora_target_linear(b: Builder, key: str, value: Any) -> None:
    if unset(value) or not b.convert(key, value, as_bool):
        b.ignore(key, value, "not set")
    else:
        b.set(key, value, "model.lora.target_modules", "all-linear")


def attention(name: str) -> Rule:
    def rule(b: Builder, key: str, value: Any) -> None:
        if unset(value) or not b.convert(key, value, as_bool):
            b.ignore(key, value, "not set")
        elif name == "sdpa":
            b.set(key, value, "model.attention", "sdpa")
        elif name == "flash_attention_2":
            b.set(key, value, "model.attention", name, "needs flash-attn and a CUDA GPU; elsewhere override "
                                                       "model.attention=sdpa")  # fmt: skip
        else:
            b.ignore(key, value, f"{key} is not used: sdpa (transformers' default) computes the same attention")

    return rule


def wandb_project(b: Builder, key: str, value: Any) -> None:
    if unset(value):
        b.ignore(key, value, "not set")
    else:
        b.pending(key, value, "output.report_to", ["wandb"], f"WANDB_PROJECT={value} in the environment")


def wandb_other(b: Builder, key: str, value: Any) -> None:
    if unset(value):
        b.ignore(key, value, "not set")
    else:
        name = key.upper() if key != "wandb_log_model" else "WANDB_LOG_MODEL"
        b.ignore(key, value, f"a wandb setting: set {name} in the environment")


def model_type(b: Builder, key: str, value: Any) -> None:
    name = b.convert(key, value, as_str)
    if name in ("AutoModelForCausalLM", "AutoModelForSequenceClassification"):
        b.ignore(key, value, "prefalign loads the causal LM and builds the reward head itself for reward models")
    else:
        b.refuse(key, value, f"{name}: prefalign loads models with AutoModelForCausalLM")


AXOLOTL_KEYS: dict[str, Rule] = {
    "base_model": to("model.path", as_str),
    "base_model_config": ignored("the config is read from model.path"),
    "tokenizer_config": only_unset("the tokenizer is read from model.path"),
    "revision_of_model": to("model.revision", as_str),
    "model_type": model_type,
    "tokenizer_type": ignored("prefalign loads the model's own tokenizer (AutoTokenizer)"),
    "num_labels": only_unset("a reward model has one output, the reward", 1),
    "trust_remote_code": to("model.trust_remote_code", as_bool),
    "strict": ignored("prefalign's schema is always strict"),
    "adapter": adapter,
    "lora_model_dir": to("model.adapter", as_str),
    "lora_r": to("model.lora.r", as_int),
    "lora_alpha": to("model.lora.alpha", as_float),
    "lora_dropout": to("model.lora.dropout", as_float),
    "lora_target_modules": to("model.lora.target_modules"),
    "lora_target_linear": lora_target_linear,
    "lora_modules_to_save": only_unset("model.lora trains adapters only"),
    "lora_fan_in_fan_out": only_unset("no effect on the models prefalign trains", False),
    "peft_use_rslora": only_unset("rsLoRA scaling is not in prefalign", False),
    "peft_use_dora": only_unset("DoRA is not in prefalign", False),
    "load_in_8bit": quantization("int8"),
    "load_in_4bit": quantization("nf4"),
    "rl_beta": to("method.beta", as_float),
    "dpo_beta": to("method.beta", as_float),
    "orpo_alpha": to("method.orpo_lambda", as_float, "Axolotl's orpo_alpha is ORPO's λ"),
    "simpo_gamma": to("method.gamma", as_float),
    "cpo_alpha": to("method.cpo_alpha", as_float),
    "rpo_alpha": to("method.rpo_alpha", as_float),
    "dpo_label_smoothing": to("method.label_smoothing", as_float),
    "dpo_use_weighting": to("method.use_weighting", as_bool),
    "kto_desirable_weight": to("method.desirable_weight", as_float),
    "kto_undesirable_weight": to("method.undesirable_weight", as_float),
    "precompute_ref_log_probs": lambda b, k, v: (
        b.set(k, v, "reference.mode", "precomputed") if v else b.ignore(k, v, "not set")
    ),
    "dpo_padding_free": ignored("prefalign's packed layouts have no padding"),
    "dpo_use_logits_to_keep": ignored("prefalign never builds logits for prompt positions"),
    "dataset_prepared_path": ignored("prefalign caches tokenised rows in datasets' cache"),
    "dataset_processes": ignored("prefalign tokenises in one process unless data.num_proc is set"),
    "val_set_size": to("data.eval_fraction", as_float),
    "output_dir": to("output.dir", as_str),
    "sequence_len": to("data.max_length", as_int),
    "sample_packing": ignored("prefalign packs by data.layout auto"),
    "eval_sample_packing": ignored("prefalign packs by data.layout auto"),
    "pad_to_sequence_len": ignored("prefalign never pads to a fixed length"),
    "gradient_accumulation_steps": to("train.grad_accum", as_int),
    "micro_batch_size": to("train.batch_size", as_int),
    "eval_batch_size": to("train.eval_batch_size", as_int),
    "num_epochs": to("train.epochs", as_float),
    "max_steps": positive_or_unset("train.max_steps"),
    "optimizer": optimizer,
    "lr_scheduler": schedule,
    "learning_rate": to("train.lr", as_float),
    "weight_decay": to("train.weight_decay", as_float),
    "max_grad_norm": to("train.max_grad_norm", as_float),
    "warmup_steps": warmup_steps,
    "warmup_ratio": to("train.warmup_ratio", as_float),
    "cosine_min_lr_ratio": only_unset("the cosine schedule decays to 0"),
    "train_on_inputs": only_unset("prefalign scores the answers only", False),
    "group_by_length": ignored("no effect in prefalign"),
    "bf16": precision("bf16"),
    "fp16": precision("fp16"),
    "tf32": ignored("a CUDA matmul setting; prefalign leaves torch's TF32 default as it is"),
    "gradient_checkpointing": checkpointing,
    "gradient_checkpointing_kwargs": ignored("prefalign's checkpointing is non-reentrant; no options"),
    "early_stopping_patience": only_unset("prefalign trains for train.epochs or train.max_steps"),
    "resume_from_checkpoint": resume,
    "auto_resume_from_checkpoints": to("train.resume", as_bool),
    "local_rank": ignored("set by the launcher"),
    "logging_steps": to("train.log_every", as_int),
    "xformers_attention": attention("xformers"),
    "flash_attention": attention("flash_attention_2"),
    "sdp_attention": attention("sdpa"),
    "attn_implementation": to("model.attention", as_str),
    "evals_per_epoch": ignored(
        "prefalign evaluates at the end and every train.eval_every steps; set that to evaluate during training"
    ),
    "eval_steps": positive_or_unset("train.eval_every"),
    "saves_per_epoch": ignored(
        "prefalign saves the outputs at the end, and checkpoints every train.save_every "
        "steps; set that to checkpoint during training"
    ),
    "save_steps": positive_or_unset("train.save_every"),
    "save_total_limit": positive_or_unset("train.keep_checkpoints"),
    "save_first_step": ignored("no effect in prefalign"),
    "eval_table_size": positive_or_unset("eval.generations", note="held-out prompts answered before and after"),
    "eval_max_new_tokens": to("eval.max_new_tokens", as_int),
    "debug": only_unset("no effect in prefalign", False),
    "deepspeed": only_unset("prefalign scales with `accelerate launch` and its own config"),
    "fsdp": only_unset("prefalign scales with `accelerate launch` and its own config"),
    "fsdp_config": only_unset("prefalign scales with `accelerate launch` and its own config"),
    "special_tokens": only_unset("prefalign uses the tokenizer's own special tokens"),
    "tokens": only_unset("prefalign does not add tokens to the vocabulary"),
    "remove_unused_columns": ignored("prefalign keeps only the columns its readers read"),
    "seed": to("train.seed", as_int),
    "torch_compile": to("train.compile", as_bool),
    "hub_model_id": only_unset("prefalign does not push to the Hub"),
    "hub_strategy": ignored("prefalign does not push to the Hub"),
    "wandb_project": wandb_project,
    "wandb_entity": wandb_other,
    "wandb_watch": wandb_other,
    "wandb_name": wandb_other,
    "wandb_run_id": wandb_other,
    "wandb_log_model": wandb_other,
    "use_tensorboard": lambda b, k, v: (
        b.pending(k, v, "output.report_to", ["tensorboard"]) if v else b.ignore(k, v, "not set")
    ),
    "dataloader_num_workers": ignored("no effect in prefalign"),
    "dataloader_pin_memory": ignored("no effect in prefalign"),
    "dataloader_prefetch_factor": ignored("no effect in prefalign"),
    "shuffle_merged_datasets": ignored("prefalign shuffles every epoch with train.seed"),
}

# Keys read together by _rl and _datasets, which write their rows.
_JOINT = {"rl", "reward_model", "datasets", "test_datasets", "chat_template", "chat_template_jinja"}


def translate(raw: dict[str, Any], b: Builder) -> None:
    _rl(raw, b)
    _datasets(raw, b)
    # Axolotl trains every weight unless `adapter` is set.
    if unset(raw.get("adapter")):
        b.set("adapter" if "adapter" in raw else "(adapter)", raw.get("adapter"), "model.lora", None,
              "no adapter: Axolotl fine-tunes every weight")  # fmt: skip
    full = unset(raw.get("adapter"))
    for key, value in raw.items():
        if key in _JOINT or (key == "adapter" and full):
            continue
        if full and key.startswith("lora_") and key != "lora_model_dir":
            (b.ignore if unset(value) else b.refuse)(key, value, "read only with adapter: lora or qlora")
            continue
        rule = AXOLOTL_KEYS.get(key)
        if rule is None:
            b.refuse(key, value, "not an Axolotl option prefalign knows")
        else:
            b.apply(rule, key, value)
