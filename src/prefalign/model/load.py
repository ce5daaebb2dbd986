"""Load the tokenizer and the policy (base model, LoRA adapter or a saved adapter to continue)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prefalign.config import ModelConfig
from prefalign.model.builtin import builtin_gguf, converted_dir, converted_gguf, hub_id
from prefalign.model.fused import fuse_gated_mlps
from prefalign.model.offload import offload_activations
from prefalign.model.unwrap import unwrap

log = logging.getLogger(__name__)

REFERENCE_ADAPTER = "reference"


def resolve_path(path: str) -> str:
    """A directory or hub id that `from_pretrained` reads: builtins and .gguf files become cached dirs."""
    if path.startswith("builtin:"):
        return str(converted_gguf(builtin_gguf(path.removeprefix("builtin:"))))
    if path.endswith(".gguf"):
        gguf = Path(path)
        if not gguf.is_file():
            raise ValueError(f"model.path: file not found: {path}")
        return str(converted_gguf(gguf))
    return path  # a local directory or a hub id: the ordinary from_pretrained path


def base_model_name(path: str) -> str:
    """What the model card names as base model: the hub id when one is known."""
    if path.startswith("builtin:"):
        return hub_id(path.removeprefix("builtin:")) or path
    return path


def _dtype(name: str) -> Any:
    return "auto" if name == "auto" else getattr(torch, name)


def _tokenizer_source(path: str) -> tuple[str, dict[str, str]]:
    """Where to read the tokenizer of a model path without converting its weights: (from_pretrained path, kwargs).

    A GGUF (or builtin) not converted yet is read for its tokenizer alone (slower than a converted directory,
    but it loads and writes no weights); everything else is what `resolve_path` gives.
    """
    if path.startswith("builtin:"):
        gguf = builtin_gguf(path.removeprefix("builtin:"))
    elif path.endswith(".gguf") and Path(path).is_file():
        gguf = Path(path)
    else:
        return resolve_path(path), {}
    converted = converted_dir(gguf)
    if (converted / "config.json").is_file():
        return str(converted), {}
    return str(gguf.parent), {"gguf_file": gguf.name}


def _attention(config: ModelConfig) -> dict[str, str]:
    """from_pretrained's attn_implementation when model.attention names one (else transformers picks)."""
    return {"attn_implementation": config.attention} if config.attention else {}


def hub_kernels() -> dict[str, bool]:
    """from_pretrained's use_kernels: off unless USE_HUB_KERNELS asks for them.

    transformers 5 (with `kernels`, one of its dependencies) swaps layers for kernels fetched from the Hub at load
    time on a GPU, on by default: offline (HF_HUB_OFFLINE, an air-gapped cluster) that load fails ("Version 2 of
    'kernels-community/rotary' is not available in the local cache", seen on an H200 on 2026-12-04), and online
    it runs code downloaded at load time under prefalign's own layers (the fused MLP, the packed attention).
    `USE_HUB_KERNELS=1` turns them back on for those who want them.
    """
    from transformers.utils import ENV_VARS_TRUE_VALUES  # the values transformers reads as true

    return {"use_kernels": os.environ.get("USE_HUB_KERNELS", "").strip().upper() in ENV_VARS_TRUE_VALUES}


def _compute_dtype(name: str) -> torch.dtype:
    """quantization_options.compute_dtype; auto: bf16 on a CUDA GPU that has it, else float32 (see its description)."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def quantization_config(config: ModelConfig, *, reward: bool = False) -> Any:
    """transformers' BitsAndBytesConfig for model.quantization, or None when the base loads unquantised.

    A reward model's `score` head is new and trained whole (PEFT's modules_to_save), so it stays unquantised.
    """
    if config.quantization is None:
        return None
    from transformers import BitsAndBytesConfig

    options = config.quantization_options
    skip = options.skip_modules
    if skip is None and reward:
        skip = ["score"]  # transformers keeps the LM head unquantised on its own; a reward model has none
    if config.quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quantization,
        bnb_4bit_use_double_quant=options.double_quant,
        bnb_4bit_compute_dtype=_compute_dtype(options.compute_dtype),
        llm_int8_skip_modules=skip,  # the name transformers reads for 4-bit too
    )


def _quantized(config: ModelConfig, *, reward: bool = False) -> dict[str, Any]:
    """from_pretrained's arguments for a quantised base: bitsandbytes quantises while it places the weights, so
    the device is given here (this process's device under accelerate); none for an unquantised base."""
    quantization = quantization_config(config, reward=reward)
    if quantization is None:
        return {}
    from accelerate import PartialState

    return {"quantization_config": quantization, "device_map": {"": PartialState().device}}


def is_quantized(model: nn.Module) -> bool:
    """Whether `model` (or the base under a PEFT wrapper) holds bitsandbytes-quantised weights."""
    get_base = getattr(model, "get_base_model", None)
    base = get_base() if callable(get_base) else model
    return bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False))


