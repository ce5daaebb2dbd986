"""Memory and speed of QLoRA (nf4 base, adamw_8bit) against bf16 LoRA and full fine-tuning, prefalign beside TRL.

    nice python benchmarks/quantized.py                        # SmolLM2-135M-Instruct and a 2-layer 1.7B-wide model
    python benchmarks/quantized.py --models tiny --steps 1 --warmup 1 --max-length 64   # smoke run

Cases, each engine on each model in its own subprocess so that peak resident memory (VmHWM) is its own:

- qlora: the base loaded in nf4 (double quantisation, BitsAndBytesConfig), LoRA r16/α32 on every linear layer,
  8-bit AdamW (prefalign `train.optimizer: adamw_8bit`, TRL `optim="adamw_bnb_8bit"`), the reference = the same
  quantised base with the adapter off;
- lora: the base in bf16, the same LoRA, torch AdamW, adapter-off reference;
- full: every weight trained, float32 weights, torch AdamW, a frozen copy as the reference (both engines).

TRL is `trl.DPOTrainer` 1.16 with the same BitsAndBytesConfig, LoRA, optimizer, sigmoid loss, batch, lr and
max_length; both engines use the same autocast (bf16 where this machine computes it fast, else float32:
prefalign's train.mixed_precision auto rule). prefalign runs on its defaults otherwise (layout auto).

Models: `smollm2-135m` (the real SmolLM2-135M-Instruct weights) and `wide` — SmolLM2-1.7B's shape (hidden 2048,
MLP 8192, 32 heads, vocab 49152, tied embeddings) with only `--wide-layers` (default 2) of its 24 decoder layers,
random weights (memory and speed do not depend on them): the whole 1.7B model's full fine-tuning does not fit a
shared 24 GiB machine beside TRL's reference copy. `tiny` is a 2-layer 64-wide model for smoke runs.

Measured: pairs/s (the median over steps after --warmup) and peak RSS. On a CPU, bitsandbytes' 4-bit matmul
dequantises each weight per call in plain torch, so QLoRA trades speed for memory there far more than on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from speed import generate_rows, machine, peak_rss_mib  # noqa: E402  (same data generator and memory probe)

CASES = ("qlora", "lora", "full")
ENGINES = ("prefalign", "trl")
LR = {"qlora": 5e-4, "lora": 5e-4, "full": 1e-5}
LORA = {"r": 16, "alpha": 32.0}
WIDE = {  # SmolLM2-1.7B's config.json, but for the number of layers
    "hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 32, "num_key_value_heads": 32,
    "vocab_size": 49152, "max_position_embeddings": 8192, "rope_theta": 130000, "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}  # fmt: skip
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 49152, "tie_word_embeddings": True}  # fmt: skip


def build_model(name: str, work: Path, layers: int) -> str:
    """A model directory: the cached real SmolLM2-135M, or a random one of the given shape (bf16 on disk)."""
    from prefalign.model.load import resolve_path

    real = resolve_path("builtin:smollm2-135m-instruct")
    if name == "smollm2-135m":
        return real
    path = work / f"{name}-{layers}"
    if (path / "config.json").is_file():
        return str(path)
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(real)
    shape = WIDE if name == "wide" else TINY
    config = LlamaConfig(**shape, num_hidden_layers=layers, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def bnb_config(torch: Any) -> Any:
    from transformers import BitsAndBytesConfig

    from prefalign.model.load import _compute_dtype

    # The same settings prefalign's model.quantization: nf4 gives (compute dtype: its `auto`).
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=_compute_dtype("auto"))  # fmt: skip


def run_prefalign(spec: dict) -> dict:
    import prefalign

    case = spec["case"]
    model: dict[str, Any] = {"path": spec["model"], "dtype": "float32", "lora": dict(LORA)}
    if case == "qlora":
        model.update(quantization="nf4", dtype="bfloat16")
    elif case == "lora":
        model["dtype"] = "bfloat16"
    else:
        model["lora"] = None
    config = {
        "model": model,
        "reference": {"mode": "model" if case == "full" else "adapter"},  # live, as TRL's
        "data": {"train": spec["data"], "max_length": spec["max_length"], "max_prompt_length": None},
        "method": {"loss": "sigmoid", "beta": 0.1, "rpo_alpha": None},
        "train": {"max_steps": spec["warmup"] + spec["steps"], "batch_size": spec["batch_size"], "lr": LR[case],
                  "schedule": "constant", "warmup_ratio": 0.0, "seed": 0, "mixed_precision": spec["precision"],
                  "optimizer": "adamw_8bit" if case == "qlora" else "adamw"},
        "eval": {"generations": 0, "before": False},
        "output": {"dir": spec["run_dir"], "save": [], "overwrite": True},
    }  # fmt: skip
    result = prefalign.train(config, quiet=True)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines() if line]
    return {"seconds": [spec["batch_size"] / r["examples_per_s"] for r in records if r.get("split") == "train"]}


def run_trl(spec: dict) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    datasets.disable_progress_bars()
    case = spec["case"]
    args = DPOConfig(
        output_dir=spec["run_dir"], per_device_train_batch_size=spec["batch_size"],
        max_steps=spec["warmup"] + spec["steps"], learning_rate=LR[case], lr_scheduler_type="constant",
        warmup_steps=0, max_grad_norm=1.0, weight_decay=0.0,
        optim="adamw_bnb_8bit" if case == "qlora" else "adamw_torch", beta=0.1, loss_type=["sigmoid"],
        max_length=spec["max_length"], bf16=spec["precision"] == "bf16", use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=False, seed=0, report_to="none", save_strategy="no", logging_steps=1,
        disable_tqdm=True,
    )  # fmt: skip
    kwargs: dict[str, Any] = {"dtype": torch.float32 if case == "full" else torch.bfloat16}
    if case == "qlora":
        kwargs.update(quantization_config=bnb_config(torch), device_map="cpu")
    model = AutoModelForCausalLM.from_pretrained(spec["model"], **kwargs)
    peft_config = None
    if case != "full":
        peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0, target_modules="all-linear",
                                 task_type="CAUSAL_LM")  # fmt: skip
    trainer = DPOTrainer(model=model, args=args, peft_config=peft_config,
                         train_dataset=datasets.load_dataset("json", data_files=spec["data"], split="train"),
                         processing_class=AutoTokenizer.from_pretrained(spec["model"]))  # fmt: skip
    seconds: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            seconds.append(time.perf_counter() - self.started)

    trainer.add_callback(StepTimer())
    trainer.train()
    return {"seconds": seconds}


def worker(spec_path: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    spec = json.loads(Path(spec_path).read_text())
    result = run_trl(spec) if spec["engine"] == "trl" else run_prefalign(spec)
    result["peak_rss_mib"] = peak_rss_mib()
    Path(spec["result"]).write_text(json.dumps(result))


def run_engine(spec: dict, work: Path) -> dict:
    name = f"{spec['engine']}-{spec['model_name']}-{spec['case']}"
    spec = {**spec, "run_dir": str(work / name), "result": str(work / f"{name}.json")}
    spec_path = work / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, __file__, "--worker", str(spec_path)], capture_output=True, text=True,
                          cwd=REPO)  # fmt: skip
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(Path(spec["result"]).read_text())
    timed = result["seconds"][spec["warmup"] :]
    return {"engine": spec["engine"], "model": spec["model_name"], "case": spec["case"],
            "pairs_per_s": statistics.median(spec["batch_size"] / s for s in timed),
            "peak_rss_mib": result["peak_rss_mib"], "timed_steps": len(timed)}  # fmt: skip


def print_table(rows: list[dict]) -> None:
    print(f"{'model':<13} {'case':<6} {'engine':<10} {'pairs/s':>8} {'peak RSS MiB':>12} {'×TRL pairs/s':>12} "
          f"{'×TRL RSS':>9}")  # fmt: skip
    trl = {(r["model"], r["case"]): r for r in rows if r["engine"] == "trl"}
    for r in rows:
        base = trl.get((r["model"], r["case"]))
        speed = f"{r['pairs_per_s'] / base['pairs_per_s']:.2f}×" if base and r is not base else ""
        memory = f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}×" if base and r is not base else ""
        print(f"{r['model']:<13} {r['case']:<6} {r['engine']:<10} {r['pairs_per_s']:>8.3f} "
              f"{r['peak_rss_mib']:>12.0f} {speed:>12} {memory:>9}")  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="smollm2-135m,wide", help="comma list of: smollm2-135m, wide, tiny")
    parser.add_argument("--wide-layers", type=int, default=2, help="decoder layers of the 1.7B-wide model")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of: {', '.join(CASES)}")
    parser.add_argument("--steps", type=int, default=3, help="measured optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="steps run first and not measured")
    parser.add_argument("--batch-size", type=int, default=2, help="pairs per step (both engines)")
    parser.add_argument("--max-length", type=int, default=256, help="longest prompt + answer, in tokens")
    parser.add_argument("--out", default=str(REPO / "runs" / "quantized"), help="where results.json is written")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return []
    import torch

    from prefalign.training.precision import resolve_precision

    precision, _ = resolve_precision("auto", torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    print(f"# {machine()}; autocast {precision}; batch {args.batch_size} pairs, max_length {args.max_length}, "
          f"{args.steps} measured steps after {args.warmup}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="prefalign-quantized-") as tmp:
        work = Path(tmp)
        data = work / "pairs.jsonl"
        rows_data = generate_rows("balanced", args.batch_size * (args.warmup + args.steps), args.max_length, 0)
        data.write_text("".join(json.dumps(row) + "\n" for row in rows_data))
        for model_name in args.models.split(","):
            model = build_model(model_name, work, args.wide_layers if model_name == "wide" else 2)
            for case in args.cases.split(","):
                for engine in ENGINES:
                    spec = {"engine": engine, "case": case, "model": model, "model_name": model_name,
                            "data": str(data), "steps": args.steps, "warmup": args.warmup,
                            "batch_size": args.batch_size, "max_length": args.max_length,
                            "precision": precision}  # fmt: skip
                    rows.append(run_engine(spec, work))
                    print(json.dumps(rows[-1]), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
