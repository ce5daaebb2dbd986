"""Two processes on CPU (gloo) give the numbers of one process with the same global batch.

Each test launches a real `torchrun --nproc_per_node 2 -m prefalign train` (one thread per process) and compares
its metrics.jsonl with an in-process run of one process whose micro-batches hold both processes' examples.
"""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
import yaml

import prefalign
from prefalign.names import ConfigError
from prefalign.training.metrics import read_metrics
from tests.conftest import REPO, tiny_config, toy_rows, write_jsonl
from tests.test_kto import toy_unpaired

KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "grad_norm")
KTO_KEYS = (*KEYS, "kl", "label_accuracy")
REWARD_KEYS = ("loss", "accuracy", "margin", "mean_reward", "min_reward", "max_reward", "grad_norm")


def train_records(run_dir):
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]


def free_port() -> int:
    with socket.socket() as sock:  # torchrun's --master_port 0 leaves the processes waiting for each other
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(tmp_path, config: dict, processes: int = 2) -> subprocess.CompletedProcess:
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(free_port()), "-m", "prefalign", "train", str(path)]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def one_thread_train(config: dict):
    """prefalign.train in this process with one thread, as each launched process runs (same reduction order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return prefalign.train(config, quiet=True)
    finally:
        torch.set_num_threads(threads)


def assert_same_records(one: list[dict], two: list[dict], keys) -> None:
    assert [r["step"] for r in two] == [r["step"] for r in one]
    for a, b in zip(one, two, strict=True):
        for key in keys:
            assert key in a and key in b, (a["step"], key)
            # KTO's KL estimate is a small difference (~0.05) of summed log-probs (~-30): float32's rounding of
            # those, which batches of other widths give, is ~1e-6 on it (measured: 0.0458736 vs 0.0458727).
            # Pairing the completions otherwise than one process does moves it by ~1e-2.
            tolerance = {"abs": 1e-5} if key == "kl" else {"rel": 1e-5, "abs": 1e-7}
            assert b[key] == pytest.approx(a[key], **tolerance), (a["step"], key)


# (sections, rows, metrics compared, batch size × accumulation of one process, of each of two).
CASES = {
    "sigmoid": ({"method": {"loss": "sigmoid"}}, toy_rows, KEYS, (4, 1), (2, 1)),
    # KTO pairs each prompt with another example's completion and estimates the KL over the micro-step (the
    # k-th micro-batch of every process): here every pair's partner is in the other process's micro-batch.
    "kto": ({"method": {"loss": "kto"}}, toy_unpaired, KTO_KEYS, (4, 2), (2, 2)),
    "reward": ({"method": {"kind": "reward", "loss": "bradley_terry"}}, toy_rows, REWARD_KEYS, (4, 1), (2, 1)),
}


@pytest.mark.parametrize("case", CASES)
def test_two_processes_log_what_one_does(tmp_path, tiny_model_dir, case):
    sections, rows, keys, (one_batch, one_accum), (two_batch, two_accum) = CASES[case]
    data = write_jsonl(tmp_path / "toy.jsonl", rows())
    common = {"max_steps": 3, "lr": 2e-2 if case == "kto" else 5e-3, "warmup_ratio": 0.0}

    def config(run: str, batch_size: int, accum: int) -> dict:
        train = {**common, "batch_size": batch_size, "grad_accum": accum}
        return tiny_config(tiny_model_dir, data, tmp_path / run, train=train, **sections)

    one_thread_train(config("one", one_batch, one_accum))
    out = launch(tmp_path, config("two", two_batch, two_accum))
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    one, two = train_records(tmp_path / "one"), train_records(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2, 3]
    assert_same_records(one, two, keys)
    if case == "kto":  # the estimate is not the trivial one (the LoRA adapter starts as a no-op: KL 0 at step 1)
        assert max(r["kl"] for r in one) > 1e-3
    # result.json and the model card say how the run was spread
    result = json.loads((tmp_path / "two" / "result.json").read_text())
    assert result["processes"] == 2
    sharding = "none (every process holds the whole model)"
    assert result["distributed"] == {"type": "MULTI_CPU", "processes": 2, "backend": "gloo", "sharding": sharding}
    assert result["memory"]["processes"] == 2 and result["memory"]["plan"]["settings"]["sharding"] == "none"
    one_result = json.loads((tmp_path / "one" / "result.json").read_text())
    assert one_result["distributed"]["type"] == "NO" and one_result["distributed"]["processes"] == 1
    card = (tmp_path / "two" / "README.md").read_text()
    assert "| processes | 2 (MULTI_CPU, gloo); sharding: none (every process holds the whole model) |" in card


def test_kl_partners_cross_processes_as_one_process_pairs():
    """KTO's mismatched completions: the previous example of the micro-step (all processes' k-th micro-batches)."""
    from prefalign.data.layout import sequences_of
    from prefalign.training.loop import kl_partners, micro_batches

    step = [17, 3, 9, 25, 11, 6, 30, 2]
    # one process, accumulation 2: micro-batches [17, 3, 9, 25] and [11, 6, 30, 2], each cycled on its own
    assert kl_partners(step, 1, 4) == {17: 25, 3: 17, 9: 3, 25: 9, 11: 2, 6: 11, 30: 6, 2: 30}
    # two processes, batch 2: rank 0 holds [17, 9] then [11, 30], rank 1 [3, 25] then [6, 2]: the same pairs
    assert [p.tolist() for p in micro_batches(step, 0, 2, 2)] == [[17, 9], [11, 30]]
    assert kl_partners(step, 2, 2) == kl_partners(step, 1, 4)
    # on one process the pairs are the batch's own shift, so a batch built without partners scores the same
    examples = [{"prompt_ids": [i], "completion_ids": [100 + i]} for i in step[:4]]
    partners = kl_partners(step, 1, 4)
    named = [{**ex, "kl_completion_ids": [100 + partners[ex["prompt_ids"][0]]]} for ex in examples]
    assert sequences_of(named, kl_completions=True) == sequences_of(examples, kl_completions=True)


def continued(run_dir, copy_to):
    """A copy of a finished 4-step run cut back to its step-2 checkpoint: what a run killed after it leaves."""
    shutil.copytree(run_dir, copy_to)
    for name in ("adapter", "merged", "result.json", "README.md"):
        path = copy_to / name
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert [p.name for p in (copy_to / "checkpoints").iterdir()] == ["step-2"]
    return copy_to


@pytest.mark.slow
def test_resume_on_another_number_of_processes(tmp_path, tiny_model_dir):
    """1 → 2 and 2 → 1 processes with the same examples a step continue the straight run's losses; another
    number of examples a step is refused before the model loads, naming the checkpoint's processes."""
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())

    def config(run: str, batch_size: int, **train) -> dict:
        settings = {"max_steps": 4, "save_every": 2, "lr": 5e-3, "warmup_ratio": 0.0, "batch_size": batch_size}
        return tiny_config(tiny_model_dir, data, tmp_path / run, train={**settings, **train})

    one_thread_train(config("one", 4))  # the straight run: 1 process × 4
    out = launch(tmp_path, config("two", 2))  # 2 processes × 2
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    straight = train_records(tmp_path / "one")
    assert_same_records(straight, train_records(tmp_path / "two"), KEYS)

    # 1 → 2: the 1-process checkpoint continued by two processes
    continued(tmp_path / "one", tmp_path / "one-two")
    out = launch(tmp_path, config("one-two", 2, resume=True))
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert "written by 1 process(es); continuing on 2 with the same 4 examples a step" in " ".join(out.stdout.split())
    assert_same_records(straight, train_records(tmp_path / "one-two"), KEYS)

    # 2 → 1: the 2-process checkpoint continued by one process
    continued(tmp_path / "two", tmp_path / "two-one")
    one_thread_train(config("two-one", 4, resume=True))
    assert_same_records(straight, train_records(tmp_path / "two-one"), KEYS)

    # 2 processes × 2 resumed as 1 × 2: 2 examples a step instead of 4
    continued(tmp_path / "two", tmp_path / "refused")
    with pytest.raises(ConfigError) as refused:
        one_thread_train(config("refused", 2, resume=True))
    message = str(refused.value)
    assert "step-2 was written by 2 process(es) taking 4 examples a step" in message
    assert "this launch (1 process(es) × batch_size 2 × grad_accum 1) takes 2" in message
    assert "batch_size × grad_accum = 2" in message


