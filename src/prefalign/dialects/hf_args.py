"""transformers' TrainingArguments, which TRL's configs extend and LLaMA-Factory passes through: every field
(transformers 5) and what it becomes in prefalign.

tests/test_dialects.py checks that this table covers every field of the installed TrainingArguments, so a new
transformers field shows up as a failing test rather than as an unknown key in a user's config.
"""

from __future__ import annotations

from typing import Any

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
    report_to,
    schedule,
    to,
    unset,
    warmup_steps,
)

_NO_EFFECT = "no effect in prefalign"
_NOT_NEEDED = "accepted, not needed"
_LOGGING = "prefalign logs every train.log_every steps to metrics.jsonl and the console"
_HUB = "prefalign does not push to the Hub; upload the run's adapter/ or merged/ yourself"
_DISTRIBUTED = "prefalign scales with `accelerate launch` and its own config; not read from here"


def positive_or_unset(target: str, fn=as_int, note: str = "") -> Rule:
    """Keys whose 0 or -1 means "not set" in transformers (max_steps: -1, save_total_limit: None, ...)."""

    def rule(b: Builder, key: str, value: Any) -> None:
        number = None if unset(value) else b.convert(key, value, fn)
        if number is None or number <= 0:
            b.ignore(key, value, "not set")
        else:
            b.set(key, value, target, number, note)

    return rule


def precision(kind: str) -> Rule:
    """bf16 / fp16: true -> train.mixed_precision; `auto` (Axolotl) -> auto."""

    def rule(b: Builder, key: str, value: Any) -> None:
        if isinstance(value, str) and value.strip().lower() == "auto":
            b.set(key, value, "train.mixed_precision", "auto", "bf16 where the device computes it fast")
            return
        if unset(value) or not b.convert(key, value, as_bool):
            b.ignore(key, value, "not set")
            return
        b.set(key, value, "train.mixed_precision", kind)

    return rule


def checkpointing(b: Builder, key: str, value: Any) -> None:
    if value is None:
        b.ignore(key, value, "not set")
        return
    b.set(key, value, "train.gradient_checkpointing", b.convert(key, value, as_bool))


def eval_strategy(b: Builder, key: str, value: Any) -> None:
    name = "no" if unset(value) else b.convert(key, value, as_str)
    notes = {
        "no": "prefalign evaluates at the end when there is held-out data",
        "steps": "evaluates every eval_steps (train.eval_every), and at the end",
        "epoch": "prefalign evaluates at the end and every train.eval_every steps; set it to evaluate per epoch",
    }
    b.ignore(key, value, notes.get(name, _NO_EFFECT))


def resume(b: Builder, key: str, value: Any) -> None:
    if unset(value):
        b.ignore(key, value, "not set")
    elif value is True:
        b.set(key, value, "train.resume", True)
    else:
        b.refuse(key, value, "prefalign resumes the newest checkpoint of output.dir (--resume), not a given path")


def adam(default: float) -> Rule:
    def rule(b: Builder, key: str, value: Any) -> None:
        if value is None or b.convert(key, value, as_float) == default:
            b.ignore(key, value, "torch's AdamW default, which prefalign uses")
        else:
            b.refuse(key, value, f"prefalign's AdamW keeps torch's default ({default})")

    return rule


def redacted(b: Builder, key: str, value: Any) -> None:
    if unset(value) or (isinstance(value, str) and value.startswith("<") and value.endswith(">")):
        b.ignore(key, value, "not set (or redacted by to_dict)")
    else:
        b.ignore(key, value, "a secret: prefalign does not read it from a config")


def logging_steps(b: Builder, key: str, value: Any) -> None:
    steps = b.convert(key, value, as_float)
    if steps < 1:  # transformers reads a value below 1 as a fraction of the run
        b.set(key, value, "train.log_every", 1, "a fraction of the run: prefalign logs every step")
    else:
        b.set(key, value, "train.log_every", b.convert(key, value, as_int))