def prepare_quantized(model: nn.Module, autocast: bool) -> nn.Module:
    """QLoRA's preparation: every base weight frozen, the unquantised 16-bit ones in float32 for stable updates
    through them: what PEFT's prepare_model_for_kbit_training does (TRL runs it), without its gradient
    checkpointing (train.gradient_checkpointing turns on the non-reentrant kind in apply_train_options).

    Under autocast the frozen input embeddings and LM head stay in their 16-bit dtype: the head's products run
    in the autocast dtype anyway, and the embedding's output is cast to float32, so the residual stream is the
    float32 the upcast gives and losses are bit-identical (a float32 copy would hold exactly the 16-bit
    values). That halves their memory: 2.1 GB of a Llama 3 8B's 4.2 GB.
    """
    embeddings, head = model.get_input_embeddings(), model.get_output_embeddings()
    kept = {id(m.weight) for m in (embeddings, head) if m is not None} if autocast else set()
    for param in model.parameters():
        param.requires_grad_(False)
        if param.dtype in (torch.float16, torch.bfloat16) and id(param) not in kept:  # 4/8-bit weights are ints
            param.data = param.data.float()
    if kept and embeddings.weight.dtype != torch.float32:
        embeddings.register_forward_hook(lambda module, args, output: output.float())
    return model


def keep_4bit_layers_trainable(model: nn.Module) -> nn.Module:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference, which would break training through them.

    bitsandbytes 0.50 converts a CPU Linear4bit's weight, in place and for good, to a packed inference layout
    (absmax rounded to bf16, double quantisation undone) the first time the layer runs in eval mode without
    grad on an AVX512-BF16 CPU: the reference pass, evaluation or generation. From then on even training
    forwards go through its `gemv_4bit` op, which has no autograd kernel, so the gradient through that layer's
    base weight to every earlier layer is silently lost (torch only warns). The flag below is the layer's own
    switch for that conversion; the dequantise-and-matmul path it leaves has a backward.
    """
    if is_quantized(model):
        import bitsandbytes as bnb

        for module in model.modules():
            if isinstance(module, bnb.nn.Linear4bit):
                module.support_avx512bf16_for_cpu = False
    return model


def load_tokenizer(config: ModelConfig, *, convert_weights: bool = True) -> Any:
    """The model's tokenizer; `convert_weights=False` (the `data` commands) never converts a GGUF's weights."""
    from transformers import AutoTokenizer

    path, kwargs = (resolve_path(config.path), {}) if convert_weights else _tokenizer_source(config.path)
    tokenizer = AutoTokenizer.from_pretrained(
        path, revision=config.revision, trust_remote_code=config.trust_remote_code, **kwargs
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked; any id does
    return tokenizer


def load_base(config: ModelConfig, path: str | None = None) -> nn.Module:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        resolve_path(path or config.path),
        revision=config.revision,
        dtype=_dtype(config.dtype),
        trust_remote_code=config.trust_remote_code,
        **_attention(config),
        **_quantized(config),
        **hub_kernels(),
    )
    return keep_4bit_layers_trainable(model)


def attach_lora(
    model: nn.Module, config: ModelConfig, task_type: str = "CAUSAL_LM", autocast: bool = False
) -> nn.Module:
    """Wrap `model` for training: a new LoRA adapter, a saved one to continue, or nothing (full).

    task_type SEQ_CLS (a reward model): the new `score` head is trained whole and saved with the adapter.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    if is_quantized(model):
        model = prepare_quantized(model, autocast)
    if config.adapter:
        if config.lora is None:
            # Full fine-tuning from an SFT adapter: fold it into the weights and train them all (PEFT loads the
            # adapter for inference and leaves every base weight frozen).
            return PeftModel.from_pretrained(model, config.adapter).merge_and_unload().requires_grad_(True)
        # Continue training the SFT adapter; a frozen copy of it is the reference (DPO's π_ref is the SFT model).
        peft_model = PeftModel.from_pretrained(model, config.adapter, is_trainable=True)
        peft_model.load_adapter(config.adapter, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
        peft_model.set_adapter("default")
        return peft_model
    if config.lora is None:
        return model
    lora = config.lora
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type=task_type,
        modules_to_save=["score"] if task_type == "SEQ_CLS" else None,
    )
    return get_peft_model(model, peft_config)


