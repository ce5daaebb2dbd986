"""DeepSpeed ZeRO-2 and ZeRO-3 on two CPU processes (gloo) give the numbers of one process with the same global batch.

Each test launches a real `accelerate launch --config_file examples/accelerate/deepspeed_zeroN.yaml --num_processes 2
-m prefalign train` (DeepSpeed's CPU accelerator falls back to gloo without Intel's oneCCL bindings) and compares its
metrics.jsonl and saved weights with an in-process one-process run (tests/test_distributed.py's helpers). The first
DeepSpeed launch on a machine compiles DeepSpeed's shared-memory op (about a minute; cached in
~/.cache/torch_extensions).
"""

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO, tiny_config, toy_rows, write_jsonl
from tests.test_distributed import KEYS, free_port, one_thread_train, train_records

NO_DEEPSPEED = "deepspeed is not installed: pip install '.[distributed]' (make test installs it)"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(find_spec("deepspeed") is None, reason=NO_DEEPSPEED)]

# Rewards are beta × (policy − reference summed log-probs of ~-65): float32 rounds each sum by ~4e-6, and ZeRO-3 runs
# the LM head as a module (training.deepspeed_zero) where one process fuses it, so they agree to 1e-6 absolute
# (measured: 1.9e-7 on rewards of 0.02, which is 8.7e-6 relative). Everything else to 1e-5 relative (measured: loss
# 1e-7, grad_norm 2.4e-6: DeepSpeed sums the squares of its partitions in another order).
REWARDS = ("rewards/chosen", "rewards/rejected", "rewards/margins")


def assert_same_steps(one: list[dict], two: list[dict]) -> None:
    assert [r["step"] for r in two] == [r["step"] for r in one] == [1, 2, 3]
    for a, b in zip(one, two, strict=True):
        for key in KEYS:
            tolerance = {"abs": 1e-6} if key in REWARDS else {"rel": 1e-5, "abs": 1e-7}
            assert b[key] == pytest.approx(a[key], **tolerance), (a["step"], key)


def launch_deepspeed(tmp_path: Path, stage: int, config: dict) -> subprocess.CompletedProcess:
    path = tmp_path / f"zero{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "examples" / "accelerate" / f"deepspeed_zero{stage}.yaml"), "--num_processes", "2",
               "--main_process_port", str(free_port()), "-m", "prefalign", "train", str(path)]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)


CASES = {"zero2-lora": (2, True), "zero3-lora": (3, True), "zero3-full": (3, False)}


@pytest.mark.parametrize("case", CASES)
def test_deepspeed_on_two_processes_logs_and_saves_what_one_does(tmp_path, tiny_model_dir, case):
    """ZeRO-2 and ZeRO-3 × 2 processes × batch 2 = 1 process × batch 4: every step's loss, rewards, log-probs and
    gradient norm; rank 0 writes the adapter (LoRA) or the merged model (full fine-tuning, whose frozen reference
    ZeRO-3 partitions for inference) from the gathered weights, equal to the one-process run's."""
    from safetensors.torch import load_file

    stage, lora = CASES[case]
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    lr = 5e-3 if lora else 1e-3
    output = "adapter" if lora else "merged"

    def config(run: str, batch_size: int) -> dict:
        train = {"max_steps": 3, "lr": lr, "warmup_ratio": 0.0, "batch_size": batch_size, "mixed_precision": "no"}
        model = {} if lora else {"lora": None}
        reference = {} if lora else {"mode": "model"}  # full fine-tuning: a frozen copy of the starting policy
        return tiny_config(tiny_model_dir, data, tmp_path / run, train=train, model=model, reference=reference,
                           output={"save": [output]})  # fmt: skip

    one_thread_train(config("one", 4))
    out = launch_deepspeed(tmp_path, stage, config("two", 2))
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert_same_steps(train_records(tmp_path / "one"), train_records(tmp_path / "two"))
    result = json.loads((tmp_path / "two" / "result.json").read_text())
    sharding = f"DeepSpeed ZeRO-{stage}"
    assert result["distributed"] == {"type": "DEEPSPEED", "processes": 2, "backend": "gloo", "sharding": sharding}
    assert result["memory"]["processes"] == 2  # the plan is each process's, with ZeRO's shares split
    assert result["memory"]["plan"]["settings"]["sharding"] == {2: "gradients", 3: "parameters"}[stage]

    name = "adapter_model.safetensors" if lora else "model.safetensors"
    one_weights = load_file(tmp_path / "one" / output / name)
    two_weights = load_file(tmp_path / "two" / output / name)
    assert one_weights.keys() == two_weights.keys()
    # Adam's first steps divide each gradient by its own size (+ eps 1e-8): where a gradient is that small, the
    # float32 rounding of another reduction order moves the update by a fraction of lr (measured: at most 0.016 × lr,
    # one element in 8192). A save of the starting weights, of one partition or without a process's gradients is
    # off by about lr or more in most elements.
    for key, tensor in one_weights.items():  # full shapes: gathered from the partitions, not one process's part
        torch.testing.assert_close(two_weights[key], tensor, rtol=1e-4, atol=lr / 20, msg=key)


def test_deepspeed_refuses_what_it_cannot_do_before_loading(tmp_path, tiny_model_dir):
    """Checkpoints are not written under DeepSpeed yet: train.save_every is refused before any weight loads."""
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    train = {"max_steps": 2, "batch_size": 2, "save_every": 1}
    out = launch_deepspeed(tmp_path, 3, tiny_config(tiny_model_dir, data, tmp_path / "refused", train=train))
    assert out.returncode != 0
    said = " ".join((out.stdout + out.stderr).split())
    assert "train.save_every / train.resume: checkpoints are not written under DeepSpeed yet" in said
    assert not (tmp_path / "refused" / "metrics.jsonl").exists()
