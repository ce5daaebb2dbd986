"""LLaMA-Factory: `stage: dpo | kto | rm` configs (its examples/train_lora/*_dpo.yaml, *_kto.yaml, *_reward.yaml).

Datasets are names looked up in `dataset_dir/dataset_info.json` (dataset_dir defaults to `data`, relative to
where the command runs, as in LLaMA-Factory; set it on the command line: `dataset_dir=PATH`). The entry's
`formatting`, `ranking`, `columns` and `tags` pick prefalign's reader and its mapping options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefalign.dialects.hf_args import TRAINING_ARGUMENTS
from prefalign.dialects.table import (
    Builder,
    Rule,
    as_bool,
    as_float,
    as_int,
    as_list,
    as_str,
    ignored,
    only_unset,
    optimizer,
    to,
    unset,
)

# LLaMA-Factory template names -> data.template; None: the tokenizer's own chat template.
TEMPLATES: dict[str, str | None] = {
    "llama3": "llama3", "mistral": "mistral", "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma",
    "chatml": "chatml", "chatml_de": None, "qwen": "qwen", "qwen2_5": "qwen", "zephyr": "zephyr",
    # Qwen3-Instruct-2507 (no thinking) renders text turns as plain ChatML, without Qwen2.5's default system prompt.
    "qwen3_nothink": "chatml", "qwen3": None, "llama2": None, "default": None, "empty": None,
}  # fmt: skip

_PREF_LOSSES = {"sigmoid": "sigmoid", "hinge": "hinge", "ipo": "ipo", "orpo": "orpo", "simpo": "simpo"}


def template(b: Builder, key: str, value: Any) -> None:
    name = b.convert(key, value, as_str)
    target = TEMPLATES.get(name)
    if target is not None:
        b.set(key, value, "data.template", target, f"prefalign's built-in {target} renders what {name} does")
    else:
        note = "no built-in equivalent here" if name not in TEMPLATES else "rendered by the model's own template"
        b.set(key, value, "data.template", "tokenizer", f"{note}: the tokenizer's chat template is used")


def finetuning_type(b: Builder, key: str, value: Any) -> None:
    name = b.convert(key, value, as_str)
    if name == "lora":
        b.ignore(key, value, "LoRA: prefalign's default (model.lora)")
    elif name == "full":
        b.set(key, value, "model.lora", None, "full fine-tuning")
    else:
        b.refuse(key, value, f"finetuning_type {name!r}: prefalign trains LoRA adapters or every weight")


def lora_target(b: Builder, key: str, value: Any) -> None:
    names = b.convert(key, value, as_list)
    target = "all-linear" if names == ["all"] else names
    b.set(key, value, "model.lora.target_modules", target, "all: every linear layer but the LM head")


def quantization_bit(b: Builder, key: str, value: Any) -> None:
    if unset(value):
        b.ignore(key, value, "not set")
        return
    bits = b.convert(key, value, as_int)
    if bits not in (4, 8):
        b.refuse(key, value, "prefalign quantises to 4 bits (nf4) or 8 (int8)")
        return
    b.pending(key, value, "model.quantization", "nf4" if bits == 4 else "int8")


def flash_attn(b: Builder, key: str, value: Any) -> None:
    name = b.convert(key, value, as_str)
    attention = {
        "auto": None,
        "fa2": "flash_attention_2",
        "sdpa": "sdpa",
        "disabled": "eager",
        "fa3": "flash_attention_3",
    }
    if name not in attention:
        raise b.error(key, f"unknown value {name!r}; LLaMA-Factory's are {', '.join(attention)}")
    b.set(key, value, "model.attention", attention[name])


def cutoff_len(b: Builder, key: str, value: Any) -> None:
    b.set_many(
        key, value, {"data.max_length": b.convert(key, value, as_int), "data.max_prompt_length": None},
        "no separate prompt limit: prompts are kept whole and answers cut to fit; a row whose prompt alone fills "
        "cutoff_len is dropped (LLaMA-Factory cuts prompt and answer in proportion)",
    )  # fmt: skip


LLAMAFACTORY_KEYS: dict[str, Rule] = {
    **TRAINING_ARGUMENTS,
    "model_name_or_path": to("model.path", as_str),
    "adapter_name_or_path": to("model.adapter", as_str),
    "model_revision": to("model.revision", as_str),
    "trust_remote_code": to("model.trust_remote_code", as_bool),
    "cache_dir": ignored("models are cached where transformers caches them"),
    "finetuning_type": finetuning_type,
    "lora_rank": to("model.lora.r", as_int),
    "lora_alpha": to("model.lora.alpha", as_float),
    "lora_dropout": to("model.lora.dropout", as_float),
    "lora_target": lora_target,
    "additional_target": only_unset("model.lora trains adapters only"),
    "use_rslora": only_unset("rsLoRA scaling is not in prefalign", False),
    "use_dora": only_unset("DoRA is not in prefalign", False),
    "pissa_init": only_unset("PiSSA initialisation is not in prefalign", False),
    "create_new_adapter": only_unset("model.adapter is trained further", False),
    "dpo_label_smoothing": to("method.label_smoothing", as_float),
    "kto_chosen_weight": to("method.desirable_weight", as_float),
    "kto_rejected_weight": to("method.undesirable_weight", as_float),
    "ref_model": to("reference.path", as_str),
    "ref_model_adapters": only_unset("the reference is reference.path or the policy's own base"),
    "ref_model_quantization_bit": only_unset("the reference is loaded as the policy is"),
    "template": template,
    "cutoff_len": cutoff_len,
    "max_samples": ignored("each dataset's max_rows (the first rows; see the dataset rows)"),
    "dataset_dir": ignored("where dataset_info.json was read"),
    "val_size": to("data.eval_fraction", as_float),
    "preprocessing_num_workers": ignored(
        "prefalign tokenises in one process unless data.num_proc is set, and caches the result"
    ),
    "overwrite_cache": ignored("prefalign's tokenisation cache is keyed by the data and settings"),
    "tokenized_path": only_unset("prefalign caches tokenised rows itself"),
    "streaming": only_unset("prefalign reads datasets whole", False),
    "mix_strategy": only_unset("several datasets are concatenated", "concat"),
    "packing": ignored("prefalign packs by data.layout auto"),
    "neat_packing": ignored("prefalign's packed layouts never attend across sequences"),
    "plot_loss": ignored("prefalign draws the loss and every metric in RUN_DIR/report.html (from metrics.jsonl)"),
    "quantization_bit": quantization_bit,
    "quantization_method": ignored("bitsandbytes, what prefalign quantises with"),
    "quantization_type": ignored("read with quantization_bit: nf4"),
    "double_quantization": ignored("read with quantization_bit"),
    "flash_attn": flash_attn,
    "enable_thinking": ignored("a generation switch of Qwen3's template"),
    "optim": optimizer,
    "ddp_timeout": ignored("accepted, not needed"),
    "use_unsloth": only_unset("Unsloth is not used", False),
    "use_liger_kernel": only_unset("Liger kernels are not used", False),
    "freeze_vision_tower": ignored("text models only"),
    "image_max_pixels": ignored("text models only"),
    "video_max_pixels": ignored("text models only"),
    "infer_backend": ignored("no effect in training"),
    "print_param_status": ignored("no effect in prefalign"),
}


def _method(raw: dict[str, Any], b: Builder) -> None:
    """`stage`, `pref_loss`, `pref_beta`, `pref_ftx`, `simpo_gamma` together: their meaning depends on each other."""
    stage = b.convert("stage", raw["stage"], as_str)
    beta = b.convert("pref_beta", raw.get("pref_beta", 0.1), as_float)
    ftx = b.convert("pref_ftx", raw.get("pref_ftx", 0.0), as_float)
    if stage == "rm":
        b.set("stage", stage, "method.kind", "reward", "a Bradley–Terry reward model")
        for key in ("pref_beta", "pref_loss", "pref_ftx", "simpo_gamma"):
            if key in raw:
                b.ignore(key, raw[key], "not read by stage rm")
        return
    if stage == "kto":
        b.set_many("stage", stage, {"method.loss": "kto", "method.rpo_alpha": None}, "KTO")
        if "pref_beta" in raw:
            b.set("pref_beta", raw["pref_beta"], "method.beta", beta)
        if ftx:
            b.refuse("pref_ftx", raw["pref_ftx"], "an NLL term on unpaired rows is not in prefalign")
        for key in ("pref_loss", "simpo_gamma"):
            if key in raw:
                b.ignore(key, raw[key], "not read by stage kto")
        if "pref_ftx" in raw and not ftx:
            b.ignore("pref_ftx", raw["pref_ftx"], "0: no NLL term")
        return
    if stage != "dpo":
        online = " (online RL: prefalign trains offline on preference data)" if stage == "ppo" else ""
        raise b.error("stage", f"stage {stage!r}{online} is not one prefalign trains; it trains dpo, kto and rm")
    loss = b.convert("pref_loss", raw.get("pref_loss", "sigmoid"), as_str)
    if loss not in _PREF_LOSSES:
        raise b.error("pref_loss", f"pref_loss {loss!r} is not one prefalign has; known: {', '.join(_PREF_LOSSES)}")
    default = "" if "pref_loss" in raw else " (LLaMA-Factory's default pref_loss)"
    b.set("stage", stage, "method.loss", _PREF_LOSSES[loss], f"stage dpo with pref_loss {loss}{default}")
    if "pref_loss" in raw:
        b.record("pref_loss", raw["pref_loss"], "method.loss")
    if loss == "orpo":  # LLaMA-Factory's ORPO weighs its odds-ratio term by pref_beta
        key = "pref_beta" if "pref_beta" in raw else "(pref_beta)"
        b.set(key, raw.get("pref_beta"), "method.orpo_lambda", beta, "LLaMA-Factory's ORPO uses pref_beta as λ")
    elif "pref_beta" in raw:
        b.set("pref_beta", raw["pref_beta"], "method.beta", beta)
    if loss == "simpo":
        gamma = b.convert("simpo_gamma", raw.get("simpo_gamma", 0.5), as_float)
        b.set("simpo_gamma" if "simpo_gamma" in raw else "(simpo_gamma)", raw.get("simpo_gamma"), "method.gamma", gamma)
    elif "simpo_gamma" in raw:
        b.ignore("simpo_gamma", raw["simpo_gamma"], "read only with pref_loss simpo")
    if loss == "orpo":
        # ORPO's NLL term is part of the loss itself; pref_ftx adds another.
        if ftx:
            b.refuse("pref_ftx", raw["pref_ftx"], "ORPO already holds an NLL term")
        elif "pref_ftx" in raw:
            b.ignore("pref_ftx", raw["pref_ftx"], "0: no NLL term")
        return
    # pref_ftx is the SFT weight on the chosen answers: RPO's alpha. 0 (the default) is plain DPO.
    key = "pref_ftx" if "pref_ftx" in raw else "(pref_ftx)"
    note = "the SFT weight: RPO's NLL term on chosen" if ftx else "0 (LLaMA-Factory's default): no NLL term"
    b.set(key, raw.get("pref_ftx"), "method.rpo_alpha", ftx or None, note)


def _load_info(raw: dict[str, Any], b: Builder) -> tuple[Path, dict[str, Any]]:
    # Relative to where the command runs, as in LLaMA-Factory.
    directory = Path(str(raw.get("dataset_dir") or "data"))
    info_path = directory / "dataset_info.json"
    if not info_path.is_file():
        raise b.error(
            "dataset_dir",
            f"no dataset_info.json in {directory}; LLaMA-Factory looks dataset names up there: set dataset_dir, "
            "e.g. on the command line: dataset_dir=PATH",
        )
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise b.error("dataset_dir", f"{info_path} is not valid JSON: {exc}") from None
    return directory, info


def _source(name: str, entry: dict, directory: Path, stage: str, b: Builder, key: str) -> dict[str, Any]:
    """One dataset_info.json entry as a prefalign data source."""
    if "file_name" in entry:
        path = directory / entry["file_name"]
        source: dict[str, Any] = {"path": str(path)}
    elif "hf_hub_url" in entry:
        source = {"path": entry["hf_hub_url"]}
        if entry.get("subset"):
            source["name"] = entry["subset"]
    else:
        raise b.error(key, f"dataset {name!r}: prefalign reads file_name and hf_hub_url entries (not ms_hub_url, "
                           "om_hub_url or script_url)")  # fmt: skip
    if entry.get("split"):
        source["split"] = entry["split"]
    formatting = entry.get("formatting", "alpaca")
    columns, tags = dict(entry.get("columns") or {}), entry.get("tags")
    media = sorted(set(columns) & {"images", "videos", "audios"})
    if media:
        raise b.error(key, f"dataset {name!r} has {', '.join(media)} columns: prefalign trains on text")
    unpaired = "kto_tag" in columns
    if stage == "kto" and not unpaired:
        raise b.error(key, f"dataset {name!r} has no kto_tag column; stage kto reads unpaired rows with a label")
    if stage != "kto" and unpaired:
        raise b.error(key, f"dataset {name!r} is not preference data: it holds unpaired rows (kto_tag), which stage "
                           f"{stage} does not train; stage kto does")  # fmt: skip
    if stage != "kto" and not entry.get("ranking"):
        raise b.error(key, f"dataset {name!r} is not preference data: its dataset_info entry has no ranking: true")
    if formatting == "sharegpt":
        source["format"] = "sharegpt_kto" if unpaired else "sharegpt"
    elif formatting == "alpaca" and not unpaired:
        source["format"] = "alpaca"
    else:
        raise b.error(key, f"dataset {name!r}: formatting {formatting!r} with kto_tag is not a layout prefalign reads "
                           "(sharegpt with kto_tag is)")  # fmt: skip
    if columns:
        source["columns"] = columns
    if tags:
        source["tags"] = tags
    if entry.get("num_samples"):
        source["max_rows"] = int(entry["num_samples"])
    return source


def _datasets(raw: dict[str, Any], b: Builder) -> None:
    stage = str(raw.get("stage"))
    info: dict[str, Any] | None = None
    directory = Path()
    for key, target in (("dataset", "data.train"), ("eval_dataset", "data.eval")):
        if unset(raw.get(key)):
            continue
        if info is None:
            directory, info = _load_info(raw, b)
        sources = []
        for name in b.convert(key, raw[key], as_list):
            if name not in info:
                raise b.error(key, f"dataset {name!r} is not in {directory / 'dataset_info.json'}; it has: "
                                   f"{', '.join(sorted(info)) or 'none'}")  # fmt: skip
            source = _source(name, info[name], directory, stage, b, key)
            if not unset(raw.get("max_samples")):
                limit = b.convert("max_samples", raw["max_samples"], as_int)
                source["max_rows"] = min(source.get("max_rows", limit), limit)
            sources.append(source)
            b.record(
                f"{key}: {name}",
                info[name].get("file_name") or info[name].get("hf_hub_url"),
                target,
                f"{source['format']} rows" + (f", max_rows {source['max_rows']}" if "max_rows" in source else ""),
            )
        b.config.setdefault("data", {})[target.split(".")[1]] = sources


def _kto_batch(raw: dict[str, Any], b: Builder) -> None:
    """KTO estimates its KL term from the other rows of a micro-batch, so one row is not enough: two rows a
    micro-batch and half the accumulation keep the rows per optimizer step."""
    accum = b.convert("gradient_accumulation_steps", raw.get("gradient_accumulation_steps", 1), as_int)
    targets = {"train.batch_size": 2, "train.grad_accum": max(1, accum // 2)}
    b.set_many("per_device_train_batch_size", 1, targets,
               f"KTO's KL estimate needs 2 rows a micro-batch: 2 × {targets['train.grad_accum']} rows a step "
               f"(LLaMA-Factory: 1 × {accum})")  # fmt: skip


# Keys read together by _method and _datasets, which write their rows.
_JOINT = {"stage", "pref_beta", "pref_loss", "pref_ftx", "simpo_gamma", "dataset", "eval_dataset"}


def translate(raw: dict[str, Any], b: Builder) -> None:
    _method(raw, b)
    # LLaMA-Factory's own LoRA defaults where they differ from prefalign's: rank 8, alpha twice the rank.
    if b.convert("finetuning_type", raw.get("finetuning_type", "lora"), as_str) == "lora":
        rank = b.convert("lora_rank", raw.get("lora_rank", 8), as_int)
        if "lora_rank" not in raw:
            b.set("(lora_rank)", None, "model.lora.r", rank, "LLaMA-Factory's default rank")
        if "lora_alpha" not in raw:
            b.set("(lora_alpha)", None, "model.lora.alpha", 2 * rank, "LLaMA-Factory's default: 2 × lora_rank")
    _datasets(raw, b)
    kto_one = raw.get("stage") == "kto" and raw.get("per_device_train_batch_size") == 1
    for key, value in raw.items():
        if key in _JOINT:
            continue
        if kto_one and key == "gradient_accumulation_steps":
            b.record(key, value, "train.grad_accum", "halved: see per_device_train_batch_size")
            continue
        rule = LLAMAFACTORY_KEYS.get(key)
        if key == "per_device_train_batch_size" and raw.get("stage") == "kto" and value == 1:
            _kto_batch(raw, b)
        elif rule is None:
            b.refuse(key, value, "not a LLaMA-Factory argument prefalign knows")
        else:
            b.apply(rule, key, value)
