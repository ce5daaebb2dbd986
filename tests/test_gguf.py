"""GGUF export: every claimed architecture round-trips (tiny random models built from a config), through
transformers' GGUF reader and through llama.cpp itself; bad requests fail before anything is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import prefalign
from prefalign.export.gguf import GgufExportError, export_gguf
from prefalign.export.gguf_arch import GgufArchError
from prefalign.gguf_types import check_gguf_types

TEXT = "Preference alignment: the chosen answer is preferred.\nQ: Name a colour. A: It is RED! 42 + 7 = 49"


def _randomise(model: torch.nn.Module, gemma: bool) -> torch.nn.Module:
    """Weights far from their init: zero biases, unit norms and Gemma's zero norms would hide layout bugs."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0.0, 0.08)
            if "norm" in name and not gemma:
                param.add_(1.0)
    return model.eval()


def _tiny(kind: str, tokenizer, hidden: int = 64):
    import transformers as tf

    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    if kind == "llama":
        config = tf.LlamaConfig(**common, tie_word_embeddings=True)
        model = tf.LlamaForCausalLM(config)
    elif kind == "llama3-rope":  # Llama 3.1+'s scaled rotary frequencies, untied head
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 64}  # fmt: skip
        config = tf.LlamaConfig(**common, tie_word_embeddings=False, rope_parameters=rope)
        model = tf.LlamaForCausalLM(config)
    elif kind == "mistral":
        config = tf.MistralConfig(**common, sliding_window=None, tie_word_embeddings=False)
        model = tf.MistralForCausalLM(config)
    elif kind == "qwen2":  # q/k/v biases
        config = tf.Qwen2Config(**common, tie_word_embeddings=True)
        model = tf.Qwen2ForCausalLM(config)
    elif kind == "qwen3":  # q/k norms; head_dim 128 apart from hidden/heads, as in every real Qwen3
        config = tf.Qwen3Config(**common, head_dim=128, tie_word_embeddings=True)
        model = tf.Qwen3ForCausalLM(config)
    elif kind == "gemma2":  # (1 + w) norms, four norms a layer, soft-capping, sliding layers
        config = tf.Gemma2Config(**common, head_dim=256, query_pre_attn_scalar=256, sliding_window=8)
        model = tf.Gemma2ForCausalLM(config)
    elif kind == "gemma3":  # and q/k norms, local rope base
        config = tf.Gemma3TextConfig(**common, head_dim=256, query_pre_attn_scalar=256, sliding_window=8)
        model = tf.Gemma3ForCausalLM(config)
    else:
        raise ValueError(kind)
    return _randomise(model, gemma=kind.startswith("gemma"))


# transformers' GGUF reader ignores llama.cpp's rope_freqs tensor; llama.cpp's answer is the one that counts.
NOT_READ_BY_TRANSFORMERS = {"llama3-rope"}
ARCHS = ["llama", "llama3-rope", "mistral", "qwen2", "qwen3", "gemma2", "gemma3"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """arch -> (model, directory of the saved model + tokenizer), built once per module."""
    cache: dict[str, tuple[torch.nn.Module, Path]] = {}

    def get(kind: str, hidden: int = 64):
        key = f"{kind}-{hidden}"
        if key not in cache:
            model = _tiny(kind, tokenizer, hidden)
            path = tmp_path_factory.mktemp(key)
            model.save_pretrained(path)
            tokenizer.save_pretrained(path)
            # The test tokenizer is SmolLM2's: keep transformers from rebuilding it as the architecture's own class
            # (a Qwen2 directory would otherwise get Qwen's pre-tokenizer over SmolLM2's vocabulary).
            settings = json.loads((path / "tokenizer_config.json").read_text())
            settings["tokenizer_class"] = "PreTrainedTokenizerFast"
            (path / "tokenizer_config.json").write_text(json.dumps(settings))
            cache[key] = (model, path)
        return cache[key]

    return get


def _ids(tokenizer) -> torch.Tensor:
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    assert ids.shape[1] > 20  # longer than the tiny models' sliding window: the window is exercised
    return ids


def _hf_logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits[0].float()


def _llama_cpp_logits(path: Path, ids: list[int]) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=128, logits_all=True, verbose=False, n_threads=2, seed=0)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


