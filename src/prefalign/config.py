"""The run configuration: one typed schema, every field described once.

YAML files, `key=value` overrides, Python dicts and the docs all go through `RunConfig`.
Errors name the dotted key and suggest the closest valid one.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from prefalign.losses import LOSSES, LossSpec
from prefalign.names import LAYOUT_NAMES, TEMPLATE_NAMES, ConfigError
from prefalign.sizes import parse_size


@dataclass(frozen=True)
class Recipe:
    """The recommended recipe: what `prefalign train` does with only model.path and data.train given.

    Chosen by the behaviour benchmark's sweep (benchmarks/behaviour/README.md, "Choosing the defaults" and
    "Retention results"): the setting that moved held-out behaviour on every task by at least 50 points, with no
    side effect, at the smallest cost to the model's likelihood of text it never trained on. Plain DPO at the
    same learning rate learns the pairs and changes no held-out answer; the NLL term on chosen is what carries
    the behaviour. The LoRA rate was 5e-4 until 2026-12-04: 3e-4 moved behaviour as far as the bar on both tasks
    at +7.0% peer NLL, against +11.2% at 5e-4; beta 0.3 (from 0.1, also 2026-12-04) moved it as far at +5.6%,
    the same on two seeds. The recipe's beta and rpo_alpha apply when method.loss is not given: a loss named
    explicitly trains as named, on beta's own default (0.1, as TRL).
    """

    rpo_alpha: float = 1.0  # method.rpo_alpha when method.loss is not given
    beta: float = 0.3  # method.beta when method.loss is not given
    lora_lr: float = 3e-4  # train.lr with LoRA
    full_lr: float = 1e-5  # train.lr for full fine-tuning
    epochs: float = 2.0  # train.epochs


RECIPE = Recipe()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __eq__(self, other: object) -> bool:
        # The values only: private bookkeeping (where the loss or the whole config came from) is not the config.
        return type(self) is type(other) and self.model_dump() == other.model_dump()  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]  # mutable, as pydantic models are


class LoraConfig(_Section):
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | str = Field(
        "all-linear",
        description="Module names to adapt, or 'all-linear' (every linear layer but the LM head).",
    )


class QuantizationOptions(_Section):
    double_quant: bool = Field(
        True, description="nf4/fp4: quantise the quantisation constants too (QLoRA's double quantisation)."
    )
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="dtype the 4-bit weights are dequantised to for each matrix product; auto: bfloat16 on a "
        "CUDA GPU that has it, float32 elsewhere (a CPU without native bf16 multiplies it hundreds of times slower).",
    )
    skip_modules: list[str] | None = Field(
        None,
        description="Modules kept unquantised; null: transformers' choice (the LM head), plus `score` for reward "
        "models (their new head is trained whole).",
    )


class ModelConfig(_Section):
    path: str = Field(
        "builtin:smollm2-135m-instruct",
        description="HF directory, hub id, .gguf file, or builtin:smollm2-135m-instruct.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "float32", description="Weight dtype to load the model in."
    )
    lora: LoraConfig | None = Field(
        default_factory=LoraConfig, description="LoRA adapter settings; null trains every weight."
    )
    adapter: str | None = Field(
        None, description="A saved PEFT adapter (e.g. from SFT) to start from; it is also the reference."
    )
    quantization: Literal["nf4", "fp4", "int8"] | None = Field(
        None,
        description="Load the base model quantised by bitsandbytes (QLoRA with nf4): only the LoRA adapter trains, "
        "the reference is the same quantised base with the adapter off (or its precomputed log-probs); "
        "model.dtype then defaults to bfloat16, the dtype merged/ is written in.",
    )
    quantization_options: QuantizationOptions = Field(
        default_factory=QuantizationOptions, description="Settings of model.quantization."
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of model.path.")
    trust_remote_code: bool = Field(False, description="Allow model code from the hub to run.")
    attention: str | None = Field(
        None,
        description="transformers' attn_implementation: sdpa, eager, flash_attention_2, flash_attention_3, "
        "flex_attention, or a hub kernel; null takes transformers' default (sdpa where the model has it). "
        "With sdpa prefalign runs the masked layouts' attention block by block (no masked score computed); "
        "flex_attention gets them as block masks (GPU only: no backward on CPU); eager as a dense mask; "
        "data.layout auto falls back to padded on the others.",
    )

    @model_validator(mode="before")
    @classmethod
    def _quantized_dtype(cls, data: Any) -> Any:
        """A quantised base is merged into a 16-bit model (Unsloth's merged_16bit): bfloat16 unless said."""
        if isinstance(data, dict) and data.get("quantization") and data.get("dtype") is None:
            return {**data, "dtype": "bfloat16"}
        return data

    @model_validator(mode="after")
    def _quantization_consistent(self) -> ModelConfig:
        if self.quantization is None:
            if self.quantization_options != QuantizationOptions():  # a dumped config lists the defaults: fine
                raise ValueError("quantization_options: set model.quantization (nf4, fp4 or int8) for them to apply")
            return self
        if self.lora is None:
            raise ValueError(
                f"lora: a quantised base (model.quantization: {self.quantization}) cannot be trained whole: its "
                "quantised weights take no gradient; give model.lora (QLoRA trains the adapter), or set "
                "model.quantization: null for full fine-tuning"
            )
        if self.dtype == "auto":
            raise ValueError(
                "dtype: 'auto' with model.quantization: name the dtype merged/ is written in (bfloat16, the default, "
                "float16 or float32)"
            )
        return self


class ReferenceConfig(_Section):
    mode: Literal["auto", "model", "adapter", "precomputed", "none"] = Field(
        "auto",
        description="precomputed: score the data with the reference once before training and cache the log-probs "
        "in $PREFALIGN_CACHE (a later run with another beta or loss reuses them); adapter: the policy with its "
        "adapter disabled (LoRA); model: a frozen copy, or reference.path. auto: none if the loss needs none; "
        "precomputed when training covers the data at least once and the loss has no per-batch KL term (kto); "
        "else adapter under LoRA, model otherwise.",
    )
    path: str | None = Field(
        None, description="Another checkpoint to use as the reference (mode: model or precomputed)."
    )


class DataSource(_Section):
    path: str = Field(description="Local json/jsonl/csv/parquet file or directory, or a hub dataset name.")
    format: str = Field("auto", description="Row format; 'auto' detects it from the columns.")
    split: str = Field("train", description="Split to read from a hub dataset or directory.")
    name: str | None = Field(None, description="Hub dataset configuration name.")
    fraction: float = Field(
        1.0, gt=0, le=1, description="Share of this source's rows to keep: a random subset seeded by train.seed."
    )
    max_rows: int | None = Field(None, gt=0, description="Keep at most this many rows (the first, after fraction).")
    # Mapping options: where a format's reader finds its columns and roles (formats.Format.options says
    # which reader reads which); an option the source's format does not read is an error.
    columns: dict[str, str] | None = Field(
        None,
        description="alpaca, sharegpt, sharegpt_kto: LLaMA-Factory's dataset_info.json `columns` (its name -> "
        "the file's column), e.g. {messages: conversations, chosen: chosen, system: system, tools: tools}; "
        "the trl_* formats: their column -> the file's, e.g. {prompt: question, chosen: better, rejected: worse}.",
    )
    tags: dict[str, str] | None = Field(
        None,
        description="sharegpt, sharegpt_kto: LLaMA-Factory's `tags` (role_tag, content_tag, user_tag, "
        "assistant_tag, observation_tag, function_tag, system_tag), e.g. {role_tag: role, content_tag: content}.",
    )
    field_messages: str | None = Field(
        None, description="axolotl_chat_template: the column holding the conversation (default messages)."
    )
    field_chosen: str | None = Field(
        None, description="axolotl_chat_template: the column holding the chosen answer (default chosen)."
    )
    field_rejected: str | None = Field(
        None, description="axolotl_chat_template: the column holding the rejected answer (default rejected)."
    )
    message_property_mappings: dict[str, str] | None = Field(
        None,
        description="axolotl_chat_template: the keys of a message's role and content, e.g. {role: from, "
        "content: value}.",
    )
    roles: dict[str, list[str]] | None = Field(
        None,
        description="axolotl_chat_template: each chat role and the names it has in the file, e.g. "
        "{user: [human, user], assistant: [gpt, assistant]}; added to the defaults (each role's own name).",
    )


Sources = list[DataSource]


class DataConfig(_Section):
    train: Sources = Field(description="Training data: a path, a source object, or a list of them.")
    eval: Sources | None = Field(None, description="Held-out data; if absent, eval_fraction of train is held out.")
    eval_fraction: float = Field(
        0.0, ge=0, lt=1, description="Fraction of train held out for evaluation when data.eval is absent."
    )
    format: str = Field("auto", description="Default row format for sources that do not name one.")
    template: str | None = Field(
        None,
        description="Chat template: null uses the tokenizer's for message lists and none for plain strings; "
        "'tokenizer' forces the tokenizer's template on plain strings too; 'none' joins text as it is; "
        "or a built-in one, for every row: chatml, llama3, mistral, gemma, qwen (Qwen2.5), zephyr.",
    )
    max_length: int = Field(1024, gt=0, description="Longest prompt + completion, in tokens.")
    max_prompt_length: int | None = Field(512, gt=0, description="Longest prompt; longer ones keep their end.")
    max_completion_length: int | None = Field(
        None, gt=0, description="Longest completion; longer ones keep their start."
    )
    skip_bad_rows: bool = Field(
        False,
        description="Count and skip unusable rows (and unreadable lines, and repeats of an earlier row) instead of "
        "stopping; data.json lists them, result.json counts them.",
    )
    split_pairs: bool = Field(
        False,
        description="Split each pair into two unpaired rows (chosen: desirable, rejected: undesirable), "
        "to train an unpaired loss such as kto on paired data.",
    )
    num_proc: int | None = Field(None, gt=0, description="Processes for tokenisation (datasets.map).")
    layout: str = Field(
        "auto",
        description="How a batch's sequences are laid out in rows (the log-probs are the same in every layout): "
        "padded (a row per sequence), packed (sequences packed into rows under a block-diagonal mask), "
        "prefix_shared (a pair's prompt once, then both answers), prefix_shared_packed (those packed); "
        "auto: prefix_shared_packed where the model's attention applies a layout (sdpa, flex_attention, eager: "
        "each prompt once, no padding), else padded (flash-attention, sliding-window layers).",
    )
    pack_length: int | None = Field(
        None,
        gt=0,
        description="Tokens per row of the packed layouts; null: the whole batch in one row where the attention "
        "computes no masked score (sdpa: prefalign's segment attention; flex_attention), else the batch's longest "
        "sequence (or prompt-sharing group). A longer one gets a row of its own.",
    )

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        if value not in LAYOUT_NAMES:
            raise ValueError(
                f"unknown layout {value!r}{_suggest(value, LAYOUT_NAMES)}; known: {', '.join(LAYOUT_NAMES)}"
            )
        return value

    @field_validator("train", "eval", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        return [{"path": item} if isinstance(item, str) else item for item in items]

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in TEMPLATE_NAMES:
            raise ValueError(
                f"unknown template {value!r}{_suggest(value, TEMPLATE_NAMES)}; known: {', '.join(TEMPLATE_NAMES)}"
            )
        return value


# Method fields that are not loss hyper-parameters: always allowed.
_METHOD_STRUCTURE = {"kind", "loss", "loss_weights"}
# Hyper-parameters the objective itself reads (not a loss function), and which loss inputs they act on.
# rpo_alpha adds the sft term; ld_alpha reweights per-token log-probs; use_weighting weights pairs (WPO);
# f_divergence_type (and its coefficient) transforms the log-ratios that losses read as chosen/rejected_scores.
_OBJECTIVE_OPTIONS = {"rpo_alpha", "ld_alpha", "use_weighting", "f_divergence_type", "f_alpha_divergence_coef"}


class MethodConfig(_Section):
    _loss_from_default: bool = PrivateAttr(False)
    _beta_from_recipe: bool = PrivateAttr(False)
    _loss_note: str | None = PrivateAttr(None)

    kind: Literal["policy", "reward"] = Field(
        "policy", description="policy: align the language model; reward: train a Bradley–Terry reward model."
    )
    loss: str | list[str] = Field(
        None,  # filled in from `kind` before validation
        description="Loss name from the registry (`prefalign methods`), or a list of terms to add; "
        "default sigmoid (kind: policy) or bradley_terry (kind: reward).",
    )
    loss_weights: list[float] | None = Field(
        None,
        description="Weight of each term when `loss` is a list (default 1 each); e.g. MPO: [sigmoid, bco_pair, sft].",
    )
    beta: float = Field(
        0.1,
        gt=0,
        description="Inverse temperature of the implicit reward (KL strength towards the reference). "
        f"When method.loss is not given it is {RECIPE.beta} (the recommended recipe), else 0.1.",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="Probability that a preference label is flipped (cDPO; robust, exo_pair, aot, simpo, cpo).",
    )
    rpo_alpha: float | None = Field(
        None,
        gt=0,
        description="RPO: add the sft term (NLL on chosen) with this weight; same as loss: [..., sft]. "
        f"When method.loss is not given it is {RECIPE.rpo_alpha} (the recommended recipe); null turns it off.",
    )
    ld_alpha: float | None = Field(
        None,
        ge=0,
        le=1,
        description="LD-DPO: weight of answer tokens past the shorter answer's length (1 = plain sums).",
    )
    use_weighting: bool = Field(False, description="WPO: weight each pair by how likely the policy finds both answers.")
    f_divergence_type: Literal["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"] = Field(
        "reverse_kl", description="f-divergence regulariser (f-DPO); reverse_kl is plain DPO."
    )
    f_alpha_divergence_coef: float = Field(0.5, description="alpha of the alpha_divergence regulariser.")
    discopop_tau: float = Field(0.05, gt=0, description="Temperature of DiscoPOP's mixing of its two losses.")
    gamma: float = Field(0.5, ge=0, description="SimPO's target reward margin (TRL: simpo_gamma).")
    cpo_alpha: float = Field(1.0, ge=0, description="Weight of CPO's NLL term on the chosen answer.")
    orpo_lambda: float = Field(
        0.1,
        gt=0,
        validation_alias=AliasChoices("orpo_lambda", "lambda"),
        description="ORPO's weight of the odds-ratio term (the paper's lambda; TRL's ORPO beta). Also `lambda`.",
    )
    desirable_weight: float = Field(1.0, gt=0, description="KTO: weight of the losses on desirable answers.")
    undesirable_weight: float = Field(1.0, gt=0, description="KTO: weight of the losses on undesirable answers.")
    lm_coef: float = Field(0.0, ge=0, description="Reward model: weight of the NLL term on the chosen answer.")
    center_rewards_coefficient: float | None = Field(
        None, gt=0, description="Reward model: penalty on the squared reward, keeping rewards centred at zero."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_loss(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("loss") is None:
            if data.get("kind") == "reward":
                return {**data, "loss": "bradley_terry"}
            # The recommended recipe: DPO plus an NLL term on the chosen answers, unless rpo_alpha is given
            # (null: plain DPO), at the recipe's beta unless beta is given. A loss named explicitly is trained as
            # named, on the fields' own defaults.
            return {"rpo_alpha": RECIPE.rpo_alpha, "beta": RECIPE.beta, **data, "loss": "sigmoid"}
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _remember_default(cls, data: Any, handler: Any) -> Any:
        # Whether the loss was left to the default (and so may follow the data: RunConfig.for_data). Only ever set,
        # never cleared: assigning another field (validate_assignment) runs this again with every value given.
        defaulted = isinstance(data, dict) and data.get("loss") is None
        method = handler(data)
        if defaulted:
            method._loss_from_default = True
            method._beta_from_recipe = data.get("beta") is None
        return method

    @property
    def loss_from_default(self) -> bool:
        """True when no loss was named and the recipe's default was filled in."""
        return self._loss_from_default

    @property
    def loss_note(self) -> str | None:
        """Why the loss is what it is, when it was chosen for the data rather than named."""
        return self._loss_note

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str | list[str]) -> str | list[str]:
        names = [value] if isinstance(value, str) else value
        if not names:
            raise ValueError("give at least one loss")
        for name in names:
            if name not in LOSSES:
                raise ValueError(f"unknown loss {name!r}{_suggest(name, LOSSES)}; known: {', '.join(LOSSES)}")
        if all(LOSSES[name].family == "term" for name in names):
            raise ValueError(f"{', '.join(names)} is a term to add to a preference loss, not a loss on its own")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MethodConfig:
        names = self.names
        specs = [LOSSES[name] for name in names]
        # Set to something other than its default: a dumped resolved config sets every field, harmlessly.
        given = {
            key
            for key in self.model_fields_set - _METHOD_STRUCTURE
            if getattr(self, key) != type(self).model_fields[key].default
        }
        if self.kind == "reward" and any(spec.family != "reward" for spec in specs):
            raise ValueError(f"kind: reward trains a reward model with bradley_terry, not {' + '.join(names)}")
        if self.kind == "policy" and any(spec.family == "reward" for spec in specs):
            raise ValueError("loss: bradley_terry trains a reward model; set kind: reward")
        if len({spec.paired for spec in specs}) > 1:
            raise ValueError(f"loss: {' + '.join(names)} mixes paired and unpaired losses")
        if self.loss_weights is not None and len(self.loss_weights) != len(names):
            raise ValueError(f"loss_weights: {len(self.loss_weights)} weights for {len(names)} loss terms")
        if self.rpo_alpha is not None and "sft" in names:
            raise ValueError("rpo_alpha adds the sft term, and loss already has it: give one or the other")
        if self.rpo_alpha is not None and not all(spec.paired for spec in specs):
            raise ValueError("rpo_alpha: RPO's NLL term needs paired data")
        read = {hp for spec in self._specs_with_terms() for hp in spec.hyperparams}
        for key in sorted(given):
            if key in _OBJECTIVE_OPTIONS:
                continue
            if key not in read:
                users = sorted(spec.name for spec in LOSSES.values() if key in spec.hyperparams)
                hint = f"; it is used by {', '.join(users)}" if users else ""
                raise ValueError(f"{key}: loss {' + '.join(names)} does not use it{hint}")
        # f-DPO's reparameterisation leaves a β·log Z(x) that cancels only in a chosen − rejected difference:
        # every preference term must read the transformed log-ratios (`chosen_scores`), as TRL 1.16 also requires.
        untransformed = [spec.name for spec in specs if spec.family != "term" and "chosen_scores" not in spec.inputs]
        if self.f_divergence_type != "reverse_kl" and untransformed:
            users = sorted(spec.name for spec in LOSSES.values() if "chosen_scores" in spec.inputs)
            raise ValueError(
                f"f_divergence_type: loss {' + '.join(untransformed)} does not read the log-ratios it "
                f"transforms; it applies to {', '.join(users)}"
            )
        for spec in specs:
            problem = spec.check(self.hyperparams()) if spec.check else None
            if problem:
                raise ValueError(problem)
        if "f_alpha_divergence_coef" in given and self.f_divergence_type != "alpha_divergence":
            raise ValueError("f_alpha_divergence_coef: only used with f_divergence_type: alpha_divergence")
        if (self.ld_alpha is not None or self.use_weighting) and not all(spec.paired for spec in specs):
            key = "ld_alpha" if self.ld_alpha is not None else "use_weighting"
            raise ValueError(f"{key}: applies to paired losses only")
        if self.kind == "reward" and (self.ld_alpha is not None or self.use_weighting or self.rpo_alpha):
            raise ValueError("ld_alpha, use_weighting and rpo_alpha apply to policy losses, not kind: reward")
        if self.use_weighting and not all(spec.per_pair for spec in specs):
            sorted_losses = ", ".join(spec.name for spec in specs if not spec.per_pair)
            raise ValueError(f"use_weighting: WPO weights are per pair, and {sorted_losses} compares sorted batches")
        return self

    def _specs_with_terms(self) -> list[LossSpec]:
        return [spec for spec, _ in self.terms()]

    @property
    def names(self) -> list[str]:
        return [self.loss] if isinstance(self.loss, str) else list(self.loss)

    def terms(self) -> list[tuple[LossSpec, float]]:
        """(spec, weight) of every loss term, the RPO term included."""
        weights = self.loss_weights or [1.0] * len(self.names)
        terms = [(LOSSES[name], weight) for name, weight in zip(self.names, weights, strict=True)]
        if self.rpo_alpha is not None:
            terms.append((LOSSES["sft"], self.rpo_alpha))
        return terms

    def hyperparams(self) -> dict[str, Any]:
        """Every hyper-parameter value, by the name the loss functions declare."""
        return self.model_dump(exclude=_METHOD_STRUCTURE)

    @property
    def needs_reference(self) -> bool:
        return any(spec.needs_reference for spec, _ in self.terms())

    @property
    def paired(self) -> bool:
        return all(spec.paired for spec, _ in self.terms())


class TrainConfig(_Section):
    epochs: float = Field(RECIPE.epochs, gt=0, description="Passes over the training data (may be fractional).")
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps; overrides epochs when set.")
    batch_size: int = Field(
        8, gt=0, description="Examples per micro-batch (per process): preference pairs, or unpaired rows."
    )
    grad_accum: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    lr: float | None = Field(
        None,
        gt=0,
        description=f"Peak learning rate; default {RECIPE.lora_lr:g} with LoRA, {RECIPE.full_lr:g} for full "
        "fine-tuning (model.lora: null).",
    )
    schedule: Literal["constant", "linear", "cosine"] = Field("cosine", description="LR decay after warm-up.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of steps spent warming the LR up.")
    warmup_steps: int | None = Field(
        None, ge=0, description="Steps spent warming the LR up; overrides warmup_ratio when set."
    )
    optimizer: str = Field(
        "adamw",
        description="adamw (torch; fused on CUDA), adamw_8bit, paged_adamw_8bit, paged_adamw_32bit (CUDA only), "
        "lion_8bit (bitsandbytes), adafactor, sgd; transformers' optim names (adamw_torch, adamw_bnb_8bit, ...) "
        "are read as the same optimizer.",
    )
    weight_decay: float = Field(0.0, ge=0, description="Weight decay (decoupled, for the AdamW family).")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip gradients to this norm; null = no clip.")
    seed: int = Field(42, description="Seed for data order, dropout and initialisation.")
    eval_every: int | None = Field(None, gt=0, description="Evaluate every N steps (and always at the end).")
    save_every: int | None = Field(None, gt=0, description="Write a resumable checkpoint every N steps.")
    keep_checkpoints: int = Field(2, gt=0, description="How many of the newest checkpoints to keep.")
    log_every: int = Field(1, gt=0, description="Log train metrics every N steps.")
    eval_batch_size: int | None = Field(None, gt=0, description="Examples per eval batch (default batch_size).")
    mixed_precision: Literal["no", "bf16", "fp16", "auto"] = Field(
        "no",
        description="Autocast precision. auto: bf16 on a GPU that has it (else fp16) and on a CPU with native bf16, "
        "float32 on CPUs without it (there bf16 matrix products run hundreds of times slower); the run's "
        "config.yaml records what auto chose.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute each decoder layer's activations in backward instead of storing them: less "
        "memory, about a third more compute; the same losses and gradients.",
    )
    fused_mlp: bool = Field(
        True,
        description="Gated MLPs (Llama, Mistral, Qwen2/3, Gemma) keep gate and up for backward and recompute "
        "the activation there: one intermediate-wide tensor per token and layer less (about a sixth of the "
        "activation memory), bit-identical gradients. false: transformers' own forward.",
    )
    memory: Literal["auto", "off"] = Field(
        "auto",
        description="auto: before loading the model, estimate the run's peak memory (`prefalign plan` prints the "
        "plan) and, when it would not fit train.memory_budget, split each step into smaller micro-batches "
        "(the same gradient), then turn on gradient checkpointing; refuse to start, naming the fixes, when "
        "nothing fits. On a CPU a run that fits is also split when activations are the largest part of its plan, "
        "into micro-batches of at least 1024 positions (a CPU is no faster per position on larger ones). "
        "off: run the settings as given (the plan is still printed, and a run that will not fit is warned about).",
    )
    memory_budget: str | int | None = Field(
        None,
        description="Memory the run may use per process: 16GiB, 16 GB (10⁹ bytes), 16000MiB or bytes; null: the "
        "device's free memory (GPU) or the available RAM (CPU).",
    )
    compile: bool = Field(
        False,
        description="torch.compile the model's backbone (the decoder layers); the first steps and every new "
        "batch shape pay a compile, later steps run faster. The masked layouts then reach the model as a dense "
        "mask (the segment attention's blocks change with every batch). Needs a C++ compiler on CPU.",
    )
    activation_offload: bool = Field(
        False,
        description="On a GPU, move the activations the backbone keeps for backward to pinned CPU memory in "
        "forward and back in backward: with gradient checkpointing the device keeps about one decoder layer's "
        "activations at any sequence length. The same gradients; slower by the copies. No effect on a CPU "
        "(the start-up line says so). Not with train.compile.",
    )
    resume: bool = Field(False, description="Continue from the newest checkpoint in the run directory.")
    fsdp: bool = Field(
        False,
        description="On several processes, shard parameters, gradients and optimizer state per decoder layer with "
        "FSDP2 (torch's fully_shard), where accelerate does not (on CPU; on GPUs use accelerate's FSDP config, "
        "examples/accelerate/fsdp2.yaml). The same losses as one process; checkpoints hold each process's shards.",
    )
    on_nonfinite: Literal["stop", "skip_step"] = Field(
        "stop",
        description="When a step's loss or gradient norm is NaN or infinite: stop, naming the step, the metric and "
        "the last checkpoint; or skip_step: drop that step's update (the data moves on) and count it.",
    )

    @model_validator(mode="after")
    def _offload_not_compiled(self) -> TrainConfig:
        if self.activation_offload and self.compile:
            raise ValueError("train.activation_offload: its hooks run around the backbone's forward, which "
                             "train.compile replaces with a compiled graph; turn one of them off")  # fmt: skip
        return self

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str, info: ValidationInfo) -> str:
        # Imported here, as the loss registry is: the optimizer table lives beside the factory that reads it.
        from prefalign.optimizers import canonical_name, unavailable_reason

        name = canonical_name(value)
        # Whether this machine can run it (CUDA for paged ones, bitsandbytes installed): checked before any model
        # loads; a command that only reads a finished run's config (merge) passes context {"machine": False}.
        if (info.context or {}).get("machine", True) and (reason := unavailable_reason(name)):
            raise ValueError(reason)
        return name

    @field_validator("memory_budget")
    @classmethod
    def _budget_is_a_size(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            parse_size(value)  # a ValueError naming the forms it takes
        return value


class EvalConfig(_Section):
    generations: int = Field(2, ge=0, description="Held-out prompts answered before and after training.")
    max_new_tokens: int = Field(96, gt=0, description="Tokens generated per held-out prompt (greedy).")
    before: bool = Field(True, description="Also evaluate the untrained model, for the summary.")


class OutputConfig(_Section):
    dir: str = Field("runs/prefalign", description="The run directory; nothing is written outside it.")
    save: list[Literal["adapter", "merged"]] = Field(
        default_factory=lambda: ["adapter", "merged"],
        description="What to write at the end: adapter (LoRA runs), merged (full model + tokenizer); "
        "default both with LoRA, merged for full fine-tuning.",
    )
    overwrite: bool = Field(False, description="Allow reusing a non-empty run directory.")
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] = Field(
        default_factory=list,
        description="Experiment trackers that get every metrics.jsonl record (as split/metric) and the resolved "
        "config; each needs its extra: pip install 'prefalign[tensorboard]'.",
    )
    run_name: str | None = Field(None, description="The run's name in the trackers; default: output.dir's name.")

    gguf: list[str] = Field(
        default_factory=list,
        description="GGUF files to write from the merged model at the end, for llama.cpp, Ollama and LM Studio: "
        "RUN_DIR/gguf/NAME-QUANT.gguf for each of f32, f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m (the K-quants need "
        "the gguf extra: pip install 'prefalign[gguf]'). Llama, Mistral, Qwen2/3 and Gemma 2/3 models.",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_none(cls, value: Any) -> Any:
        """`report_to: wandb` and `report_to: none`, as TRL and the Trainer spell them, too."""
        if value is None or value == "none":
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("gguf", mode="before")
    @classmethod
    def _gguf_types(cls, value: Any) -> Any:
        if value is None:
            return []
        names = [value] if isinstance(value, str) else value
        from prefalign.gguf_types import check_gguf_types  # light: no model code

        return check_gguf_types(list(names))


class RunConfig(_Section):
    # What `load_config` translated from another tool's config (prefalign.dialects.ImportTable), for the run's
    # config-import.md; not part of the config itself, so not in config.yaml.
    _import_table: Any = PrivateAttr(None)

    model: ModelConfig = Field(default_factory=ModelConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    data: DataConfig
    method: MethodConfig = Field(default_factory=MethodConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="before")
    @classmethod
    def _defaults_by_what_is_trained(cls, data: Any) -> Any:
        """train.lr and output.save depend on whether an adapter or every weight is trained."""
        if not isinstance(data, dict):
            return data
        model = data.get("model") or {}
        lora = (model.get("lora", True) if isinstance(model, dict) else model.lora) is not None
        train, output = data.get("train") or {}, data.get("output") or {}
        if isinstance(train, dict) and train.get("lr") is None:
            data = {**data, "train": {**train, "lr": RECIPE.lora_lr if lora else RECIPE.full_lr}}
        if isinstance(output, dict) and output.get("save") is None:
            data = {**data, "output": {**output, "save": ["adapter", "merged"] if lora else ["merged"]}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        loss = " + ".join(self.method.names)
        mode = self.reference.mode
        if self.method.kind == "reward" and (mode != "auto" or self.reference.path):
            raise ValueError("reference: a reward model is trained without a reference; remove the reference section")
        if self.method.kind == "reward" and self.model.adapter:
            raise ValueError(
                "model: a reward model starts from a full checkpoint, not model.adapter; merge the adapter into "
                "its base model first and set model.path to the merged directory"
            )
        if not self.method.needs_reference and (mode not in ("auto", "none") or self.reference.path):
            key = "reference.path" if self.reference.path else "reference.mode"
            raise ValueError(f"{key}: loss {loss!r} uses no reference; remove the reference")
        if self.method.needs_reference and mode == "none":
            raise ValueError(
                f"reference.mode: loss {loss!r} needs a reference; use auto, precomputed, model or adapter"
            )
        if self.model.quantization and mode == "model":
            raise ValueError(
                "reference.mode: 'model' would keep a second copy of the base beside the quantised one; under "
                "model.quantization use adapter (the quantised base with the adapter off) or precomputed"
            )
        if self.model.quantization and self.reference.path:
            raise ValueError(
                "reference.path: under model.quantization the reference is the quantised base with the adapter off "
                "(or its precomputed log-probs); remove reference.path, or set model.quantization: null"
            )
        if mode == "adapter" and self.model.lora is None:
            raise ValueError("reference.mode: 'adapter' needs model.lora (the adapter is what gets disabled)")
        if self.reference.path and mode == "adapter":
            raise ValueError("reference.path: a separate reference checkpoint needs reference.mode: model")
        if self.output.gguf and self.method.kind == "reward":
            raise ValueError("output.gguf: a reward model has a score head llama.cpp does not run; remove output.gguf")
        if self.output.gguf and "merged" not in self.output.save:
            raise ValueError("output.save: output.gguf is converted from the merged model; add merged to output.save")
        if "adapter" in self.output.save and self.model.lora is None:
            raise ValueError("output.save: 'adapter' needs model.lora; full fine-tuning saves 'merged'")
        if self.data.split_pairs and self.method.paired:
            raise ValueError(
                f"data.split_pairs: splits pairs into unpaired rows, and loss {loss!r} trains on pairs; "
                "remove it, or use an unpaired loss such as kto"
            )
        # KTO's KL estimate pairs each prompt with another example's completion from the same micro-batch.
        kl_losses = [spec.name for spec, _ in self.method.terms() if "policy_kl_logps" in spec.inputs]
        if kl_losses and mode == "precomputed":
            raise ValueError(
                f"reference.mode: precomputed stores one reference log-prob per example, and loss {kl_losses[0]!r} "
                "estimates its KL term from completions mismatched within each micro-batch, which change with "
                "the batch order; use adapter or model (auto picks one)"
            )
        for key in ("batch_size", "eval_batch_size"):
            size = getattr(self.train, key)
            if kl_losses and size is not None and size < 2:
                raise ValueError(
                    f"train.{key}: loss {kl_losses[0]!r} estimates its KL term from the other examples of a batch; "
                    "use at least 2"
                )
        return self

    @property
    def import_table(self) -> Any:
        """The table of what became of each key of the foreign config this was read from (None: prefalign's own)."""
        return self._import_table

    def for_data(self, kind: str | None) -> RunConfig:
        """This config with the loss the data calls for when none was named: unpaired rows (KTO data) train
        kto, since the recipe's loss (sigmoid + NLL on chosen) needs pairs. Any other case returns self."""
        method = self.method
        if kind != "unpaired" or method.kind != "policy" or not method.loss_from_default or self.data.split_pairs:
            return self
        raw = self.model_dump(mode="json")
        raw["method"] = {**raw["method"], "loss": "kto", "rpo_alpha": None, "loss_weights": None}
        if method._beta_from_recipe and method.beta == RECIPE.beta:  # measured on the recipe's loss, not on kto's
            raw["method"]["beta"] = MethodConfig.model_fields["beta"].default
        result = RunConfig.model_validate(raw)
        result._import_table = self._import_table
        result.method._loss_note = "kto: no loss named, and the data is unpaired (prompt, completion, label)"
        return result

    def resolved_reference_mode(self, num_train: int | None = None, world: int = 1) -> str:
        """The reference strategy `auto` stands for with this loss, model and run length.

        A live reference (adapter or model) scores every example the run reaches, once per pass; precomputed
        scores each example of the data once (train and held-out), and not at all when the cache already holds
        it. So auto precomputes when the run covers the training data at least once — `epochs` ≥ 1, or
        `max_steps` × the global batch ≥ `num_train` training examples (unknown without `num_train`: then live) —
        which also frees a separate reference model (full fine-tuning, reference.path) before training. A
        shorter run keeps the live reference, which scores only what it reaches; so do losses with a KL term
        estimated per micro-batch (kto), which cannot be precomputed.
        """
        if self.reference.mode != "auto":
            return self.reference.mode
        if not self.method.needs_reference:
            return "none"
        live = "model" if self.reference.path or self.model.lora is None else "adapter"
        if any("policy_kl_logps" in spec.inputs for spec, _ in self.method.terms()):
            return live
        train = self.train
        if train.max_steps is None:
            covers_data = train.epochs >= 1
        else:
            scored = train.max_steps * train.batch_size * train.grad_accum * world
            covers_data = num_train is not None and scored >= num_train
        return "precomputed" if covers_data else live

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# Names users bring from TRL / transformers.TrainingArguments, and ours for the same thing.
_FAMILIAR_NAMES = {
    "learning_rate": "lr",
    "lr_scheduler_type": "schedule",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "warmup_steps": "warmup_ratio",
    "output_dir": "dir",
    "loss_type": "loss",
    "model_name_or_path": "path",
    "lora_r": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "eval_steps": "eval_every",
    "save_steps": "save_every",
    "logging_steps": "log_every",
    "ref_model": "reference",
}


def _suggest(word: str, choices: Any) -> str:
    choices = list(choices)
    familiar = _FAMILIAR_NAMES.get(str(word))
    match = [familiar] if familiar in choices else difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _fields_at(loc: tuple) -> list[str]:
    """Field names of the section that `loc` (a pydantic error location) points into."""
    model: Any = RunConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        for inner in list(candidates):
            candidates.extend(getattr(inner, "__args__", ()))
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _format_errors(error: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key{_suggest(loc[-1], _fields_at(loc))}")
        elif item["type"] == "missing":
            lines.append(f"  {key}: required")
        else:
            message = item["msg"].removeprefix("Value error, ")
            field, sep, rest = message.partition(": ")
            path = (*loc, *field.split("."))  # a top-level check names its key dotted: reference.mode
            if sep and path[-1] in _fields_at(path):
                # A section-level check about one of its keys: name that key, as a field error would.
                lines.append(f"  {'.'.join(str(p) for p in path)}: {rest}")
            else:
                lines.append(f"  {key}: {message} (got {item.get('input')!r})")
    return "\n".join(lines)


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans: only true/false.

    YAML 1.1 also reads yes/no/on/off as booleans, so `mixed_precision: no` (accelerate's own spelling) would
    reach the schema as False. Left as strings, they still fill boolean fields: pydantic reads "yes"/"no"/"on"/
    "off" as booleans, and enum fields get the word that was written.
    """


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str) -> Any:
    """A config's YAML (a file or an override's value), with YAML 1.2's booleans (`_YamlLoader`)."""
    return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader: no Python objects are built


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.lr=1e-5` -> (['train', 'lr'], 1e-05); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected dotted.key=value")
    # YAML 1.1 reads `1e-5` as a string; pydantic's lax mode turns it into the float field it is.
    value = read_yaml(raw) if raw.strip() else None
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = raw
        for part in keys[:-1]:
            if isinstance(node, list):  # data.train.0.path: an item of a list of sources
                node = node[_index(part, len(node), text)]
                continue
            child = node.get(part)
            if not isinstance(child, dict | list):
                child = {}
                node[part] = child
            node = child
        if isinstance(node, list):
            node[_index(keys[-1], len(node), text)] = value
        else:
            node[keys[-1]] = value
    return raw


def _index(part: str, length: int, text: str) -> int:
    if not part.isdigit() or int(part) >= length:
        raise ConfigError(f"override {text!r}: {part!r} is not an index of the list there (it has {length} items)")
    return int(part)


def load_config(
    config: RunConfig | dict | str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    dialect: str | None = None,
    lenient: bool = False,
    machine: bool = True,
) -> RunConfig:
    """Build a RunConfig from a config object, a dict or a YAML path, then apply `key=value` overrides.

    A dict or file written for Axolotl, LLaMA-Factory, TRL or AutoTrain (recognised from its keys, or named by
    `dialect`) is translated first (prefalign.dialects); `lenient` trains without the keys prefalign cannot
    honour instead of refusing them. The translation's table is `RunConfig.import_table`. `machine=False` skips
    the checks of what this machine can run (a paged optimizer needs CUDA): for commands that read a finished
    run's config without training it.
    """
    lines: dict[str, int] = {}
    if isinstance(config, RunConfig):
        if not overrides:
            return config
        raw, source = config.model_dump(mode="json"), "config object"
        table = config.import_table
    else:
        if isinstance(config, dict):
            raw, source = dict(config), "dict"
        else:
            path = Path(config)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            text = path.read_text()
            try:
                raw = read_yaml(text) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}: expected a mapping of sections at the top level")
            source = str(path)
            from prefalign.dialects import key_lines  # here: the dialects import this module

            lines = key_lines(text)
        from prefalign.dialects import import_config

        raw, table, overrides = import_config(
            raw, source=source, dialect=dialect, lenient=lenient, overrides=list(overrides), lines=lines
        )
    raw = apply_overrides(raw, list(overrides))
    try:
        result = RunConfig.model_validate(raw, context={"machine": machine})
    except ValidationError as exc:
        message = _format_errors(exc, source)
        if table is not None:
            message = message.replace(
                f"invalid config ({source}):", f"invalid config ({source}, read as {table.dialect}):"
            )
            if "data.train: required" in message:
                message += "\n  (the config names no dataset prefalign can read: add data.train=PATH)"
        raise ConfigError(message) from None
    result._import_table = table
    return result