def load_policy(config: ModelConfig, autocast: bool = False) -> nn.Module:
    """The policy; `autocast`: the run trains under mixed precision (see prepare_quantized)."""
    return attach_lora(load_base(config), config, autocast=autocast)


def use_reward_pad_token(tokenizer: Any) -> int:
    """Make the tokenizer's pad token one that never ends an answer; return its id.

    `*ForSequenceClassification` reads the reward at the last token that is not padding. With pad =
    EOS (load_tokenizer's fallback, and SmolLM2's own setting) that is the token *before* the EOS that
    ends every answer, not the EOS that training reads: the saved model would give other rewards.
    """
    from prefalign.data.render import end_of_turn_ids

    ends = end_of_turn_ids(tokenizer)
    candidates = [tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id, *tokenizer.all_special_ids]
    pad_id = next((i for i in candidates if i is not None and i not in ends), None)
    if pad_id is None:
        raise ValueError("kind: reward needs a pad token that is not an end-of-turn token; the tokenizer has none")
    # BOS is a safe pad: the last non-padding token is never a BOS, and padding is masked anyway.
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    return pad_id


def load_reward_model(config: ModelConfig, pad_token_id: int) -> nn.Module:
    """A reward model: the checkpoint's backbone and a scalar head `score` (num_labels=1), LoRA-wrapped if asked.

    From a causal LM checkpoint the head is new, initialised by transformers (normal, initializer_range)
    from the run's seed; its LM head is left out (`load_output_embeddings` gets it for lm_coef).
    """
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_path(config.path),
        num_labels=1,
        revision=config.revision,
        dtype=_dtype(config.dtype),
        trust_remote_code=config.trust_remote_code,
        **_attention(config),
        **_quantized(config, reward=True),
        **hub_kernels(),
    )
    model.config.get_text_config().pad_token_id = pad_token_id  # saved with the model: see use_reward_pad_token
    keep_4bit_layers_trainable(model)
    return attach_lora(model, config, task_type="SEQ_CLS")


def load_output_embeddings(config: ModelConfig) -> nn.Module:
    """The causal LM's output layer (for lm_coef when it is not tied to the input embeddings).

    A sequence-classification model drops it, so the causal LM is loaded once and all but this layer freed.
    """
    return load_base(config).get_output_embeddings()


def apply_train_options(
    model: nn.Module,
    *,
    gradient_checkpointing: bool = False,
    compile: bool = False,
    fused_mlp: bool = False,
    activation_offload: str | None = None,
) -> None:
    """train.gradient_checkpointing, train.fused_mlp, train.activation_offload and train.compile, in place on a
    loaded (possibly PEFT-wrapped) model. `activation_offload`: the device type whose activations the backbone
    moves to CPU memory in forward (model/offload.py), or None.

    Checkpointing is non-reentrant: the reentrant kind gives no gradient to LoRA weights when the frozen
    embeddings' output does not require grad, and cannot be traced by torch.compile. transformers also hooks
    the input embeddings to require grad (what PEFT needs with the reentrant kind); harmless here.
    Only the backbone is compiled, in place (`nn.Module.compile`): parameter names, the PEFT wrapper and
    what is saved stay the same, and the LM head keeps running chunk by chunk outside the compiled graph.
    """
    base = unwrap(model)
    if fused_mlp:
        fuse_gated_mlps(base)
    if gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        enable = getattr(base, "activation_checkpointing_enable", None)  # transformers >= 5.x's name
        if enable is not None:
            enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    backbone = getattr(base, base.base_model_prefix)
    if activation_offload and not hasattr(backbone, "_prefalign_offload"):
        offload_activations(backbone, activation_offload)
    if compile:
        # Inductor builds C++ kernels on CPU (and host code on GPU): say so now, not deep in the first step.
        if not any(shutil.which(name) for name in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")):
            raise ValueError("train.compile: torch.compile needs a C++ compiler (g++ or clang++) on PATH; none found")
        backbone.compile()


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}