@pytest.mark.parametrize("kind", ARCHS)
def test_f32_gguf_gives_the_models_logits_in_transformers_and_llama_cpp(kind, saved, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    model, model_dir = saved(kind)
    (path,) = export_gguf(model_dir, tmp_path, "tiny", ["f32"])
    assert path.name == "tiny-F32.gguf"
    ids = _ids(tokenizer)
    expected = _hf_logits(model, ids)

    if kind not in NOT_READ_BY_TRANSFORMERS:
        read_back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name).eval()
        torch.testing.assert_close(_hf_logits(read_back, ids), expected, atol=2e-4, rtol=1e-4)

    pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) runs the file in llama.cpp")
    got = _llama_cpp_logits(path, ids[0].tolist())
    # llama.cpp sums in another order (and fuses some ops): one logit in a million lands ~2e-3 off in f32.
    np.testing.assert_allclose(got, expected.numpy(), atol=5e-3, rtol=1e-3)


# --- bad input: each fails before anything is trained or written --------------------------------------------


def test_an_unknown_gguf_type_is_a_config_error_naming_the_key_and_the_closest_type(tiny_model_dir, toy_data, tmp_path):
    from prefalign.config import ConfigError, load_config
    from tests.conftest import tiny_config

    config = tiny_config(tiny_model_dir, toy_data, tmp_path / "run", output={"save": ["merged"], "gguf": ["q4_k_x"]})
    with pytest.raises(ConfigError) as error:
        load_config(config)
    message = str(error.value)
    assert "output.gguf" in message and "'q4_k_x'" in message and "did you mean 'q4_k_m'" in message
    assert not (tmp_path / "run").exists()


def test_gguf_types_are_normalised_and_k_quants_need_llama_cpp(monkeypatch):
    from prefalign import gguf_types

    assert check_gguf_types(["F16", "q8_0", "f16"]) == ["f16", "q8_0"]
    monkeypatch.setattr(gguf_types, "llama_cpp_available", lambda: False)
    with pytest.raises(ValueError, match=r"q4_k_m is made by llama.cpp's quantizer.*prefalign\[gguf\]"):
        check_gguf_types(["f16", "q4_k_m"])
    assert check_gguf_types(["f16", "q8_0"]) == ["f16", "q8_0"]  # these need nothing more


def test_gguf_without_the_merged_model_or_on_a_reward_model_is_a_config_error(tiny_model_dir, toy_data, tmp_path):
    from prefalign.config import ConfigError, load_config
    from tests.conftest import tiny_config

    config = tiny_config(tiny_model_dir, toy_data, tmp_path / "run", output={"save": ["adapter"], "gguf": ["f16"]})
    with pytest.raises(ConfigError, match=re.escape("output.save: output.gguf is converted from the merged model")):
        load_config(config)
    config = tiny_config(
        tiny_model_dir, toy_data, tmp_path / "run", method={"kind": "reward", "loss": "bradley_terry"},
        output={"save": ["merged"], "gguf": ["f16"]},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=re.escape("output.gguf: a reward model")):
        load_config(config)


