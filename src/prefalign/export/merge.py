"""Merge a LoRA adapter into its base: in place for a 16/32-bit base, through a dequantised copy for a quantised one.

PEFT's own merge into a 4-bit layer adds the update and quantises the sum again, so the merged weights lose the
update to rounding (PEFT warns "may get different generations"). Unsloth's `merged_16bit` and Axolotl's
`merge-lora` instead dequantise the base and add the update in 16 bits; so does `merge_quantized`: the result is
exactly the adapter on the dequantised base, loadable by plain transformers (no bitsandbytes needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from prefalign.config import ConfigError, RunConfig, load_config
from prefalign.export.save import save_merged
from prefalign.model.load import is_quantized, load_base, load_reward_model

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_ADAPTER = "default"  # the trained adapter; a continued SFT adapter's frozen copy ("reference") is left out


def merge_quantized(peft_model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A quantised PEFT model as a plain transformers model in `dtype`: base dequantised, trained adapter added.

    Each LoRA update B·A·scale is taken in float32 before the adapter is removed, added to the float32
    dequantised weight, and only the sum is rounded to `dtype`. This consumes `peft_model`.
    """
    from peft.tuners.lora import LoraLayer

    deltas: dict[str, torch.Tensor] = {}
    for name, module in peft_model.get_base_model().named_modules():
        if isinstance(module, LoraLayer) and _ADAPTER in module.lora_A:
            deltas[name] = module.get_delta_weight(_ADAPTER).float()
    # The base with its quantised layers back in place (a modules_to_save head keeps its trained copy).
    base = peft_model.unload()
    base = base.dequantize(dtype=torch.float32)  # also drops config.quantization_config
    with torch.no_grad():
        for name, delta in deltas.items():
            weight = base.get_submodule(name).weight
            weight.add_(delta.to(weight.device))
    return base.to(dtype)


def merge_adapter(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """The trained adapter merged into the base (PEFT's merge for an unquantised base), cast to `dtype` if given.

    A quantised base is dequantised first (`merge_quantized`), to `dtype` or else bfloat16.
    """
    if not hasattr(model, "merge_and_unload"):  # full fine-tuning: nothing to merge
        return model if dtype is None else model.to(dtype)
    if is_quantized(model):
        # The dtype the run loaded the base in (model.dtype: bfloat16 unless said) is the one merged into.
        return merge_quantized(model, dtype or model.get_base_model().config.dtype or torch.bfloat16)
    merged = model.merge_and_unload(adapter_names=[_ADAPTER])
    return merged if dtype is None else merged.to(dtype)


def _run_config(run_dir: Path) -> RunConfig:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no config.yaml; give the directory of a prefalign run (output.dir)")
    # The run may have trained with what this machine lacks (a paged optimizer on CUDA): merging needs none of it.
    return load_config(path, machine=False)


def merge_run(run_dir: str | Path, *, dtype: str | None = None, out: str | Path | None = None,
              overwrite: bool = False) -> Path:  # fmt: skip
    """`prefalign merge`: a run's saved adapter merged into its base, written as a transformers model directory.

    dtype: bf16, fp16 or fp32; default the run's model.dtype (bfloat16 for a quantised run). out: default
    RUN_DIR/merged. An existing target is replaced only with `overwrite`.
    """
    from peft import PeftModel

    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    adapter = run_dir / "adapter"
    if config.model.lora is None:
        raise ConfigError(f"{run_dir}: a full fine-tuning run has no adapter to merge; its merged/ is the model")
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(
            f"{adapter}: no saved adapter (adapter_config.json); the run saves one when output.save lists 'adapter'"
        )
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    target = Path(out) if out is not None else run_dir / "merged"
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ConfigError(f"--out: {target} exists and is not empty; give --overwrite to replace it, or another --out")
    # The base as the run loaded it (quantised if it trained quantised), without the SFT adapter it may have
    # started from: the saved adapter is that adapter trained further.
    model_config = config.model.model_copy(update={"adapter": None})
    tokenizer = _saved_tokenizer(adapter)
    if config.method.kind == "reward":
        base = load_reward_model(model_config.model_copy(update={"lora": None}), tokenizer.pad_token_id)
    else:
        base = load_base(model_config)
    model = PeftModel.from_pretrained(base, adapter)
    wanted = DTYPES[dtype] if dtype else _default_dtype(config)
    merged = merge_adapter(model, wanted)
    return save_merged(merged, tokenizer, target)


def _saved_tokenizer(adapter: Path) -> Any:
    """The tokenizer the run saved beside its adapter (its chat template and pad token as trained)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(adapter)


def _default_dtype(config: RunConfig) -> torch.dtype | None:
    if config.model.dtype == "auto":
        return None  # as loaded
    return getattr(torch, config.model.dtype)
