"""reference.mode: precomputed — the same numbers as a live reference, a cache that later runs reuse, and misses
when the data or the reference change."""

import logging
import os
from pathlib import Path

import pytest
import torch

import prefalign
from prefalign.config import ConfigError, load_config
from prefalign.model.reference_cache import _write
from prefalign.training.metrics import read_metrics
from tests.conftest import make_tiny_model, tiny_config, toy_rows, write_jsonl

LOGGER = "prefalign.model.reference_cache"
COMPARED = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PREFALIGN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "reference-logps"


def run(model_dir, data_path, run_dir, caplog, **sections) -> tuple[prefalign.RunResult, list[str]]:
    """Train, and return the result with the cache module's log lines of this run."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        result = prefalign.train(tiny_config(model_dir, data_path, run_dir, **sections), quiet=True)
    return result, [r.getMessage() for r in caplog.records if r.name == LOGGER]


@pytest.mark.parametrize("kind", ["lora", "full", "unpaired"])
def test_cached_reference_logs_what_the_live_reference_logs(tiny_model_dir, toy_data, tmp_path, cache, caplog, kind):
    """Every train and eval record (and the before-training eval) of a precomputed run equals the live run's."""
    lora = kind != "full"
    settings = dict(
        data={"eval_fraction": 0.25},
        train={"max_steps": 3, "eval_every": 2},
        eval={"before": True, "generations": 0},
    )
    if not lora:
        settings.update(model={"lora": None}, output={"save": ["merged"]})
    if kind == "unpaired":  # one sequence per example, no KL term: 24 training rows, 8 held out
        settings.update(method={"loss": "apo_zero_unpaired"}, data={"eval_fraction": 0.25, "split_pairs": True})
    live_mode = "adapter" if lora else "model"
    live, _ = run(tiny_model_dir, toy_data, tmp_path / "live", caplog, reference={"mode": live_mode}, **settings)
    cached, lines = run(
        tiny_model_dir, toy_data, tmp_path / "cached", caplog, reference={"mode": "precomputed"}, **settings
    )
    train, held_out = (24, 8) if kind == "unpaired" else (12, 4)
    assert lines == [
        f"reference log-probs of train computed: {train} examples ({'adapter' if lora else 'model'})",
        f"reference log-probs of eval computed: {held_out} examples ({'adapter' if lora else 'model'})",
    ]

    live_records = read_metrics(tmp_path / "live" / "metrics.jsonl")
    cached_records = read_metrics(tmp_path / "cached" / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in cached_records] == [(r["step"], r["split"]) for r in live_records]
    assert [r["split"] for r in live_records].count("eval") == 2
    assert live_records[-1]["rewards/margins"] != 0.0  # training moved the policy away from the reference
    for a, b in zip(live_records, cached_records, strict=True):
        assert b.keys() == a.keys()
        for key in COMPARED:
            if key in a:  # a step of unpaired rows with one label has no rewards/rejected
                assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7, nan_ok=True), (a["step"], a["split"], key)
    for key in COMPARED:
        assert cached.before[key] == pytest.approx(live.before[key], rel=1e-6, abs=1e-7, nan_ok=True), key


def test_second_run_reads_the_cache_and_never_loads_the_reference(
    tiny_model_dir, toy_data, tmp_path, tokenizer, cache, caplog
):
    """Another beta and another loss reuse the values: the reference checkpoint is neither loaded nor run —
    the second run works with its weights made unreadable."""
    reference_dir = tmp_path / "other"
    make_tiny_model(tokenizer, seed=7).save_pretrained(reference_dir)
    settings = dict(
        reference={"mode": "precomputed", "path": str(reference_dir)},
        data={"eval_fraction": 0.25},
        train={"max_steps": 2},
    )
    first, lines = run(tiny_model_dir, toy_data, tmp_path / "first", caplog, **settings)
    assert lines[0] == f"loading the reference model {reference_dir}"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "reference log-probs of train computed",
        "reference log-probs of eval computed",
    ]
    # One file per dataset, under $PREFALIGN_CACHE, and no temp file left behind.
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and all(name.endswith(".safetensors") and not name.startswith(".") for name in files)
    assert abs(first.last_train["rewards/chosen"]) > 1e-3  # another model is the reference

    # Same names, sizes and mtimes, unreadable contents: a load would fail.
    weights = reference_dir / "model.safetensors"
    stat = weights.stat()
    weights.write_bytes(b"\0" * stat.st_size)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    for overrides in ({"method": {"beta": 0.3}}, {"method": {"loss": "ipo"}}):
        second, lines = run(tiny_model_dir, toy_data, tmp_path / "second", caplog, **settings, **overrides,
                            output={"overwrite": True})  # fmt: skip
        assert [line.split(" from ")[0] for line in lines] == [
            "reference log-probs of train read",
            "reference log-probs of eval read",
        ]
        assert second.after and "loss" in second.after  # evaluation read its reference values too
    assert sorted(p.name for p in cache.iterdir()) == files


