"""What FSDP2 saves: each process's peak RSS of the same 2-process full fine-tuning with DDP and with FSDP2.

    OMP_NUM_THREADS=1 python benchmarks/fsdp_memory.py                  # SmolLM2-135M-Instruct, 3 steps (minutes)
    python benchmarks/fsdp_memory.py --model DIR --steps 2             # another model

Runs `torchrun --nproc_per_node 2 -m prefalign train` twice on this machine's CPU (gloo): data parallel (every
process holds the model, its gradients and AdamW's state) and train.fsdp (prefalign's fully_shard per decoder
layer: each process holds half of them). Full fine-tuning, float32, SimPO (reference-free: the trained model is
all there is), batch 1 pair per process, data/quickstart (max_length 256). Each process
measures its own peak (VmHWM) and its resident memory after the imports; the script prints both per process,
the memory plan's estimate of each (result.json) and FSDP2's ratio to DDP. Writes under --out only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from speed import status_mib  # noqa: E402  (the same /proc reader as the speed benchmark)


def worker(config_path: str, out_dir: str) -> None:
    """One launched process: train, then write its peak (VmHWM) and its resident memory after the imports."""
    import prefalign
    import prefalign.run  # every import a run makes, before the baseline

    baseline = status_mib("VmRSS")
    result = prefalign.train(config_path, quiet=True)
    peak = status_mib("VmHWM")
    rank = int(os.environ.get("RANK", "0"))
    planned = (result.memory or {}).get("plan", {}).get("peak_bytes", 0) / 2**20
    record = {"rank": rank, "after_imports_mib": baseline, "peak_mib": peak, "plan_peak_mib": planned}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(record))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(name: str, config: dict, out: Path) -> list[dict]:
    run_out = out / name
    run_out.mkdir(parents=True, exist_ok=True)
    config = {**config, "output": {**config["output"], "dir": str(run_out / "run")}}
    path = run_out / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("OMP_NUM_THREADS", "1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), __file__, "--worker", str(path), str(run_out)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    (run_out / "log.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"{name} failed (exit {done.returncode}): see {run_out / 'log.txt'}\n{done.stderr[-2000:]}")
    return [json.loads((run_out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--out", default="runs/fsdp-memory")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    out = Path(args.out).resolve()
    train = {"batch_size": 1, "max_steps": args.steps, "lr": 1e-5, "warmup_ratio": 0.0, "seed": 0,
             "mixed_precision": "no", "memory": "off"}  # fmt: skip
    from prefalign.model.load import resolve_path

    model = resolve_path(args.model)  # a built-in model converted once, here: two processes would race to
    config = {
        "model": {"path": str(model), "lora": None},
        "data": {"train": str(ROOT / "data" / "quickstart" / "train.jsonl"), "max_length": args.max_length},
        "method": {"loss": "simpo"},  # reference-free: no reference pass before training, nothing else to hold
        "train": train,
        "eval": {"generations": 0, "before": False},
        "output": {"save": [], "overwrite": True},
    }
    runs = {}
    for name, fsdp in (("ddp", False), ("fsdp2", True)):
        runs[name] = launch(name, {**config, "train": {**config["train"], "fsdp": fsdp}}, out)
    print(f"{'run':6} {'rank':>4} {'after imports MiB':>18} {'peak RSS MiB':>13} {'above imports':>14} {'plan MiB':>9}")
    for name, ranks in runs.items():
        for r in ranks:
            above = r["peak_mib"] - r["after_imports_mib"]
            print(f"{name:6} {r['rank']:>4} {r['after_imports_mib']:>18.0f} {r['peak_mib']:>13.0f} {above:>14.0f} "
                  f"{r['plan_peak_mib']:>9.0f}")  # fmt: skip
    for rank in (0, 1):
        ddp, fsdp = runs["ddp"][rank], runs["fsdp2"][rank]
        peak = fsdp["peak_mib"] / ddp["peak_mib"]
        above = (fsdp["peak_mib"] - fsdp["after_imports_mib"]) / (ddp["peak_mib"] - ddp["after_imports_mib"])
        print(f"rank {rank}: FSDP2 / DDP peak RSS {peak:.2f}×, above the imports {above:.2f}×")
    (out / "summary.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
