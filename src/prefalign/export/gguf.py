"""Write a merged transformers model as GGUF files that llama.cpp, Ollama and LM Studio run.

The float and Q8_0 files are written here with the `gguf` package (llama.cpp's own writer), one tensor at a
time from the safetensors files, so memory stays near one tensor. K-quants (q4_k_m, q5_k_m, q6_k) are made
from a 16-bit GGUF by llama.cpp's quantizer through llama-cpp-python, as llama.cpp's `llama-quantize` does:
its choice of which tensors get more bits is what "_M" means, and is not re-implemented here.

Every file is written to a temporary name beside its target and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

from prefalign.atomic import write_atomically
from prefalign.export.gguf_arch import (
    ArchSpec,
    GgufArchError,
    arch_spec,
    llama3_rope_factors,
    permute_qk,
    write_hparams,
)
from prefalign.export.gguf_vocab import vocab_kind, write_vocab
from prefalign.gguf_types import GGUF_TYPES, check_gguf_types

_Q = gguf.GGMLQuantizationType
# What each type the writer itself makes stores a 2-D weight as; 1-D tensors (norms, biases) stay float32,
# as in llama.cpp's converter.
_WRITER_TYPES = {"f32": _Q.F32, "f16": _Q.F16, "bf16": _Q.BF16, "q8_0": _Q.Q8_0}
_FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "q6_k": gguf.LlamaFileType.MOSTLY_Q6_K,
    "q5_k_m": gguf.LlamaFileType.MOSTLY_Q5_K_M,
    "q4_k_m": gguf.LlamaFileType.MOSTLY_Q4_K_M,
}


class GgufExportError(ValueError):
    """An export that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class _Tensor:
    gguf_name: str
    hf_name: str | None  # None: made here (rope_freqs)
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType


def _load_config(model_dir: Path) -> Any:
    from transformers import AutoConfig

    if not (model_dir / "config.json").is_file():
        raise GgufExportError(f"{model_dir}: no config.json; expected a merged transformers model directory")
    return AutoConfig.from_pretrained(model_dir)


def check_exportable(path: str | Path, revision: str | None = None, trust_remote_code: bool = False) -> None:
    """Raise GgufArchError if the model's architecture or tokenizer cannot be written correctly. Reads only the
    config and the tokenizer (a directory or a hub id): run it before training."""
    from transformers import AutoConfig, AutoTokenizer

    options = {"revision": revision, "trust_remote_code": trust_remote_code}
    config = AutoConfig.from_pretrained(path, **options)
    spec = arch_spec(config)
    vocab_kind(AutoTokenizer.from_pretrained(path, **options))
    if getattr(config, "vocab_size", None) is None:
        raise GgufArchError(f"{spec.family}: the config has no vocab_size")