def test_changed_data_or_reference_misses_the_cache(tiny_model_dir, toy_data, tmp_path, tokenizer, cache, caplog):
    from peft import LoraConfig, get_peft_model

    adapters = []
    for seed in (1, 2):
        sft = get_peft_model(make_tiny_model(tokenizer), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
        torch.manual_seed(seed)
        for name, p in sft.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.05)
        sft.save_pretrained(tmp_path / f"sft{seed}")
        adapters.append(str(tmp_path / f"sft{seed}"))
    other_model = tmp_path / "other"
    make_tiny_model(tokenizer, seed=7).save_pretrained(other_model)
    fewer_rows = write_jsonl(tmp_path / "fewer.jsonl", toy_rows()[:-1])
    changed_answer = toy_rows()
    changed_answer[3]["chosen"][0]["content"] = "It is LONDON."
    changed = write_jsonl(tmp_path / "changed.jsonl", changed_answer)

    base = dict(reference={"mode": "precomputed"}, train={"max_steps": 1}, output={"overwrite": True})
    cases = [
        ("first run", toy_data, {}, "computed"),
        ("same again", toy_data, {}, "read"),
        ("a row fewer", fewer_rows, {}, "computed"),
        ("one answer changed", changed, {}, "computed"),
        ("an SFT adapter", toy_data, {"model": {"adapter": adapters[0]}}, "computed"),
        ("that adapter again", toy_data, {"model": {"adapter": adapters[0]}}, "read"),
        ("another adapter", toy_data, {"model": {"adapter": adapters[1]}}, "computed"),
        ("that adapter merged (full fine-tuning)", toy_data,
         {"model": {"adapter": adapters[1], "lora": None}, "output": {"save": ["merged"], "overwrite": True}},
         "computed"),
        ("another model", toy_data, {"reference": {"mode": "precomputed", "path": str(other_model)}}, "computed"),
        ("LD-DPO reweights the reference", toy_data, {"method": {"ld_alpha": 0.5}}, "computed"),
        ("the base model without LoRA: the same reference", toy_data,
         {"model": {"lora": None}, "output": {"save": ["merged"], "overwrite": True}}, "read"),
    ]  # fmt: skip
    for name, data, sections, expected in cases:
        _, lines = run(tiny_model_dir, data, tmp_path / "run", caplog, **{**base, **sections})
        train_line = next(line for line in lines if line.startswith("reference log-probs of train"))
        assert train_line.split(" ")[4].rstrip(":") == expected, name


def test_auto_precomputes_when_the_run_covers_the_data():
    def auto(*overrides: str):
        return load_config({"data": {"train": "data.jsonl"}}, list(overrides))

    assert auto().resolved_reference_mode(100) == "precomputed"  # the default: 2 epochs
    assert auto("model.lora=null").resolved_reference_mode(100) == "precomputed"
    assert auto("train.epochs=0.5").resolved_reference_mode(100) == "adapter"  # scores only half: live is less
    assert auto("train.epochs=0.5", "model.lora=null").resolved_reference_mode(100) == "model"
    # max_steps: 10 steps of 8 cover 80 examples, not 100; with 2 processes 160 do
    assert auto("train.max_steps=10").resolved_reference_mode(100) == "adapter"
    assert auto("train.max_steps=10").resolved_reference_mode(100, world=2) == "precomputed"
    assert auto("train.max_steps=10").resolved_reference_mode() == "adapter"  # data size unknown
    # a KL term estimated per micro-batch cannot be precomputed; a reference-free loss needs none
    assert auto("method.loss=kto", "data.split_pairs=true").resolved_reference_mode(100) == "adapter"
    assert auto("method.loss=simpo").resolved_reference_mode(100) == "none"


def test_precomputed_refuses_kl_losses():
    with pytest.raises(ConfigError, match=r"reference\.mode: precomputed stores one reference log-prob per example"):
        load_config(
            {"data": {"train": "d.jsonl", "split_pairs": True}, "method": {"loss": "kto"}},
            ["reference.mode=precomputed"],
        )
    # an unpaired loss without a KL term is fine
    config = {"data": {"train": "d.jsonl", "split_pairs": True}, "method": {"loss": "apo_zero_unpaired"}}
    assert load_config(config, ["reference.mode=precomputed"]).resolved_reference_mode() == "precomputed"


def test_a_failed_write_leaves_neither_a_file_nor_a_temp_file(tmp_path):
    target = tmp_path / "cache" / "key.safetensors"
    with pytest.raises(Exception):  # noqa: B017 (safetensors' own error type): metadata values must be strings
        _write(target, torch.zeros(3, 2), torch.ones(3, 2, dtype=torch.long), {"split": 1})
    assert list(target.parent.iterdir()) == []
    _write(target, torch.zeros(3, 2), torch.ones(3, 2, dtype=torch.long), {"split": "train"})
    assert [p.name for p in target.parent.iterdir()] == ["key.safetensors"]
