"""TRL: a DPOConfig / KTOConfig / RewardConfig (as `to_dict()` dumps it, or as a TRL script's YAML with its
ModelConfig and ScriptArguments keys), and the CPOConfig / ORPOConfig of earlier TRL releases.

Which trainer the keys belong to is read from the fields only one of them has (`desirable_weight`: KTO,
`center_rewards_coefficient`: reward, `cpo_alpha`/`simpo_gamma`: CPO, ...), or named with the trainer:
`--from=trl:orpo`.
TRL names the dataset outside its config (a script argument): `dataset_name` is read when present, else
`data.train` must be given as an override.
"""

from __future__ import annotations

from typing import Any

from prefalign.dialects.hf_args import TRAINING_ARGUMENTS
from prefalign.dialects.table import (
    Builder,
    Rule,
    as_bool,
    as_float,
    as_int,
    as_str,
    ignored,
    only_unset,
    quantization,
    to,
    unset,
)
from prefalign.losses import LOSSES

TRAINERS = ("dpo", "kto", "reward", "cpo", "orpo")

# The fields that tell the trainers apart (TRL 1.x and the CPO/ORPO configs of 0.x).
_MARKERS = {
    "kto": ("desirable_weight", "undesirable_weight"),
    "reward": ("center_rewards_coefficient",),
    "cpo": ("cpo_alpha", "simpo_gamma"),
    "dpo": ("precompute_ref_log_probs", "rpo_alpha", "sync_ref_model", "ld_alpha", "use_weighting",
            "f_divergence_type", "discopop_tau", "ref_model_init_kwargs", "loss_weights"),
}  # fmt: skip

_DTYPES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32", "auto": "auto", "bf16": "bfloat16"}


def infer_trainer(raw: dict[str, Any]) -> tuple[str, str]:
    """The TRL trainer these keys configure and why."""
    for trainer in ("kto", "reward", "cpo"):
        found = [key for key in _MARKERS[trainer] if key in raw]
        if found:
            return trainer, f"has {found[0]}"
    if raw.get("loss_type") in ("kto", "apo_zero_unpaired"):
        return "kto", f"loss_type {raw['loss_type']}"
    found = [key for key in _MARKERS["dpo"] if key in raw]
    return "dpo", f"has {found[0]}" if found else "DPO, TRL's preference trainer, when no field names another"


def _dtype(value: Any) -> str:
    name = as_str(value).removeprefix("torch.")
    if name not in _DTYPES:
        raise ValueError
    return _DTYPES[name]


def model_init_kwargs(b: Builder, key: str, value: Any) -> None:
    if unset(value):
        b.ignore(key, value, "not set")
        return
    kwargs = dict(value) if isinstance(value, dict) else {}
    dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
    if kwargs or not isinstance(value, dict):
        b.refuse(key, value, f"model.* has no equivalent of {', '.join(kwargs) or value!r}")
        return
    if dtype is not None:
        b.set(key, value, "model.dtype", b.convert(key, dtype, _dtype_checked))


def _dtype_checked(value: Any) -> str:
    from prefalign.dialects.table import WrongType

    try:
        return _dtype(value)
    except ValueError:
        raise WrongType(f"expected a dtype ({', '.join(_DTYPES)})") from None


def loss_type(trainer: str) -> Rule:
    def rule(b: Builder, key: str, value: Any) -> None:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise b.error(key, f"expected a loss name or a list of them (got {value!r})")
        if trainer == "cpo":  # CPOConfig's loss_type sigmoid is CPO itself; simpo is SimPO
            names = ["simpo" if n == "simpo" else "cpo" if n == "sigmoid" else n for n in names]
        unknown = [n for n in names if n not in LOSSES]
        if unknown:
            b.refuse(key, value, f"loss {unknown[0]!r} is not in prefalign's registry (prefalign methods)")
            return
        b.set(key, value, "method.loss", names[0] if len(names) == 1 else names)

    return rule


def precompute(b: Builder, key: str, value: Any) -> None:
    if unset(value) or not b.convert(key, value, as_bool):
        b.ignore(key, value, "not set: reference.mode auto (precomputed when the run covers the data)")
    else:
        b.set(key, value, "reference.mode", "precomputed")


def max_length(b: Builder, key: str, value: Any) -> None:
    if unset(value):
        b.ignore(key, value, "not set")
        return
    b.set_many(
        key, value, {"data.max_length": b.convert(key, value, as_int), "data.max_prompt_length": None},
        "TRL limits prompt + answer only; prefalign's separate prompt limit is switched off",
    )  # fmt: skip


