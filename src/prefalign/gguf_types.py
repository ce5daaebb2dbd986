"""The GGUF types prefalign writes, and what each needs: the one list config validation, the CLI and the writer read.

Kept free of heavy imports: config validation reads it before anything is loaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class GgufType:
    name: str  # as users write it (output.gguf, --quant): lower case, llama.cpp's spelling
    file_tag: str  # in the file name: SmolLM2-Q4_K_M.gguf, as llama.cpp and the Hub name them
    llama_cpp: bool  # quantised by llama.cpp's own quantizer (llama-cpp-python); else written by the gguf package
    description: str


GGUF_TYPES: dict[str, GgufType] = {
    t.name: t
    for t in (
        GgufType("f32", "F32", False, "float32, lossless (4 bytes a weight)"),
        GgufType("f16", "F16", False, "float16 (2 bytes a weight); the usual base for quantising"),
        GgufType("bf16", "BF16", False, "bfloat16 (2 bytes a weight)"),
        GgufType("q8_0", "Q8_0", False, "8-bit blocks of 32 (~1.06 bytes a weight), near lossless"),
        GgufType("q6_k", "Q6_K", True, "6-bit K-quant (~0.82 bytes a weight)"),
        GgufType("q5_k_m", "Q5_K_M", True, "5-bit K-quant, mixed (~0.69 bytes a weight)"),
        GgufType("q4_k_m", "Q4_K_M", True, "4-bit K-quant, mixed (~0.60 bytes a weight): the common choice"),
    )
}

# The `gguf` extra: the K-quants run llama.cpp's quantizer through it.
LLAMA_CPP_PIP = "llama-cpp-python==0.3.36"
INSTALL_HINT = f"pip install 'prefalign[gguf]' (that is {LLAMA_CPP_PIP}; it compiles llama.cpp, ~5 minutes)"


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def check_gguf_types(names: list[str]) -> list[str]:
    """Lower-cased, de-duplicated type names; ValueError naming an unknown type or a missing quantizer."""
    import difflib

    picked: list[str] = []
    for raw in names:
        name = str(raw).lower()
        if name not in GGUF_TYPES:
            close = difflib.get_close_matches(name, GGUF_TYPES, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown GGUF type {raw!r}{hint}; known: {', '.join(GGUF_TYPES)}")
        if name not in picked:
            picked.append(name)
    needs = [name for name in picked if GGUF_TYPES[name].llama_cpp]
    if needs and not llama_cpp_available():
        raise ValueError(
            f"{', '.join(needs)} is made by llama.cpp's quantizer, and llama-cpp-python is not installed: "
            f"{INSTALL_HINT}; or ask only for {', '.join(n for n, t in GGUF_TYPES.items() if not t.llama_cpp)}"
        )
    return picked
