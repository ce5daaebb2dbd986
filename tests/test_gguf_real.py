"""GGUF of the real default model: agreement with the merged model on held-out text, and the end-to-end proof that
training → merge → convert → quantise → llama.cpp gives the answer the trained model gives."""

from __future__ import annotations

import importlib.util
import sys

import pytest

import prefalign
from tests.conftest import REPO

pytestmark = pytest.mark.slow

sys.path.insert(0, str(REPO / "benchmarks"))
from gguf_agreement import measure  # noqa: E402  (the benchmark script is the measurement)

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(not HAS_LLAMA_CPP, reason="needs the gguf extra (llama-cpp-python)")


def test_smollm2_ggufs_agree_with_the_merged_model_on_held_out_text(smollm_dir, tmp_path):
    """The first 12 held-out quickstart conversations (about 1,600 positions; the benchmark's default is all 45,
    5958 positions, too slow for CI with llama.cpp), each file read back by transformers and, where the gguf
    extra is installed, run by llama.cpp. Figures measured 2026-12-03 (README, GGUF section)."""
    quants = ["f16", "q8_0", *(["q4_k_m"] if HAS_LLAMA_CPP else [])]
    results = measure(smollm_dir, quants, tmp_path, rows=12, llama_cpp=HAS_LLAMA_CPP)
    bf16, f16, q8_0 = results["bf16-rounded weights"], results["f16"], results["q8_0"]
    assert f16.positions > 1200
    # f16 is within bf16 rounding: closer than the merged model with its own weights rounded to bf16.
    assert f16.max_diff <= bf16.max_diff and f16.top1 >= bf16.top1 and f16.mean_kl <= bf16.mean_kl
    # q8_0 (measured 97.80%, mean KL 0.0019): byte for byte llama.cpp's own Q8_0 (tests/test_gguf.py), so what is
    # left is the rounding itself; it flips only near-ties (largest top-2 gap at a flip measured 0.23 nats), where
    # a misplaced or misread tensor would flip confident positions too. (97.2-97.3% on 8-10 conversations.)
    assert q8_0.top1 >= 0.965 and q8_0.mean_kl < 0.003 and q8_0.flip_gap < 0.5
    if HAS_LLAMA_CPP:
        q4_k_m = results["q4_k_m"]  # measured 88.45%, mean KL 0.070; llama.cpp's own logits: 87.7% (8 rows)
        assert q4_k_m.top1 >= 0.87 and q4_k_m.mean_kl < 0.1
        # llama.cpp runs each file as transformers reads it, up to its rounding of activations to 8 bits against
        # quantised weights (8 rows: q8_0 95.6% and mean KL 0.0054 in llama.cpp, 97.2% and 0.0018 read back).
        for quant in quants:
            ours, theirs = results[quant], results[f"{quant} in llama.cpp"]
            assert abs(theirs.top1 - ours.top1) < 0.03 and theirs.mean_kl < 4 * ours.mean_kl + 1e-4, quant
    # The targets (q8_0 >= 99%, q4_k_m >= 90%) are not reached on this model: its weights are themselves
    # 4-bit (Q4_1, the GGUF it ships in), and 11.6% of its positions are near-ties. README, GGUF section.
    unmet = [f"q8_0 {q8_0.top1:.2%} < 99%"] if q8_0.top1 < 0.99 else []
    if HAS_LLAMA_CPP and results["q4_k_m"].top1 < 0.90:
        unmet.append(f"q4_k_m {results['q4_k_m'].top1:.2%} < 90%")
    if unmet:
        pytest.xfail("the issue's agreement targets: " + ", ".join(unmet) + " (see README, GGUF section)")


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory):
    """The quickstart as `make quickstart` runs it (about 6 minutes on 2 cores), with a q4_k_m GGUF."""
    run_dir = tmp_path_factory.mktemp("quickstart") / "quickstart"
    overrides = [f"output.dir={run_dir}", "output.gguf=[q4_k_m]"]
    result = prefalign.train(REPO / "examples" / "quickstart.yaml", overrides, quiet=True)
    return result, run_dir


@needs_llama_cpp
def test_the_quickstarts_q4_k_m_answers_with_tldr_in_llama_cpp(quickstart_run):
    from llama_cpp import Llama

    result, run_dir = quickstart_run
    path = run_dir / "gguf" / "quickstart-Q4_K_M.gguf"
    assert result.saved["gguf q4_k_m"] == str(path) and path.is_file()
    first = result.generations[0]
    assert first["after"].startswith("TL;DR:")  # the merged model's answer
    llm = Llama(model_path=str(path), n_ctx=512, verbose=False, n_threads=2, seed=0)
    # llama.cpp renders the prompt with the chat template stored in the file, and decodes greedily.
    reply = llm.create_chat_completion(
        messages=[{"role": "user", "content": first["prompt"]}], temperature=0.0, top_k=1, max_tokens=24
    )
    answer = reply["choices"][0]["message"]["content"]
    assert answer.lstrip().startswith("TL;DR:"), answer