def use_peft(b: Builder, key: str, value: Any) -> None:
    if b.convert(key, value, as_bool):
        b.ignore(key, value, "LoRA: prefalign's default (model.lora)")
    else:
        b.set(key, value, "model.lora", None, "full fine-tuning")


def _tokens(b: Builder, key: str, value: Any) -> None:
    if unset(value) or (isinstance(value, str) and value.startswith("<") and value.endswith(">")):
        b.ignore(key, value, "not set (or redacted by to_dict): the tokenizer's own")
    else:
        b.refuse(key, value, "prefalign uses the tokenizer's own special tokens")


_NO_EFFECT = "no effect in prefalign"
_READ_WITH_DATASET = ignored("read with dataset_name")


# Fields of TRL's own configs (DPOConfig, KTOConfig, RewardConfig; CPOConfig, ORPOConfig of TRL 0.x),
# its ModelConfig and ScriptArguments. `beta` and `loss_type` depend on the trainer: see `translate`.
TRL_FIELDS: dict[str, Rule] = {
    "model_init_kwargs": model_init_kwargs,
    "ref_model_init_kwargs": only_unset("the reference is the policy's base (or reference.path); no init kwargs"),
    "trust_remote_code": to("model.trust_remote_code", as_bool),
    "router_aux_loss_coef": only_unset("MoE router loss is not in prefalign"),
    "disable_dropout": ignored(
        "LoRA dropout is model.lora.dropout (default 0); the model's own dropout is left as its config sets it"
    ),
    "dataset_num_proc": to("data.num_proc", as_int),
    "max_length": max_length,
    "max_prompt_length": to("data.max_prompt_length", as_int),
    "max_completion_length": to("data.max_completion_length", as_int),
    "truncation_mode": ignored("prefalign truncates its own way: the prompt keeps its end, the answer its start"),
    "padding_free": ignored("prefalign's packed layouts (data.layout auto) have no padding"),
    "pad_to_multiple_of": ignored(_NO_EFFECT),
    "padding_value": ignored(_NO_EFFECT),
    "label_pad_token_id": ignored(_NO_EFFECT),
    "is_encoder_decoder": only_unset("prefalign trains causal language models", False),
    "generate_during_eval": ignored("eval.generations answers held-out prompts before and after"),
    "precompute_ref_log_probs": precompute,
    "precompute_ref_batch_size": ignored("precomputing scores in train.eval_batch_size batches"),
    "loss_weights": to("method.loss_weights", lambda v: [as_float(x) for x in v]),
    "ld_alpha": to("method.ld_alpha", as_float),
    "f_divergence_type": to("method.f_divergence_type", as_str),
    "f_alpha_divergence_coef": to("method.f_alpha_divergence_coef", as_float),
    "label_smoothing": to("method.label_smoothing", as_float),
    "use_weighting": to("method.use_weighting", as_bool),
    "discopop_tau": to("method.discopop_tau", as_float),
    "rpo_alpha": to("method.rpo_alpha", as_float),
    "reference_free": only_unset("use a reference-free loss (simpo, cpo, orpo) instead", False),
    "activation_offloading": only_unset("activation offloading is not in prefalign", False),
    "sync_ref_model": only_unset("TR-DPO's reference syncing is not in prefalign", False),
    "ref_model_mixup_alpha": ignored("read only with sync_ref_model"),
    "ref_model_sync_steps": ignored("read only with sync_ref_model"),
    "pad_token": _tokens,
    "eos_token": _tokens,
    "chat_template_path": only_unset("name a built-in template with data.template"),
    "desirable_weight": to("method.desirable_weight", as_float),
    "undesirable_weight": to("method.undesirable_weight", as_float),
    "center_rewards_coefficient": to("method.center_rewards_coefficient", as_float),
    "cpo_alpha": to("method.cpo_alpha", as_float),
    "simpo_gamma": to("method.gamma", as_float),
    "use_logits_to_keep": ignored("prefalign never builds logits for prompt positions"),
    "tools": only_unset("tools come with each row (a tools column)"),
    # ModelConfig (TRL scripts)
    "model_name_or_path": to("model.path", as_str),
    "model_revision": to("model.revision", as_str),
    "dtype": to("model.dtype", _dtype_checked),
    "torch_dtype": to("model.dtype", _dtype_checked),
    "attn_implementation": to("model.attention", as_str),
    "use_peft": use_peft,
    "lora_r": to("model.lora.r", as_int),
    "lora_alpha": to("model.lora.alpha", as_float),
    "lora_dropout": to("model.lora.dropout", as_float),
    "lora_target_modules": to("model.lora.target_modules", lambda v: v),
    "lora_modules_to_save": only_unset("model.lora trains adapters only"),
    "lora_task_type": ignored("prefalign sets the task type itself"),
    "use_rslora": only_unset("rsLoRA scaling is not in prefalign", False),
    "use_dora": only_unset("DoRA is not in prefalign", False),
    "load_in_4bit": quantization("nf4"),
    "load_in_8bit": quantization("int8"),
    "bnb_4bit_quant_type": ignored("read with load_in_4bit: nf4"),
    "use_bnb_nested_quant": only_unset("nested quantisation is not in prefalign", False),
    # ScriptArguments (TRL scripts)
    "dataset_name": _READ_WITH_DATASET,  # the three are read together in `translate`
    "dataset_config": _READ_WITH_DATASET,
    "dataset_train_split": _READ_WITH_DATASET,
    "dataset_test_split": ignored("held-out data is data.eval or data.eval_fraction"),
    "dataset_streaming": only_unset("prefalign reads datasets whole (cached by datasets)", False),
    "gradient_checkpointing_use_reentrant": ignored("prefalign's checkpointing is non-reentrant"),
    "ignore_bias_buffers": ignored(_NO_EFFECT),
}