TRAINING_ARGUMENTS: dict[str, Rule] = {
    "output_dir": to("output.dir", as_str),
    "overwrite_output_dir": to("output.overwrite", as_bool, "prefalign only ever replaces its own earlier run"),
    "per_device_train_batch_size": to("train.batch_size", as_int),
    "per_device_eval_batch_size": to("train.eval_batch_size", as_int),
    "num_train_epochs": to("train.epochs", as_float),
    "max_steps": positive_or_unset("train.max_steps"),
    "learning_rate": to("train.lr", as_float),
    "lr_scheduler_type": schedule,
    "lr_scheduler_kwargs": only_unset("prefalign's schedules take no extra arguments"),
    "warmup_steps": warmup_steps,
    "warmup_ratio": to("train.warmup_ratio", as_float),
    "optim": optimizer,
    "optim_args": only_unset("prefalign's optimizers take no extra arguments"),
    "optim_target_modules": only_unset("GaLore-style optimizers are not in prefalign"),
    "weight_decay": to("train.weight_decay", as_float),
    "adam_beta1": adam(0.9),
    "adam_beta2": adam(0.999),
    "adam_epsilon": adam(1e-8),
    "gradient_accumulation_steps": to("train.grad_accum", as_int),
    "average_tokens_across_devices": ignored(
        "prefalign normalises the loss so accumulation and processes give the same gradient as one big batch"
    ),
    "max_grad_norm": to("train.max_grad_norm", as_float),
    "label_smoothing_factor": only_unset(
        "token label smoothing is not in prefalign (method.label_smoothing is the preference-label kind)", 0, 0.0
    ),
    "bf16": precision("bf16"),
    "fp16": precision("fp16"),
    "bf16_full_eval": ignored("evaluation runs under train.mixed_precision"),
    "fp16_full_eval": ignored("evaluation runs under train.mixed_precision"),
    "tf32": ignored("a CUDA matmul setting; prefalign leaves torch's TF32 default as it is"),
    "gradient_checkpointing": checkpointing,
    "activation_checkpointing": checkpointing,
    "gradient_checkpointing_kwargs": ignored("prefalign's checkpointing is non-reentrant; no options"),
    "activation_checkpointing_kwargs": ignored("prefalign's checkpointing is non-reentrant; no options"),
    "torch_compile": to("train.compile", as_bool),
    "torch_compile_backend": ignored("train.compile uses torch's default backend"),
    "torch_compile_mode": ignored("train.compile uses torch's default mode"),
    "use_liger_kernel": only_unset(
        "Liger kernels are not used; prefalign computes log-probs without full logits itself", False
    ),
    "liger_kernel_config": only_unset("Liger kernels are not used"),
    "use_cache": ignored("the KV cache is off in training and on in generation; no setting"),
    "neftune_noise_alpha": only_unset("NEFTune noise is not in prefalign"),
    "torch_empty_cache_steps": ignored(_NO_EFFECT),
    "auto_find_batch_size": only_unset("prefalign does not search for a batch size; set train.batch_size", False),
    "logging_strategy": ignored(_LOGGING),
    "logging_steps": logging_steps,
    "logging_first_step": ignored("prefalign logs from the first step"),
    "log_on_each_node": ignored("rank 0 logs"),
    "logging_nan_inf_filter": ignored(_NO_EFFECT),
    "include_num_input_tokens_seen": ignored("prefalign logs tokens_per_s"),
    "log_level": ignored("`prefalign train -v` logs what each stage does"),
    "log_level_replica": ignored("rank 0 logs"),
    "disable_tqdm": ignored(_NO_EFFECT),
    "report_to": report_to,
    "run_name": ignored("the run is named by output.dir"),
    "project": ignored("a tracker setting; the run is named by output.dir"),
    "trackio_space_id": only_unset("trackio is not a prefalign tracker"),
    "trackio_bucket_id": only_unset("trackio is not a prefalign tracker"),
    "trackio_static_space_id": only_unset("trackio is not a prefalign tracker"),
    "eval_strategy": eval_strategy,
    "eval_steps": positive_or_unset("train.eval_every"),
    "eval_delay": ignored(_NO_EFFECT),
    "prediction_loss_only": ignored("prefalign's evaluation reports the loss and reward metrics"),
    "eval_on_start": ignored("eval.before evaluates the untrained model (default true)"),
    "eval_do_concat_batches": ignored(_NO_EFFECT),
    "eval_use_gather_object": ignored(_NO_EFFECT),
    "eval_accumulation_steps": ignored(_NO_EFFECT),
    "include_for_metrics": ignored(_NO_EFFECT),
    "batch_eval_metrics": ignored(_NO_EFFECT),
    "save_only_model": ignored("prefalign's checkpoints always hold what resuming needs"),
    "save_strategy": ignored("checkpoints every train.save_every steps (save_steps), the outputs at the end"),
    "save_steps": positive_or_unset("train.save_every"),
    "save_on_each_node": ignored("rank 0 writes"),
    "save_total_limit": positive_or_unset("train.keep_checkpoints"),
    "enable_jit_checkpoint": only_unset("checkpoints are written every train.save_every steps", False),
    "push_to_hub": only_unset(_HUB, False),
    "hub_token": redacted,
    "hub_private_repo": ignored(_HUB),
    "hub_model_id": only_unset(_HUB),
    "hub_strategy": ignored(_HUB),
    "hub_always_push": ignored(_HUB),
    "hub_revision": ignored(_HUB),
    "load_best_model_at_end": only_unset("prefalign keeps the last step's model", False),
    "metric_for_best_model": only_unset("prefalign keeps the last step's model"),
    "greater_is_better": ignored("prefalign keeps the last step's model"),
    "ignore_data_skip": ignored("a resumed run continues from its data position"),
    "restore_callback_states_from_checkpoint": ignored(_NO_EFFECT),
    "full_determinism": ignored("prefalign seeds data order, dropout and initialisation from train.seed"),
    "seed": to("train.seed", as_int),
    "data_seed": only_unset("the data order follows train.seed"),
    "use_cpu": ignored("accelerate picks the device"),
    "accelerator_config": ignored(_DISTRIBUTED),
    "parallelism_config": only_unset(_DISTRIBUTED),
    "dataloader_drop_last": ignored(_NO_EFFECT),
    "dataloader_num_workers": ignored(_NO_EFFECT),
    "dataloader_pin_memory": ignored(_NO_EFFECT),
    "dataloader_persistent_workers": ignored(_NO_EFFECT),
    "dataloader_prefetch_factor": ignored(_NO_EFFECT),
    "dataloader_multiprocessing_context": ignored(_NO_EFFECT),
    "dataloader_in_order": ignored(_NO_EFFECT),
    "remove_unused_columns": ignored("prefalign keeps only the columns its readers read"),
    "label_names": ignored(_NO_EFFECT),
    "train_sampling_strategy": ignored("prefalign shuffles every epoch with train.seed"),
    "length_column_name": ignored(_NO_EFFECT),
    "ddp_find_unused_parameters": ignored(_NOT_NEEDED),
    "ddp_bucket_cap_mb": ignored(_NOT_NEEDED),
    "ddp_broadcast_buffers": ignored(_NOT_NEEDED),
    "ddp_static_graph": ignored(_NOT_NEEDED),
    "ddp_backend": ignored(_NOT_NEEDED),
    "ddp_timeout": ignored(_NOT_NEEDED),
    "fsdp": only_unset(_DISTRIBUTED, ""),
    "fsdp_config": only_unset(_DISTRIBUTED),
    "deepspeed": only_unset(_DISTRIBUTED),
    "debug": ignored(_NO_EFFECT),
    "skip_memory_metrics": ignored(_NO_EFFECT),
    "do_train": ignored("prefalign train trains"),
    "do_eval": ignored("prefalign evaluates when there is held-out data"),
    "do_predict": only_unset("prediction runs are not part of training", False),
    "resume_from_checkpoint": resume,
    "local_rank": ignored("set by the launcher"),
    "eval_batch_size": to("train.eval_batch_size", as_int),
}