@pytest.mark.slow
def test_two_processes_share_the_reference_pass(tmp_path, tiny_model_dir, monkeypatch, caplog):
    """reference.mode precomputed on 2 processes: each scores half the examples once, rank 0 writes the cache,
    which holds what one process computes, and training logs what one process logs; a later run reuses it."""
    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())

    def config(run: str, batch_size: int) -> dict:
        train = {"max_steps": 3, "lr": 5e-3, "warmup_ratio": 0.0, "batch_size": batch_size}
        return tiny_config(tiny_model_dir, data, tmp_path / run, train=train, reference={"mode": "precomputed"})

    monkeypatch.setenv("PREFALIGN_CACHE", str(tmp_path / "cache-one"))
    one_thread_train(config("one", 4))
    monkeypatch.setenv("PREFALIGN_CACHE", str(tmp_path / "cache-two"))
    out = launch(tmp_path, config("two", 2))
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert "train scored by the reference and cached (examples per process: 8 + 8)" in " ".join(out.stdout.split())
    straight = train_records(tmp_path / "one")
    assert_same_records(straight, train_records(tmp_path / "two"), KEYS)
    [one_file] = (tmp_path / "cache-one" / "reference-logps").iterdir()
    [two_file] = (tmp_path / "cache-two" / "reference-logps").iterdir()
    assert one_file.name == two_file.name  # the same key: the process count is not part of it
    one_table, two_table = load_file(one_file), load_file(two_file)
    assert torch.equal(two_table["lengths"], one_table["lengths"]) and two_table["logps"].shape == (16, 2)
    torch.testing.assert_close(two_table["logps"], one_table["logps"], rtol=1e-5, atol=1e-6)

    written = two_file.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="prefalign.model.reference_cache"):
        one_thread_train(config("again", 4))  # reads what the two processes wrote
    assert f"reference log-probs of train read from {two_file}" in caplog.text
    assert "computed" not in caplog.text and two_file.stat().st_mtime_ns == written
    assert_same_records(straight, train_records(tmp_path / "again"), KEYS)


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_fsdp2_on_two_processes_logs_what_one_does(tmp_path, tiny_model_dir, lora):
    """train.fsdp on 2 CPU processes: prefalign shards each decoder layer with fully_shard (accelerate does not
    on CPU); losses, rewards and gradient norms are one process's, and rank 0 writes the output from the full
    weights: the adapter (LoRA) or the merged model (full fine-tuning) equals the one-process run's. The LoRA
    run also checkpoints each process's shards (torch.distributed.checkpoint), and resumes from them."""
    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    model = {} if lora else {"lora": None}
    output = "adapter" if lora else "merged"

    def config(run: str, batch_size: int, **extra) -> dict:
        train = {"max_steps": 4 if lora else 3, "lr": 5e-3 if lora else 1e-3, "warmup_ratio": 0.0,
                 "batch_size": batch_size, "fsdp": True, "mixed_precision": "no", **extra}  # fmt: skip
        # full fine-tuning: the reference is a frozen copy (mode model), sharded beside the policy
        reference = {} if lora else {"mode": "model"}
        return tiny_config(tiny_model_dir, data, tmp_path / run, train=train, model=model, reference=reference,
                           output={"save": [output]})  # fmt: skip

    checkpointed = {"save_every": 2} if lora else {}
    one_thread_train(config("one", 4, **checkpointed))  # one process: train.fsdp has nothing to shard across
    out = launch(tmp_path, config("two", 2, **checkpointed))
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    straight = train_records(tmp_path / "one")
    assert_same_records(straight, train_records(tmp_path / "two"), KEYS)
    result = json.loads((tmp_path / "two" / "result.json").read_text())
    assert result["distributed"]["sharding"] == "FSDP2 per decoder layer, applied by prefalign (2 layers)"
    # the memory plan is each process's, with the sharded parts split (tests/test_memory_plan.py has the arithmetic)
    assert result["memory"]["per_process"] and result["memory"]["processes"] == 2
    assert result["memory"]["plan"]["settings"]["sharding"] == "parameters"
    heading = "Memory plan (per process, 2 processes, weights, gradients and optimizer state sharded)"
    assert heading in " ".join(out.stdout.split())
    one_file = "adapter_model.safetensors" if lora else "model.safetensors"
    one_weights = load_file(tmp_path / "one" / output / one_file)
    two_weights = load_file(tmp_path / "two" / output / one_file)
    assert one_weights.keys() == two_weights.keys()
    for name, tensor in one_weights.items():  # full shapes: written from the gathered weights, not one shard
        torch.testing.assert_close(two_weights[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    if not lora:
        return

    step = tmp_path / "two" / "checkpoints" / "step-2"
    assert not (step / "trainable.safetensors").exists() and (step / "sharded" / ".metadata").is_file()
    assert len(list((step / "sharded").glob("*.distcp"))) == 2  # one file of shards per process
    manifest = json.loads((step / "manifest.json").read_text())
    assert "sharded/.metadata" in manifest and "scheduler.pt" in manifest
    continued(tmp_path / "two", tmp_path / "resumed")
    out = launch(tmp_path, config("resumed", 2, save_every=2, resume=True))
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert_same_records(straight, train_records(tmp_path / "resumed"), KEYS)
    # one unsharded process (the same 4 examples a step) cannot read the shards: refused, saying why
    continued(tmp_path / "two", tmp_path / "unsharded")
    with pytest.raises(ConfigError, match=r"written by a sharded \(FSDP\) run and this is an unsharded one"):
        one_thread_train(config("unsharded", 4, save_every=2, resume=True, fsdp=False))


@pytest.mark.slow
def test_accelerate_configs_launch_one_group_on_cpu(tmp_path, tiny_model_dir):
    """examples/accelerate/ddp.yaml and fsdp2.yaml under `accelerate launch` on this CPU-only machine: two processes
    in one gloo group; with the FSDP config, which accelerate does not apply on CPU, prefalign shards."""
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    results = {}
    for name in ("ddp", "fsdp2"):
        path = tmp_path / f"{name}.yaml"
        train = {"max_steps": 1, "batch_size": 2}
        path.write_text(yaml.safe_dump(tiny_config(tiny_model_dir, data, tmp_path / name, train=train)))
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                   str(REPO / "examples" / "accelerate" / f"{name}.yaml"), "--num_processes", "2",
                   "--main_process_port", str(free_port()), "-m", "prefalign", "train", str(path)]  # fmt: skip
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert out.returncode == 0, (name, out.stdout[-3000:], out.stderr[-3000:])
        results[name] = json.loads((tmp_path / name / "result.json").read_text())["distributed"]
    assert results["ddp"] == {"type": "MULTI_CPU", "processes": 2, "backend": "gloo",
                              "sharding": "none (every process holds the whole model)"}  # fmt: skip
    assert results["fsdp2"]["type"] == "MULTI_CPU" and results["fsdp2"]["processes"] == 2  # accelerate: no FSDP on CPU
    assert results["fsdp2"]["sharding"] == "FSDP2 per decoder layer, applied by prefalign (2 layers)"
