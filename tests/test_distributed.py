"""Two processes on CPU (gloo) give the numbers of one process with the same global batch.

Each test launches a real `torchrun --nproc_per_node 2 -m prefalign train` (one thread per process) and compares
its metrics.jsonl with an in-process run of one process whose micro-batch holds both processes' examples.
"""

import os
import socket
import subprocess
import sys

import pytest
import yaml

import prefalign
from prefalign.training.metrics import read_metrics
from tests.conftest import REPO, tiny_config, toy_rows, write_jsonl

KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "grad_norm")


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


# kto is not here yet: its KL term pairs each prompt with another completion of the same micro-batch, so two
# processes pair differently from one, and each clamps its own estimate (TRL all-reduces it before clamping).
@pytest.mark.parametrize("sections", [{"method": {"loss": "sigmoid"}}], ids=["sigmoid"])
def test_two_processes_log_what_one_does(tmp_path, tiny_model_dir, sections):
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    common = {"max_steps": 3, "lr": 5e-3, "warmup_ratio": 0.0}

    def config(run: str, batch_size: int) -> dict:
        return tiny_config(tiny_model_dir, data, tmp_path / run, train={**common, "batch_size": batch_size},
                           **{k: v for k, v in sections.items()})  # fmt: skip

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prefalign.train(config("one", 4), quiet=True)
    finally:
        torch.set_num_threads(threads)
    out = launch(tmp_path, config("two", 2))
    assert out.returncode == 0, out.stderr[-4000:]
    one, two = train_records(tmp_path / "one"), train_records(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2, 3]
    for a, b in zip(one, two, strict=True):
        for key in KEYS:
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["step"], key)