def _beta(trainer: str) -> Rule:
    def rule(b: Builder, key: str, value: Any) -> None:
        if value is None:
            b.ignore(key, value, "not set")
        elif trainer == "orpo":  # ORPOConfig's beta is the paper's lambda
            b.set(key, value, "method.orpo_lambda", b.convert(key, value, as_float), "ORPOConfig's beta is ORPO's λ")
        else:
            b.set(key, value, "method.beta", b.convert(key, value, as_float))

    return rule


_METHOD = {
    "dpo": {"method.loss": "sigmoid"},
    "kto": {"method.loss": "kto"},
    "reward": {"method.kind": "reward"},
    "cpo": {"method.loss": "cpo"},
    "orpo": {"method.loss": "orpo"},
}


def translate(raw: dict[str, Any], b: Builder, trainer: str | None = None) -> None:
    if trainer is None:
        trainer, why = infer_trainer(raw)
        how = f"read as TRL's {trainer.upper()} trainer config ({why}); to name another, --from=trl:NAME"
    else:
        how = f"read as TRL's {trainer.upper()} trainer config (named)"
    # What the trainer itself stands for, before the fields that refine it (loss_type, beta).
    for target, value in _METHOD[trainer].items():
        b.set(f"({trainer} trainer)", trainer, target, value, how)
    if "rpo_alpha" not in raw and trainer == "dpo":
        b.set("(dpo trainer)", trainer, "method.rpo_alpha", None, "TRL trains the loss as named, with no NLL term")
    _dataset(raw, b)
    fields = {**TRAINING_ARGUMENTS, **TRL_FIELDS, "beta": _beta(trainer), "loss_type": loss_type(trainer)}
    if trainer == "reward":
        fields["beta"] = ignored("not read by the reward trainer")
    for key, value in raw.items():
        rule = fields.get(key)
        if key in ("dataset_name", "dataset_config", "dataset_train_split"):
            continue
        if rule is None:
            b.refuse(key, value, "not a field of TRL's configs that prefalign knows")
        else:
            b.apply(rule, key, value)


def _dataset(raw: dict[str, Any], b: Builder) -> None:
    """A TRL script's dataset arguments: one hub dataset (its configuration and split)."""
    if unset(raw.get("dataset_name")):
        for key in ("dataset_name", "dataset_config", "dataset_train_split"):
            if key in raw:
                b.ignore(key, raw[key], "not set: give data.train")
        return
    source = {"path": b.convert("dataset_name", raw["dataset_name"], as_str)}
    b.set("dataset_name", raw["dataset_name"], "data.train", [source], "a TRL script argument")
    for key, option in (("dataset_config", "name"), ("dataset_train_split", "split")):
        if key in raw and not unset(raw[key]):
            source[option] = b.convert(key, raw[key], as_str)
            b.record(key, raw[key], f"data.train[0].{option}")
        elif key in raw:
            b.ignore(key, raw[key], "not set")
