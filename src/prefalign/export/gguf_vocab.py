"""The tokenizer as llama.cpp reads it: vocabulary, merges, special tokens, add-BOS, chat template.

Two vocabularies cover the supported models: byte-level BPE (SmolLM2, Llama 3, Qwen: llama.cpp's "gpt2" model)
and SentencePiece BPE with byte fallback (Llama 2, Mistral, Gemma: its "llama" model). Both are read from
tokenizer.json, which transformers writes for every fast tokenizer.
"""

from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path
from typing import Any

import gguf

from prefalign.export.gguf_arch import GgufArchError

# llama.cpp picks a byte-level BPE's pre-tokenizer (the regex that splits text before merges) by name. Its
# converter names it by hashing how the tokenizer encodes this text; the text and the hashes are llama.cpp's
# (convert_hf_to_gguf.py, get_vocab_base_pre), kept here for the families prefalign supports.
_PRE_CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 "
    "3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you "
    "sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
_PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM, SmolLM2
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen1.5, Qwen2, Qwen2.5
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen3
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",  # Mistral Nemo
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
}

# A tokenizer whose check hash is new (another vocabulary) but whose pre-tokenizer is one of these regexes
# (followed by a byte-level step) splits text as llama.cpp's pre-tokenizer of that name does.
_PRE_TOKENIZER_REGEXES = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+": "qwen2",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+": "llama-bpe",
}


def _pre_tokenizer_by_regex(tokenizer_json: dict) -> str | None:
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre])
    kinds = [step.get("type") for step in steps]
    if kinds != ["Split", "ByteLevel"] or steps[1].get("use_regex", True):
        return None
    return _PRE_TOKENIZER_REGEXES.get(steps[0].get("pattern", {}).get("Regex"))


def _tokenizer_json(tokenizer: Any) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise GgufArchError("the tokenizer is not a fast (tokenizers) one, which the GGUF export reads")
    return json.loads(backend.to_str())


def vocab_kind(tokenizer: Any) -> tuple[str, str]:
    """("gpt2", pre-tokenizer name) or ("llama", "default"); GgufArchError for a tokenizer llama.cpp would split
    differently. Cheap: run before training, so a run that cannot be exported fails before it starts."""
    tokenizer_json = _tokenizer_json(tokenizer)
    model = tokenizer_json["model"]
    if model.get("type") != "BPE":
        raise GgufArchError(f"tokenizer model {model.get('type')!r} is not written to GGUF by prefalign (BPE only)")
    if model.get("byte_fallback"):
        return "llama", "default"
    digest = sha256(str(tokenizer.encode(_PRE_CHECK_TEXT, add_special_tokens=False)).encode()).hexdigest()
    # The hash is over the ids with any BOS the tokenizer adds; try both, as tokenizers differ in adding one.
    with_special = sha256(str(tokenizer.encode(_PRE_CHECK_TEXT)).encode()).hexdigest()
    pre = _PRE_TOKENIZERS.get(with_special) or _PRE_TOKENIZERS.get(digest) or _pre_tokenizer_by_regex(tokenizer_json)
    if pre is None:
        raise GgufArchError(
            "the tokenizer's pre-tokenizer is not one llama.cpp is known to reproduce (its check hash "
            f"{with_special[:16]}… matches none of SmolLM2, Llama 3, Qwen2/3, Mistral Nemo, GPT-2); llama.cpp would "
            "split text differently from transformers"
        )
    return "gpt2", pre


def _token_types(tokenizer: Any, n_vocab: int) -> tuple[list[str], list[int]]:
    vocab = tokenizer.get_vocab()
    by_id = {index: token for token, index in vocab.items()}
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens, types = [], []
    for index in range(n_vocab):
        if index not in by_id:  # the embedding has rows past the vocabulary (padded to a multiple)
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = by_id[index]
        if index in added:
            # llama.cpp matches added tokens in the raw text: special ones are control tokens
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return tokens, types


def _prefixes_space(tokenizer_json: dict) -> bool:
    """Whether the tokenizer puts "▁" before the text: a Prepend normalizer (Llama 2's tokenizer.json) or a
    Metaspace pre-tokenizer that prepends (newer exports)."""
    normalizer = json.dumps(tokenizer_json.get("normalizer"))
    pre_tokenizer = json.dumps(tokenizer_json.get("pre_tokenizer"))
    metaspace_prepends = '"Metaspace"' in pre_tokenizer and '"never"' not in pre_tokenizer
    return '"Prepend"' in normalizer or metaspace_prepends


def write_vocab(writer: gguf.GGUFWriter, model_dir: Path, n_vocab: int) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    kind, pre = vocab_kind(tokenizer)
    if len(tokenizer) > n_vocab:
        raise GgufArchError(f"the tokenizer has {len(tokenizer)} tokens and the model's embedding {n_vocab} rows")
    if kind == "gpt2":
        tokens, types = _token_types(tokenizer, n_vocab)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
    else:  # SentencePiece pieces with scores, byte tokens <0xNN>, as llama.cpp's "llama" tokenizer reads them
        hf_vocab = gguf.LlamaHfVocab(model_dir)
        tokens, scores, types = [], [], []
        for text, score, token_type in hf_vocab.all_tokens():
            tokens.append(text)
            scores.append(score)
            types.append(token_type)
        for index in range(len(tokens), n_vocab):
            tokens.append(f"[PAD{index}]".encode())
            scores.append(-1000.0)
            types.append(gguf.TokenType.UNUSED)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        # Llama 2 and Mistral prefix a space ("▁Hello"); Gemma's tokenizer does not.
        writer.add_add_space_prefix(_prefixes_space(_tokenizer_json(tokenizer)))
    # BOS/EOS/pad/unk ids, whether BOS is added, the merges and the chat template (tokenizer_config.json or
    # chat_template.jinja): read by the gguf package as llama.cpp's converter does.
    special = gguf.SpecialVocab(model_dir, load_merges=kind == "gpt2", n_vocab=n_vocab)
    if "bos" not in special.add_special_token:
        # transformers 5 does not always write add_bos_token; what the tokenizer does is the truth
        probe = tokenizer("a")["input_ids"]
        special.add_special_token["bos"] = bool(
            tokenizer.bos_token_id is not None and probe and probe[0] == tokenizer.bos_token_id
        )
    special.add_to_gguf(writer, quiet=True)