def _safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return [model_dir / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise GgufExportError(f"{model_dir}: no safetensors weights (save the merged model with save_pretrained)")
    return files


def _shapes(files: list[Path]) -> dict[str, tuple[tuple[int, ...], Path]]:
    from safetensors import safe_open

    shapes = {}
    for path in files:
        with safe_open(path, framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                shapes[name] = (tuple(f.get_slice(name).get_shape()), path)
    return shapes


def _storage_type(quant: str, shape: tuple[int, ...]) -> gguf.GGMLQuantizationType:
    if len(shape) < 2:
        return _Q.F32
    qtype = _WRITER_TYPES[quant]
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    # Q8_0 needs rows in blocks of 32; a row that is not stays 16-bit, as llama.cpp's converter does.
    return qtype if shape[-1] % block == 0 else _Q.F16


def _plan(config: Any, spec: ArchSpec, shapes: dict, quant: str) -> list[_Tensor]:
    names = gguf.get_tensor_name_map(spec.arch, config.num_hidden_layers)
    plan = []
    for hf_name, (shape, _) in shapes.items():
        if hf_name == "lm_head.weight" and getattr(config, "tie_word_embeddings", False):
            continue  # tied: llama.cpp uses token_embd when there is no output tensor
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise GgufArchError(f"tensor {hf_name!r} has no GGUF name for {spec.family}; the model has extra weights")
        plan.append(_Tensor(gguf_name, hf_name, shape, _storage_type(quant, shape)))
    factors = llama3_rope_factors(config)
    if factors is not None:
        plan.append(_Tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", None, factors.shape, _Q.F32))
    return plan


def _prepared(tensor: torch.Tensor, item: _Tensor, config: Any, spec: ArchSpec) -> np.ndarray:
    data = tensor.to(torch.float32)
    name = item.hf_name or ""
    if spec.permute_qk and name.endswith(("q_proj.weight", "q_proj.bias")):
        data = permute_qk(data, config.num_attention_heads)
    elif spec.permute_qk and name.endswith(("k_proj.weight", "k_proj.bias")):
        data = permute_qk(data, getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    if spec.norm_shift and name.endswith("norm.weight"):
        data = data + spec.norm_shift
    array = data.numpy()
    if item.qtype == _Q.F32:
        return array
    if item.qtype == _Q.F16:
        return array.astype(np.float16)
    return gguf.quants.quantize(array, item.qtype)


def _nbytes(item: _Tensor) -> int:
    block, size = gguf.GGML_QUANT_SIZES[item.qtype]
    return int(np.prod(item.shape)) // block * size


def _tensors(plan: list[_Tensor], shapes: dict, config: Any) -> Iterator[tuple[_Tensor, torch.Tensor]]:
    """Each tensor of the plan in order, read from its safetensors file when its turn comes."""
    from safetensors import safe_open

    handles = {path: safe_open(path, framework="pt") for _, path in shapes.values()}
    for item in plan:
        if item.hf_name is None:  # made here, not read
            factors = llama3_rope_factors(config)
            assert factors is not None
            yield item, factors
        else:
            yield item, handles[shapes[item.hf_name][1]].get_tensor(item.hf_name)


def write_float_gguf(model_dir: Path, target: Path, quant: str, name: str) -> Path:
    """A GGUF of `model_dir` with its 2-D weights as `quant` (f32, f16, bf16 or q8_0), written atomically."""
    config = _load_config(model_dir)
    spec = arch_spec(config)
    shapes = _shapes(_safetensors_files(model_dir))
    plan = _plan(config, spec, shapes, quant)

    def write(tmp: Path) -> None:
        writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[spec.arch])
        writer.add_name(name)
        write_hparams(writer, config, spec)
        writer.add_file_type(_FILE_TYPES[quant])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        write_vocab(writer, model_dir, config.vocab_size)
        for item in plan:
            writer.add_tensor_info(item.gguf_name, item.shape, np.dtype(np.float32), _nbytes(item), item.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for item, tensor in _tensors(plan, shapes, config):
            writer.write_tensor_data(_prepared(tensor, item, config, spec))
        writer.close()

    write_atomically(target, write, directory=False)
    return target


def llama_cpp_quantize(source: Path, target: Path, quant: str, threads: int | None = None) -> Path:
    """Quantise a 16/32-bit GGUF with llama.cpp's quantizer (what `llama-quantize` runs), atomically."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(_FILE_TYPES[quant])
    params.nthread = threads or max(1, (os.cpu_count() or 2) // 2)

    def write(tmp: Path) -> None:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if status != 0:
            raise GgufExportError(f"llama.cpp's quantizer failed ({status}) making {quant} from {source}")

    return write_atomically(target, write, directory=False)


def gguf_path(out_dir: Path, name: str, quant: str) -> Path:
    return out_dir / f"{name}-{GGUF_TYPES[quant].file_tag}.gguf"


def export_gguf(
    model_dir: Path | str, out_dir: Path | str, name: str, quants: list[str], *, overwrite: bool = False
) -> list[Path]:
    """Write `out_dir/<name>-<QUANT>.gguf` for each of `quants` from a merged transformers model directory.

    The K-quants are made from a 16-bit file (bf16 when the model was saved in bf16, else f16): the one asked
    for, or a temporary one. An existing file is an error unless `overwrite`.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    try:
        quants = check_gguf_types(quants)
    except ValueError as exc:
        raise GgufExportError(str(exc)) from None
    targets = {quant: gguf_path(out_dir, name, quant) for quant in quants}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not overwrite:
        raise GgufExportError(f"{', '.join(existing)} exists; pass --overwrite (or output.overwrite) to replace it")
    config = _load_config(model_dir)
    arch_spec(config)  # fail before writing anything
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for quant in quants:
        if not GGUF_TYPES[quant].llama_cpp:
            written.append(write_float_gguf(model_dir, targets[quant], quant, name))
    k_quants = [quant for quant in quants if GGUF_TYPES[quant].llama_cpp]
    if k_quants:
        base_type = "bf16" if str(getattr(config, "dtype", "")) in ("bfloat16", "torch.bfloat16") else "f16"
        # The 16-bit file the quantizer reads: the one asked for, or a temporary one removed afterwards.
        with tempfile.TemporaryDirectory(prefix=f".tmp-{name}-", dir=out_dir) as scratch:
            base = targets.get(base_type) or write_float_gguf(
                model_dir, Path(scratch) / f"{name}-{base_type}.gguf", base_type, name
            )
            for quant in k_quants:
                written.append(llama_cpp_quantize(base, targets[quant], quant))
    return [targets[quant] for quant in quants if targets[quant] in written]
