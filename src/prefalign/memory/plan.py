"""A run's memory plan from its config and tokenised data: the model's shape (config only, no weights), the
heaviest micro-batch the data can make in the run's layout, the settings that move memory, the budget, and
what `train.memory: auto` chooses. `prefalign plan` prints it; a run prints it at start-up and keeps it in
result.json.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from prefalign.config import RunConfig
from prefalign.data.layout import ONE_ROW, make_batch
from prefalign.memory.auto import CPU_LEAN_POSITIONS, MemoryChoice, fit_to_budget
from prefalign.memory.budget import device_memory, parse_size
from prefalign.memory.estimate import MemoryPlan, Settings, Workload, estimate_memory
from prefalign.memory.shape import ModelShape, shape_of
from prefalign.sizes import describe_bytes


def meta_model(config: RunConfig) -> Any:
    """The run's model built on the meta device from its config alone: shapes, no storage, no weights read."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from prefalign.model.load import _tokenizer_source  # a GGUF not converted yet is read for its config alone

    path, kwargs = _tokenizer_source(config.model.path)
    hf_config = AutoConfig.from_pretrained(
        path, revision=config.model.revision, trust_remote_code=config.model.trust_remote_code, **kwargs
    )
    options = {"attn_implementation": config.model.attention} if config.model.attention else {}
    with torch.device("meta"):
        if config.method.kind == "reward":
            hf_config.num_labels = 1
            return AutoModelForSequenceClassification.from_config(hf_config, **options)
        return AutoModelForCausalLM.from_config(hf_config, trust_remote_code=config.model.trust_remote_code, **options)


def layout_for(config: RunConfig, model: Any) -> tuple[str, int | None]:
    """(data.layout, data.pack_length) as the run resolves them for `model` (model/attention.py's rules; an SDPA
    model becomes the segment attention, which packs a batch into one row, unless train.compile)."""
    from prefalign.model.attention import attention_implementation, resolve_layout, sliding_window

    layout = resolve_layout(config.data.layout, model)
    if config.data.pack_length is not None:
        return layout, config.data.pack_length
    implementation = attention_implementation(model)
    segments = implementation == "sdpa" and not sliding_window(model) and not config.train.compile
    return layout, ONE_ROW if segments or implementation == "flex_attention" else None


def heaviest_workload(train, pad_id: int, batch_size: int, layout: str, pack_length: int | None, kl: bool) -> Workload:
    """The token counts of the heaviest micro-batch of `batch_size` examples the data can make in `layout`.

    The examples are ranked by what the layout costs (padded: the longest sequence sets every row's width;
    the others: every token of the example) and the top `batch_size` are laid out as training would lay them.
    """
    paired = "chosen_ids" in train.column_names
    answers = ("chosen_ids", "rejected_ids") if paired else ("completion_ids",)
    columns = {name: train[name] for name in ("prompt_ids", *answers)}
    lengths = [(len(columns["prompt_ids"][i]), [len(columns[a][i]) for a in answers]) for i in range(len(train))]
    if layout == "padded":
        cost = [prompt + max(ans) for prompt, ans in lengths]
    else:
        cost = [prompt * (1 if layout.startswith("prefix_shared") else len(ans)) + sum(ans) for prompt, ans in lengths]
    top = sorted(range(len(train)), key=cost.__getitem__, reverse=True)[: max(1, batch_size)]
    if kl and len(top) < 2:
        top = top * 2
    batch = make_batch(train.select(top), pad_id, layout, kl_completions=kl, pack_length=pack_length)
    rows, width = batch.input_ids.shape
    reread = 0
    if batch.segments is not None:
        reread = sum(b.prompt_end - b.prompt_start for row in batch.segments.rows for b in row)
    return Workload(int(rows), int(width), batch.num_scored_tokens, layout, reread)


def memory_settings(config: RunConfig, precision: str, reference_mode: str, **overrides: Any) -> Settings:
    """The settings of `config` that move memory. `precision` and `reference_mode` as resolved for the run;
    `overrides` (optimizer=, quantization=, gradient_checkpointing=) for what the config does not hold yet."""
    model = config.model
    settings = Settings(
        lora_rank=model.lora.r if model.lora is not None else None,
        weight_dtype="float32" if model.dtype == "auto" else model.dtype,
        precision=precision,
        optimizer=str(getattr(config.train, "optimizer", "adamw")),
        quantization=getattr(model, "quantization", None),
        reference="none" if reference_mode == "none" else reference_mode,
        gradient_checkpointing=config.train.gradient_checkpointing,
        fused_mlp=config.train.fused_mlp,
        activation_offload=config.train.activation_offload,
        lm_head=config.method.kind == "policy" or config.method.lm_coef > 0,
    )
    return replace(settings, **overrides)


