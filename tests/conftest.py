"""Shared fixtures: the real default tokenizer and tiny random-initialised Llama models built from a config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO.parent / "shared" / "peers"


@pytest.fixture(scope="session")
def smollm_dir() -> Path:
    """The default model converted from its GGUF to safetensors (cached across runs)."""
    from prefalign.model.load import resolve_path

    return Path(resolve_path("builtin:smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def tokenizer(smollm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm_dir)


def make_tiny_model(tokenizer, seed: int = 0, **overrides):
    """A 2-layer Llama with the real tokenizer's vocabulary; random weights, float32. `overrides` replace
    config values (heads, tie_word_embeddings, attn_implementation, ...)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlamaConfig(**{**settings, **overrides})
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A saved tiny model + tokenizer directory, usable as `model.path`."""
    path = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict:
    return {"role": "system", "content": text}


# A toy preference that a tiny model can learn: answers in capitals are preferred.
TOY_QUESTIONS = [
    "Name a colour.", "Name a fruit.", "Name an animal.", "Name a city.", "Name a tool.",
    "Name a planet.", "Name a tree.", "Name a sport.", "Name a metal.", "Name a river.",
    "Name a bird.", "Name a drink.", "Name a fish.", "Name a flower.", "Name a month.", "Name a day.",
]  # fmt: skip
TOY_ANSWERS = [
    "red", "apple", "horse", "paris", "hammer", "mars", "oak", "tennis",
    "iron", "nile", "robin", "tea", "trout", "rose", "may", "monday",
]  # fmt: skip


def toy_rows(conversational: bool = True) -> list[dict]:
    rows = []
    for question, answer in zip(TOY_QUESTIONS, TOY_ANSWERS, strict=True):
        chosen, rejected = f"It is {answer.upper()}.", f"it is {answer} I think"
        if conversational:
            rows.append(
                {
                    "prompt": [{"role": "user", "content": question}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                }
            )
        else:
            rows.append({"prompt": f"Q: {question}\nA:", "chosen": f" {chosen}", "rejected": f" {rejected}"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def toy_data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "toy.jsonl", toy_rows())


def tiny_config(model_dir: Path, data_path: Path, run_dir: Path, **sections) -> dict:
    """A config dict for a fast run on the tiny model; `sections` update the defaults per section."""
    config = {
        "model": {"path": str(model_dir), "lora": {"r": 4, "alpha": 8}},
        "data": {"train": str(data_path), "max_length": 64},
        "method": {"loss": "sigmoid", "beta": 0.1},
        "train": {"batch_size": 4, "max_steps": 2, "lr": 1e-3, "seed": 0},
        "eval": {"generations": 0, "before": False},
        "output": {"dir": str(run_dir), "save": ["adapter"]},
    }
    for section, values in sections.items():
        if values is None:
            config[section] = None
        else:
            config.setdefault(section, {}).update(values)
    return config


def trl_one_step_args(out_dir: Path, **settings) -> dict:
    """TRL trainer arguments for the agreement tests: one float32 CPU step on a batch of 4, logged, nothing saved."""
    return {
        "output_dir": str(out_dir),
        "per_device_train_batch_size": 4,
        "max_steps": 1,
        "logging_steps": 1,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        **settings,
    }


def _report_run(root: Path, model_dir: Path, name: str, method: dict | None = None, **sections) -> Path:
    """A finished tiny run (prefalign.train) on the toy pairs, held out as well, for the report tests."""
    import prefalign

    data = write_jsonl(root / "toy.jsonl", toy_rows())
    run_dir = root / name
    config = tiny_config(model_dir, data, run_dir, data={"train": str(data), "eval": str(data)}, **sections)
    if method is not None:
        config["method"] = method
    prefalign.train(config, quiet=True)
    return run_dir


@pytest.fixture(scope="session")
def policy_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A DPO run on the tiny model: 12 steps, eval every 4 and before training, two answers before/after."""
    return _report_run(
        tmp_path_factory.mktemp("report"),
        tiny_model_dir,
        "policy",
        train={"max_steps": 12, "eval_every": 4, "lr": 1e-2},
        eval={"generations": 2, "before": True, "max_new_tokens": 8},
    )


@pytest.fixture(scope="session")
def reward_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A Bradley–Terry reward model run on the tiny model: 6 steps, eval every 3 and before training."""
    return _report_run(
        tmp_path_factory.mktemp("report"),
        tiny_model_dir,
        "reward",
        method={"kind": "reward"},
        train={"max_steps": 6, "eval_every": 3},
        eval={"before": True},
    )