def test_an_unsupported_architecture_fails_before_training_naming_the_supported_ones(tokenizer, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from prefalign.config import ConfigError, load_config
    from prefalign.export.gguf_run import check_gguf_output
    from tests.conftest import tiny_config, toy_rows, write_jsonl

    model_dir = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    raw = tiny_config(model_dir, data, tmp_path / "run", output={"save": ["merged"], "gguf": ["f16"]})
    with pytest.raises(ConfigError) as error:
        check_gguf_output(load_config(raw))
    with pytest.raises(ConfigError, match=re.escape("output.gguf: GPT2LMHeadModel")):
        prefalign.train(raw, quiet=True)
    assert not (tmp_path / "run").exists()  # before the run directory, let alone training
    assert "output.gguf: GPT2LMHeadModel cannot be written as GGUF" in str(error.value)
    assert "Llama (SmolLM2, Llama 3), Mistral, Qwen2, Qwen3, Gemma 2 and Gemma 3" in str(error.value)
    with pytest.raises(GgufArchError, match="GPT2LMHeadModel"):
        export_gguf(model_dir, tmp_path / "out", "gpt2", ["f16"])
    assert not (tmp_path / "out").exists()  # nothing written


def test_an_existing_gguf_is_never_replaced_without_overwrite(saved, tmp_path):
    _, model_dir = saved("llama")
    (first,) = export_gguf(model_dir, tmp_path, "tiny", ["q8_0"])
    stamp = first.stat().st_mtime_ns
    with pytest.raises(GgufExportError, match=re.escape("tiny-Q8_0.gguf exists; pass --overwrite")):
        export_gguf(model_dir, tmp_path, "tiny", ["q8_0"])
    assert first.stat().st_mtime_ns == stamp
    export_gguf(model_dir, tmp_path, "tiny", ["q8_0"], overwrite=True)
    assert first.stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-Q8_0.gguf"]  # no temp file left behind


def test_export_cli_writes_a_run_directorys_gguf_and_refuses_to_overwrite(saved, tmp_path):
    import os
    import shutil
    import stat

    from typer.testing import CliRunner

    from prefalign.cli import app

    _, model_dir = saved("llama")
    run_dir = tmp_path / "myrun"
    shutil.copytree(model_dir, run_dir / "merged")
    (run_dir / ".prefalign-run").touch()
    result = CliRunner().invoke(app, ["export", "gguf", str(run_dir), "--quant", "f16"])
    assert result.exit_code == 0, result.output
    written = run_dir / "gguf" / "myrun-F16.gguf"
    assert written.is_file()
    # Readable as a plain open would make it (the temporary file it was renamed from was private).
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask
    result = CliRunner().invoke(app, ["export", "gguf", str(run_dir), "--quant", "f16"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = CliRunner().invoke(app, ["export", "gguf", str(run_dir), "--quant", "q4_k_x"])
    assert result.exit_code == 2 and "unknown GGUF type 'q4_k_x'" in result.output


def test_llama_cpp_tokenizes_and_templates_like_transformers(saved, tokenizer, tmp_path):
    """The vocabulary, pre-tokenizer, special tokens and chat template reach llama.cpp intact."""
    pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) runs the file in llama.cpp")
    from llama_cpp import Llama

    _, model_dir = saved("llama")
    (path,) = export_gguf(model_dir, tmp_path, "tiny", ["q8_0"])
    llm = Llama(model_path=str(path), n_ctx=256, verbose=False, n_threads=2)
    chat = [{"role": "user", "content": TEXT}, {"role": "assistant", "content": "It is RED. 🦙 ok"}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    expected = tokenizer(rendered, add_special_tokens=False).input_ids
    assert llm.tokenize(rendered.encode(), add_bos=False, special=True) == expected
    assert llm.token_bos() == tokenizer.bos_token_id and llm.token_eos() == tokenizer.eos_token_id
    assert llm.metadata["tokenizer.chat_template"] == tokenizer.chat_template
    assert llm.detokenize(expected, special=True).decode() == rendered  # special: show <|im_start|> as text


def test_q8_0_is_byte_for_byte_what_llama_cpps_own_quantizer_makes(saved, tmp_path):
    """prefalign writes q8_0 itself (the gguf package's quantizer); llama.cpp's `llama-quantize` makes it from an
    f32 file. Both files must hold the same tensors, of the same types (which ones stay f32: llama.cpp's
    convention), with the same bytes. (On SmolLM2-135M this holds as well: measured 2026-12-03.)"""
    pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) has llama.cpp's quantizer")
    import gguf

    from prefalign.export.gguf import llama_cpp_quantize

    _, model_dir = saved("llama")
    ours, f32 = export_gguf(model_dir, tmp_path, "tiny", ["q8_0", "f32"])
    theirs = llama_cpp_quantize(f32, tmp_path / "llama-cpp-Q8_0.gguf", "q8_0")
    ours_tensors = {t.name: t for t in gguf.GGUFReader(ours).tensors}
    their_tensors = {t.name: t for t in gguf.GGUFReader(theirs).tensors}
    assert ours_tensors.keys() == their_tensors.keys()
    for name, tensor in ours_tensors.items():
        assert tensor.tensor_type == their_tensors[name].tensor_type, name
        assert np.asarray(tensor.data).tobytes() == np.asarray(their_tensors[name].data).tobytes(), name
    assert ours_tensors["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0  # the tied output too


@pytest.mark.parametrize("quant", ["q4_k_m", "q5_k_m", "q6_k"])
def test_k_quants_come_from_llama_cpps_quantizer_and_stay_close(quant, saved, tokenizer, tmp_path):
    """K-quants need rows in blocks of 256: a hidden size of 256 puts every weight through them."""
    pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) quantises K-quants")
    import gguf
    from transformers import AutoModelForCausalLM

    model, model_dir = saved("llama", hidden=256)
    (path,) = export_gguf(model_dir, tmp_path, "tiny", [quant])
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # the 16-bit intermediate is gone
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    expected_type = {"q4_k_m": "Q4_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K"}[quant]
    assert types["blk.0.attn_q.weight"] == expected_type
    assert types["blk.0.attn_norm.weight"] == "F32"
    ids = _ids(tokenizer)
    expected = _hf_logits(model, ids)
    read_back = _hf_logits(AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name).eval(), ids)
    # A random model's logits are nearly flat, so top-1 means little here; the error must stay a small share
    # of the logits' spread (measured 2026-12-03: q4_k_m 0.253 of it; q5_k_m and q6_k under 0.25).
    error = (read_back - expected).abs().mean() / expected.std()
    assert error < {"q4_k_m": 0.3, "q5_k_m": 0.25, "q6_k": 0.25}[quant], error


def test_a_run_with_output_gguf_writes_its_files_from_the_merged_model(tiny_model_dir, toy_data, tmp_path):
    from transformers import AutoModelForCausalLM

    from tests.conftest import tiny_config

    run_dir = tmp_path / "tinyrun"
    config = tiny_config(tiny_model_dir, toy_data, run_dir, output={"save": ["adapter", "merged"], "gguf": ["q8_0"]})
    result = prefalign.train(config, quiet=True)
    path = run_dir / "gguf" / "tinyrun-Q8_0.gguf"
    assert result.saved["gguf q8_0"] == str(path)
    assert sorted(p.name for p in (run_dir / "gguf").iterdir()) == ["tinyrun-Q8_0.gguf"]
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged").eval()
    from_gguf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    ids = torch.tensor([[1, 504, 3458, 30, 2]])
    with torch.no_grad():
        expected, got = merged(ids).logits, from_gguf(ids).logits
    assert (got.argmax(-1) == expected.argmax(-1)).all()
    torch.testing.assert_close(got, expected, atol=0.05, rtol=0.05)  # q8_0 of a trained (merged LoRA) model


def _sentencepiece_bpe_tokenizer():
    """A SentencePiece-style BPE with byte fallback (Llama 2's, Mistral's, Gemma's kind), trained here."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import LlamaTokenizerFast

    corpus = [TEXT, "Name a colour. It is RED.", "the quick brown fox jumps over the lazy dog"] * 50
    backend = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    specials = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256))]
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=specials))
    tokenizer = LlamaTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True
    )
    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}</s>{% endfor %}"
    return tokenizer


def test_a_sentencepiece_vocabulary_round_trips_with_scores_bytes_and_space_prefix(tmp_path):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer, MistralConfig, MistralForCausalLM

    tokenizer = _sentencepiece_bpe_tokenizer()
    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, sliding_window=None, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    model = _randomise(MistralForCausalLM(config), gemma=False)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (path,) = export_gguf(tmp_path / "model", tmp_path / "gguf", "spm", ["f32"])
    fields = gguf.GGUFReader(path).fields
    assert fields["tokenizer.ggml.model"].contents() == "llama"
    assert fields["tokenizer.ggml.add_bos_token"].contents() is True
    assert fields["tokenizer.ggml.add_space_prefix"].contents() is True
    assert fields["tokenizer.chat_template"].contents() == tokenizer.chat_template

    text = "Name a colour: it is RED. Über 42 🦙"  # unseen characters go through the byte tokens
    expected = AutoTokenizer.from_pretrained(tmp_path / "model")(text).input_ids
    assert AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)(text).input_ids == expected
    ids = torch.tensor([expected])
    read_back = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    torch.testing.assert_close(_hf_logits(read_back, ids), _hf_logits(model, ids), atol=2e-4, rtol=1e-4)

    pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) runs the file in llama.cpp")
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=128, verbose=False, n_threads=2)
    assert llm.tokenize(text.encode(), add_bos=True) == expected