@dataclass
class RunPlan:
    """The plan of a run as configured, what `train.memory` chose, and the budget it was held to."""

    shape: ModelShape
    configured: MemoryPlan
    choice: MemoryChoice | None  # None with train.memory: off, or when the budget cannot be read
    budget: int | None
    budget_source: str
    fits: bool
    message: str  # one line: what was chosen and why, or why nothing was

    @property
    def plan(self) -> MemoryPlan:
        return self.choice.plan if self.choice else self.configured

    def as_dict(self) -> dict:
        return {
            "plan": self.plan.as_dict(),
            "configured_peak_bytes": self.configured.peak,
            "budget_bytes": self.budget,
            "budget_source": self.budget_source,
            "fits": self.fits,
            "choice": self.choice.as_dict() if self.choice else None,
            "message": self.message,
            # the plan is of each process; sharding (plan.settings) says what each holds a share of
            "per_process": True,
            "processes": self.plan.settings.processes,
        }


def _fixes(config: RunConfig, settings: Settings, workload: Workload, device_type: str) -> list[str]:
    fixes = []
    if settings.lora_rank is None:
        fixes.append("train a LoRA adapter instead of every weight (model.lora: {r: 16}): no gradients or "
                     "optimizer state for the frozen weights")  # fmt: skip
    if settings.reference == "model":
        fixes.append("reference.mode: precomputed (the reference scores the data once; no second copy in training)")
    if device_type == "cuda" and settings.quantization is None and settings.lora_rank is not None:
        fixes.append("a 4-bit base under the adapter (model.quantization: nf4)")
    fixes.append(f"a shorter data.max_length (now {config.data.max_length}; the heaviest micro-batch runs "
                 f"{workload.tokens} positions)")  # fmt: skip
    return fixes


def plan_run(
    config: RunConfig,
    train,
    pad_id: int,
    *,
    precision: str,
    reference_mode: str,
    device: Any = "cpu",
    world: int = 1,
    **overrides: Any,
) -> RunPlan:
    """The memory plan of `config` on the tokenised training data, and train.memory's choice (see auto.py).

    Raises ConfigError when train.memory is auto and nothing fits the budget, naming the fixes.
    """
    import torch

    from prefalign.objective import make_objective

    overrides.setdefault("device", "cuda" if torch.device(device).type == "cuda" else "cpu")
    overrides.setdefault("processes", world)  # the plan is of each one; overrides' sharding says what they split
    model = meta_model(config)
    shape = shape_of(model, config.model.lora.target_modules if config.model.lora else "all-linear")
    layout, pack_length = layout_for(config, model)
    kl = make_objective(config.method).kl_completions
    base = memory_settings(config, precision, reference_mode, **overrides)

    def plan(micro_batch: int, checkpointing: bool) -> MemoryPlan:
        workload = heaviest_workload(train, pad_id, micro_batch, layout, pack_length, kl)
        return estimate_memory(shape, workload, replace(base, gradient_checkpointing=checkpointing))

    batch_size, accum = config.train.batch_size, config.train.grad_accum
    configured = plan(batch_size, base.gradient_checkpointing)
    device_type = torch.device(device).type
    if config.train.memory_budget is not None:
        budget, source = parse_size(config.train.memory_budget), "train.memory_budget"
    else:
        budget, source = device_memory(device)
    # Said on every path: a GPU option in a config run on a CPU does nothing.
    offload = ("; train.activation_offload has no effect on a CPU (the activations are in CPU memory already)"
               if config.train.activation_offload and device_type != "cuda" else "")  # fmt: skip
    if budget is None:
        message = f"memory budget unknown ({source}): running as configured; set train.memory_budget to plan"
        return RunPlan(shape, configured, None, None, source, True, message + offload)
    if config.train.memory == "off":
        fits = configured.peak <= budget
        message = (
            f"train.memory off: as configured, {describe_bytes(configured.peak)} of "
            f"{describe_bytes(budget)} ({source})" + ("" if fits else ": it will probably run out of memory")
        )
        return RunPlan(shape, configured, None, budget, source, fits, message + offload)
    can_split = not kl and "aot" not in config.method.names  # losses that look across a micro-batch
    choice = fit_to_budget(
        plan, budget, batch_size=batch_size, grad_accum=accum, gradient_checkpointing=base.gradient_checkpointing,
        can_split=can_split, budget_source=source,
        fixes=_fixes(config, base, configured.workload, device_type),
        lean_positions=CPU_LEAN_POSITIONS if device_type == "cpu" else None,
    )  # fmt: skip
    return RunPlan(shape, configured, choice, budget, source, True, choice.reason + offload)


def apply_choice(config: RunConfig, run_plan: RunPlan) -> None:
    """Set the chosen micro-batch size, accumulation and checkpointing on `config.train` (what config.yaml records)."""
    choice = run_plan.choice
    if choice is None or not choice.changed:
        return
    config.train.batch_size = choice.batch_size
    config.train.grad_accum = choice.grad_accum
    config.train.gradient_checkpointing = choice.gradient_checkpointing
