"""Training speed: prefalign against TRL 1.16's DPOTrainer on the same model, data and hyper-parameters.

    python benchmarks/speed.py                                   # SmolLM2-135M-Instruct, LoRA and full, 3 shapes
    python benchmarks/speed.py --cases lora --shapes balanced --steps 4 --warmup 1
    python benchmarks/speed.py --model tiny --max-length 256 --steps 3 --warmup 1 --precision fp32   # smoke run
    python benchmarks/speed.py --cases lora --shapes answer_heavy --profile   # where each engine's time goes
    python benchmarks/speed.py --memory --precision fp32 --shapes prompt_heavy_long,answer_heavy_long   # issue 19

For each case (LoRA, full fine-tuning) and data shape the script trains, each in its own subprocess so that peak
resident memory (VmHWM) is the engine's own:

- trl: `trl.DPOTrainer`, sigmoid DPO, its live reference (the policy with the adapter disabled under LoRA, a
  frozen copy for full fine-tuning);
- prefalign: `prefalign.train` with the same loss (no RPO term) and the same live reference, pinned
  (reference.mode adapter / model: auto would precompute a run that covers its data); layout on its default;
- prefalign-cached: `reference.mode: precomputed`, run twice on a fresh cache, each in its own process: the
  first scores the data with the reference and caches it, the second (measured) reuses it with no reference
  model loaded;
- trl-cached: TRL's own `precompute_ref_log_probs`, run the same way (TRL caches the reference log-probs beside
  the dataset's cache files, so its second run reuses them too): the like-for-like row for prefalign-cached;
- prefalign-unfused (only with --engines): prefalign with train.fused_mlp off, to measure what the fused gated
  MLP saves (`--engines trl,prefalign,prefalign-unfused`).

Both engines get the same float32 weights, the same generated pairs (TRL's conversational format, which
prefalign reads as it is), batch size, learning rate (constant, no warm-up), AdamW, gradient clipping at 1,
max_length with nothing truncated, precision (autocast) and gradient checkpointing (non-reentrant) setting.
--precision auto (the default) is bf16 autocast where the machine computes bf16 fast and float32 elsewhere
(prefalign's own train.mixed_precision auto rule, applied to both engines).

Data shapes, lengths varying row to row (seeded): prompt_heavy (a multi-turn chat whose prompt is ~4× each
answer), balanced (prompt ≈ answer), answer_heavy (answers ~4× the prompt).

Per step: seconds (prefalign: from metrics.jsonl's examples_per_s; TRL: a callback around each optimizer step),
pairs, scored tokens (the answer tokens each engine scores; TRL also scores the newline its template prints
after each end-of-turn, ~1 token per answer) and distinct tokens (prompt once + both answers). The first
--warmup steps are not counted; the table gives the median over the other steps of each rate.

MFU: useful FLOPs over the matmul peak this script measures (a large float32 and bf16 matmul, same threads).
Useful FLOPs per distinct token: 6·N for the policy under full fine-tuning, 4·N under LoRA (no weight gradient
for frozen weights), + 2·N for a live reference forward; N is the base model's parameter count (embeddings
included). Prompts scored twice, padding and recomputation (gradient checkpointing) are not useful work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = "builtin:smollm2-135m-instruct"
CASES = ("lora", "full")
SHAPES = {  # share of (prompt, each answer) in a prompt + answer sequence; multi-turn prompt
    "prompt_heavy": (0.8, 0.2, True),
    "balanced": (0.5, 0.5, False),
    "answer_heavy": (0.2, 0.8, False),
    # The same at 4× the tokens (--max-length × 4): where activations, not weights, set the peak (issue 19).
    "prompt_heavy_long": (0.8, 0.2, True),
    "answer_heavy_long": (0.2, 0.8, False),
}
DEFAULT_SHAPES = ("prompt_heavy", "balanced", "answer_heavy")  # the long ones need --shapes (12-24 GB for TRL)
LONG = 4  # the _long shapes' length factor
# --memory: the settings compared, per case and shape: (engine, gradient checkpointing, prefalign train.memory).
MEMORY_VARIANTS = (
    ("trl", False, None),
    ("trl", True, None),
    ("prefalign", False, "auto"),
    ("prefalign", True, "off"),
    ("prefalign", False, "off"),
)
ENGINES = ("trl", "prefalign", "prefalign-cached", "trl-cached", "prefalign-unfused")
DEFAULT_ENGINES = ENGINES[:4]  # prefalign-unfused (train.fused_mlp off) only when asked for
CACHED = ("prefalign-cached", "trl-cached")  # a fill run first scores the data with the reference; the next reuses it
# The recipe's learning rates when the tables were measured, for both engines (the LoRA default is 3e-4 since
# 2026-12-04; a rate does not change what a step costs, so the measured rows stand).
LR = {"lora": 5e-4, "full": 1e-5}
LORA = {"r": 16, "alpha": 32.0}  # prefalign's default adapter shape, all linear layers
TEXT = (  # the words generated pairs are made of: most are one token with a leading space
    "the model answers a question about data and time with care while people read what it writes in short "
    "clear lines because every answer should explain its reason first then give one example from real work "
    "so that a reader who never saw the topic can follow each step without guessing what comes next or why "
    "training changes which answer sounds better to someone who asked for help with code numbers or plans"
)
WORDS = TEXT.split()


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------
def text(rng: random.Random, tokens: int) -> str:
    """About `tokens` tokens of plain English words (one token each with a leading space), in sentences."""
    words = [rng.choice(WORDS) for _ in range(max(1, tokens - tokens // 12))]
    sentences = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, len(words), 12)]
    return " ".join(sentences)


def generate_rows(shape: str, count: int, max_length: int, seed: int) -> list[dict]:
    """TRL conversational pairs whose prompt + answer takes ~45% of max_length (±40% per row)."""
    prompt_share, answer_share, multi_turn = SHAPES[shape]
    rng = random.Random(f"{shape}-{seed}")
    mean = 0.45 * max_length * (LONG if shape.endswith("_long") else 1)
    rows = []
    for _ in range(count):
        size = mean * rng.uniform(0.6, 1.4)
        prompt_tokens = int(size * prompt_share)
        if multi_turn:  # three user turns and two assistant turns before the answer
            parts = [max(4, int(prompt_tokens * w)) for w in (0.3, 0.15, 0.25, 0.1, 0.2)]
            roles = ("user", "assistant", "user", "assistant", "user")
            prompt = [{"role": r, "content": text(rng, n)} for r, n in zip(roles, parts, strict=True)]
        else:
            prompt = [{"role": "user", "content": text(rng, prompt_tokens)}]
        answers = [int(size * answer_share * rng.uniform(0.7, 1.3)) for _ in range(2)]
        rows.append(
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": text(rng, answers[0])}],
                "rejected": [{"role": "assistant", "content": text(rng, answers[1])}],
            }
        )
    return rows


def token_lengths(path: Path, tokenizer: Any, max_length: int) -> list[tuple[int, int, int]]:
    """(prompt, chosen, rejected) token counts of every row as prefalign renders them, untruncated."""
    from prefalign.config import DataConfig, DataSource
    from prefalign.data.check import render_settings
    from prefalign.data.load import canonical_rows
    from prefalign.data.render import tokenize_rows

    canonical, _ = canonical_rows([DataSource(path=str(path))], "auto", skip_bad_rows=False)
    settings = render_settings(DataConfig(train=str(path), max_length=10**6, max_prompt_length=None))
    tokenized = tokenize_rows(canonical, tokenizer, settings)[0]
    return [
        (len(p), len(c), len(r))
        for p, c, r in zip(tokenized["prompt_ids"], tokenized["chosen_ids"], tokenized["rejected_ids"], strict=True)
    ]


# ---------------------------------------------------------------------------------------------------------
# Model and machine
# ---------------------------------------------------------------------------------------------------------
def tiny_model(out: Path) -> str:
    """A 4-layer random Llama with SmolLM2's tokenizer (and template), for smoke runs."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from prefalign.model.load import resolve_path

    path = out / "tiny-model"
    if (path / "config.json").is_file():
        return str(path)
    import torch

    tokenizer = AutoTokenizer.from_pretrained(resolve_path(DEFAULT_MODEL))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def machine() -> str:
    """The CPU (model, cores, whether it has native bf16) and the GPU if any, as one line for the table's header."""
    import torch

    cpu, flags = "unknown CPU", set()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu == "unknown CPU":
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    bf16 = "native bf16" if flags & {"avx512_bf16", "amx_bf16"} else "no native bf16"
    line = f"machine: {cpu}, {os.cpu_count()} cores, {isa}, {bf16}, torch {torch.__version__}"
    if torch.cuda.is_available():
        line += f", GPU {torch.cuda.get_device_name()}"
    return line


def matmul_peak(dtype_name: str, size: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of the best of `repeat` [size×size]·[size×size] matmuls in `dtype_name`, after a warm-up, on the
    device the engines train on (the GPU when there is one: a CPU peak would put a GPU run's MFU in the thousands)."""
    import torch

    dtype = getattr(torch, dtype_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        size = max(size, 8192)  # 2048² takes microseconds on a GPU: too short to time, far below its peak
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


# ---------------------------------------------------------------------------------------------------------
# Engines (each runs in a subprocess: `speed.py --worker SPEC`)
# ---------------------------------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def parameter_count(model: Any) -> int:
    """The base model's parameters (tied weights once), without LoRA's."""
    return sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name)


def prefalign_config(spec: dict) -> dict:
    lora = spec["case"] == "lora"
    reference = "precomputed" if spec["engine"] == "prefalign-cached" else ("adapter" if lora else "model")
    return {
        "model": {"path": spec["model"], "dtype": "float32", "lora": dict(LORA) if lora else None},
        "reference": {"mode": reference},
        "data": {"train": spec["data"], "max_length": spec["max_length"] * spec.get("length_factor", 1),
                 "max_prompt_length": None,
                 "layout": spec.get("layout", "auto")},
        "method": {"loss": "sigmoid", "beta": 0.1, "rpo_alpha": None},
        "train": {
            "max_steps": spec["warmup"] + spec["steps"], "batch_size": spec["batch_size"], "lr": LR[spec["case"]],
            "schedule": "constant", "warmup_ratio": 0.0, "max_grad_norm": 1.0, "seed": spec["seed"],
            "mixed_precision": "bf16" if spec["precision"] == "bf16" else "no",
            "gradient_checkpointing": spec["gradient_checkpointing"], "log_every": 1,
            "memory": spec.get("memory") or "off",
            "fused_mlp": spec["engine"] != "prefalign-unfused",
        },
        "eval": {"generations": 0, "before": False},
        "output": {"dir": spec["run_dir"], "save": [], "overwrite": True},
    }  # fmt: skip


class Profile:
    """--profile: torch.profiler over the measured steps (from the first after warm-up to the end of training);
    the operators that took the most time, by self CPU time, are written to spec["profile"]."""

    def __init__(self, spec: dict):
        self.path = spec.get("profile")
        self.profiler = None

    def start(self) -> None:
        if self.path and self.profiler is None:
            import torch

            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profiler.start()

    def stop(self) -> None:
        if self.profiler is None:
            return
        self.profiler.stop()
        averages = self.profiler.key_averages()
        table = averages.table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=60)
        Path(self.path).write_text(table)
        self.profiler = None


def run_prefalign(spec: dict) -> dict:
    import prefalign
    import prefalign.run
    from prefalign.training import loop

    # Record what each step trains on (the loop draws its examples with step_examples) and the model.
    seen: dict[str, Any] = {"steps": []}
    fit, step_examples = loop.fit, loop.step_examples

    def recording_fit(training, *args, **kwargs):  # run.Run.fit calls loop.fit(training, cfg, accelerator, ...)
        seen["train_data"], seen["scorer"] = training.train_data, training.scorer
        return fit(training, *args, **kwargs)

    def recording_step_examples(*args, **kwargs):
        indices = step_examples(*args, **kwargs)
        seen["steps"].append(indices)
        if len(seen["steps"]) == spec["warmup"] + 1:
            profiler.start()
        return indices

    prefalign.run.fit, loop.step_examples = recording_fit, recording_step_examples
    profiler = Profile(spec)
    started = time.perf_counter()
    result = prefalign.train(prefalign_config(spec), quiet=True)
    run_seconds = time.perf_counter() - started
    profiler.stop()
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines() if line]
    records = [r for r in records if r.get("split") == "train"]
    data = seen["train_data"]
    steps = []
    for record, indices in zip(records, seen["steps"], strict=True):
        rows = data.select(indices)
        seconds = len(indices) / record["examples_per_s"]
        distinct = sum(len(p) + len(c) + len(r) for p, c, r in zip(rows["prompt_ids"], rows["chosen_ids"],
                                                                   rows["rejected_ids"], strict=True))  # fmt: skip
        scored = round(record["scored_tokens_per_s"] * seconds)
        steps.append({"seconds": seconds, "pairs": len(indices), "scored": scored, "distinct": distinct})
    model = seen["scorer"].model
    memory = json.loads((result.run_dir / "result.json").read_text()).get("memory") or {}
    return {
        "memory_choice": memory.get("message"),  # what train.memory chose, and why
        "steps": steps,
        "parameters": parameter_count(model),
        "run_seconds": run_seconds,
    }


def run_trl(spec: dict) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers import logging as hf_logging
    from trl import DPOConfig, DPOTrainer

    from prefalign.model.load import hub_kernels

    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    lora = spec["case"] == "lora"
    gc = spec["gradient_checkpointing"]
    config = DPOConfig(
        output_dir=spec["run_dir"],
        per_device_train_batch_size=spec["batch_size"],
        gradient_accumulation_steps=1,
        max_steps=spec["warmup"] + spec["steps"],
        learning_rate=LR[spec["case"]],
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=1.0,
        weight_decay=0.0,
        optim="adamw_torch",  # prefalign's torch.optim.AdamW
        beta=0.1,
        loss_type=["sigmoid"],
        max_length=spec["max_length"] * spec.get("length_factor", 1),
        bf16=spec["precision"] == "bf16",
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=gc,  # TRL turns it on by default: set either way
        gradient_checkpointing_kwargs={"use_reentrant": False} if gc else None,
        precompute_ref_log_probs=spec["engine"] == "trl-cached",
        seed=spec["seed"],
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    # without the Hub kernels transformers would swap in on a GPU, as prefalign loads it (model.load.hub_kernels)
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32, **hub_kernels())
    peft_config = None
    if lora:
        peft_config = LoraConfig(
            r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=datasets.load_dataset("json", data_files=spec["data"], split="train"),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    # Tokens of each micro-batch, in the order the data loader draws them (= step order: no accumulation).
    batches: list[tuple[int, int]] = []
    collate = trainer.data_collator

    def counting_collate(examples):
        out = collate(examples)
        b = len(examples)
        scored = int(out["completion_mask"].sum())
        distinct = int(out["attention_mask"][:b].sum() + out["completion_mask"][b:].sum())  # prompt once
        batches.append((scored, distinct))
        return out

    trainer.data_collator = counting_collate
    seconds: list[float] = []

    profiler = Profile(spec)

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == spec["warmup"]:
                profiler.start()
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            seconds.append(time.perf_counter() - self.started)

    trainer.add_callback(StepTimer())
    started = time.perf_counter()
    trainer.train()
    run_seconds = time.perf_counter() - started
    profiler.stop()
    steps = [
        {"seconds": s, "pairs": spec["batch_size"], "scored": scored, "distinct": distinct}
        for s, (scored, distinct) in zip(seconds, batches, strict=False)
    ]
    return {"steps": steps, "parameters": parameter_count(trainer.model), "run_seconds": run_seconds}


def worker(spec_path: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    spec = json.loads(Path(spec_path).read_text())
    if spec["engine"] == "prefalign-cached":
        os.environ["PREFALIGN_CACHE"] = spec["cache_dir"]  # a fresh cache: the first run really fills it
    if spec["engine"] == "trl-cached":
        os.environ["HF_DATASETS_CACHE"] = spec["cache_dir"]  # where TRL keeps its reference log-probs
    result = run_trl(spec) if spec["engine"].startswith("trl") else run_prefalign(spec)
    result["peak_rss_mib"] = peak_rss_mib()
    Path(spec["result"]).write_text(json.dumps(result))


def run_engine(spec: dict, work: Path) -> dict:
    """One engine on one case and shape, in a fresh Python process."""
    name = f"{spec['engine']}-{spec['case']}-{spec['shape']}" + ("-fill" if spec.get("fill") else "")
    name += f"-{spec['variant']}" if spec.get("variant") else ""
    spec = {**spec, "run_dir": str(work / name), "result": str(work / f"{name}.json")}
    spec_path = work / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    started = time.perf_counter()
    log = work / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", str(spec_path)], stdout=out,
                                stderr=subprocess.STDOUT, text=True, cwd=REPO)  # fmt: skip
        peak = 0.0
        while proc.poll() is None:  # the worker's own peak is lost when the kernel kills it: watch from here
            peak = max(peak, status_mib("VmHWM", proc.pid))
            time.sleep(0.5)
    if proc.returncode == -signal.SIGKILL:  # the kernel's OOM killer: a result, not a failure
        return {"killed": True, "peak_rss_mib": peak, "wall_seconds": time.perf_counter() - started}
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-25:])
        raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(Path(spec["result"]).read_text())
    result["wall_seconds"] = time.perf_counter() - started
    return result


def status_mib(key: str, pid: int | str = "self") -> float:
    """A field of /proc/PID/status in MiB (VmHWM: peak resident memory, VmRSS: now); 0 once the process is gone
    (an exited process that is not yet reaped keeps its status file without the memory fields)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith(f"{key}:")), None)
    return int(line.split()[1]) / 1024 if line else 0.0


# ---------------------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------------------
def useful_flops_per_token(case: str, engine: str, parameters: int) -> int:
    policy = 6 if case == "full" else 4
    reference = 0 if engine in CACHED else 2
    return (policy + reference) * parameters


def summarise(result: dict, spec: dict, peak: float) -> dict:
    timed = result["steps"][spec["warmup"] :]
    if not timed:
        raise RuntimeError(f"{spec['engine']}: no step after the {spec['warmup']} warm-up steps")
    per_token = useful_flops_per_token(spec["case"], spec["engine"], result["parameters"])
    return {
        "engine": spec["engine"],
        "variant": spec.get("variant", ""),
        "case": spec["case"],
        "shape": spec["shape"],
        "pairs_per_s": statistics.median(s["pairs"] / s["seconds"] for s in timed),
        "scored_tokens_per_s": statistics.median(s["scored"] / s["seconds"] for s in timed),
        "mfu": statistics.median(s["distinct"] * per_token / s["seconds"] for s in timed) / peak,
        "peak_rss_mib": result["peak_rss_mib"],
        "scored_per_pair": sum(s["scored"] for s in timed) / sum(s["pairs"] for s in timed),
        "timed_steps": len(timed),
        "parameters": result["parameters"],
        "run_seconds": result["run_seconds"],
        "memory_choice": result.get("memory_choice"),
    }


def killed_row(result: dict, spec: dict) -> dict:
    """A run the kernel killed for memory: its peak as last seen, and no speed."""
    return {"engine": spec["engine"], "variant": spec.get("variant", ""), "case": spec["case"],
            "shape": spec["shape"], "killed": True, "pairs_per_s": None, "peak_rss_mib": result["peak_rss_mib"],
            "run_seconds": result["wall_seconds"], "memory_choice": None}  # fmt: skip


def print_table(rows: list[dict]) -> None:
    print(
        f"{'engine':<17} {'case':<5} {'shape':<13} {'pairs/s':>8} {'scored tok/s':>12} {'MFU':>6} "
        f"{'peak RSS MiB':>12} {'×TRL pairs/s':>12} {'×TRL RSS':>9}"
    )
    trl = {(r["case"], r["shape"]): r for r in rows if r["engine"] == "trl"}
    for r in rows:
        base = trl.get((r["case"], r["shape"]))
        speed = f"{r['pairs_per_s'] / base['pairs_per_s']:.2f}×" if base and r is not base else ""
        memory = f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}×" if base and r is not base else ""
        print(
            f"{r['engine']:<17} {r['case']:<5} {r['shape']:<13} {r['pairs_per_s']:>8.3f} "
            f"{r['scored_tokens_per_s']:>12.1f} {100 * r['mfu']:>5.1f}% {r['peak_rss_mib']:>12.0f} "
            f"{speed:>12} {memory:>9}"
        )


def variant_name(engine: str, checkpointing: bool, memory: str | None) -> str:
    if engine == "trl":
        return "checkpointing on" if checkpointing else "checkpointing off"
    return "memory auto" if memory == "auto" else f"checkpointing {'on' if checkpointing else 'off'}"


def _ratio(row: dict, base: dict | None, key: str) -> str:
    if not base or base is row or row[key] is None:
        return ""
    if base[key] is None or base.get("killed"):  # killed: its true peak is above what was seen
        return f"≤{row[key] / base[key]:.2f}×" if key == "peak_rss_mib" else ""
    return f"{row[key] / base[key]:.2f}×"


def print_memory_table(rows: list[dict]) -> None:
    """--memory: peak RSS and pairs/s per setting, each against TRL without and with its gradient checkpointing."""
    print(f"{'engine':<10} {'setting':<18} {'case':<5} {'shape':<18} {'pairs/s':>8} {'peak RSS MiB':>12} "
          f"{'×TRL RSS':>9} {'×TRL-ckpt RSS':>13} {'×TRL-ckpt pairs/s':>17}")  # fmt: skip
    trl = {(r["case"], r["shape"], r["variant"]): r for r in rows if r["engine"] == "trl"}
    for r in rows:
        plain = trl.get((r["case"], r["shape"], "checkpointing off"))
        ckpt = trl.get((r["case"], r["shape"], "checkpointing on"))

        speed = "killed" if r.get("killed") else f"{r['pairs_per_s']:.3f}"
        print(f"{r['engine']:<10} {r['variant']:<18} {r['case']:<5} {r['shape']:<18} {speed:>8} "
              f"{r['peak_rss_mib']:>12.0f} {_ratio(r, plain, 'peak_rss_mib'):>9} "
              f"{_ratio(r, ckpt, 'peak_rss_mib'):>13} {_ratio(r, ckpt, 'pairs_per_s'):>17}")  # fmt: skip


def write_results(out: Path, args: argparse.Namespace, peaks: dict, rows: list[dict]) -> None:
    (out / "results.json").write_text(json.dumps({"args": vars(args), "peaks": peaks, "rows": rows}, indent=1))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="builtin:, directory or hub id; 'tiny': a random "
                        "4-layer Llama built from a config (smoke runs)")  # fmt: skip
    parser.add_argument("--cases", default=",".join(CASES), help="comma list of: lora, full")
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES), help=f"comma list of: {', '.join(SHAPES)} "
                        f"(the _long ones at {LONG}× --max-length)")  # fmt: skip
    parser.add_argument("--engines", default=",".join(DEFAULT_ENGINES), help=f"comma list of: {', '.join(ENGINES)}")
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps per engine")
    parser.add_argument("--warmup", type=int, default=2, help="steps run first and not measured")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per step (both engines)")
    parser.add_argument("--max-length", type=int, default=1024, help="longest prompt + answer, in tokens")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="autocast, both "
                        "engines; auto: bf16 where this machine computes it fast, else fp32")  # fmt: skip
    parser.add_argument("--gradient-checkpointing", action="store_true", help="on in both engines (default off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", default="auto", help="prefalign's data.layout (default auto: prefix_shared_packed "
                        "with SDPA)")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="profile the measured steps of each engine (slower: "
                        "report timings from a run without it); writes OUT/profile-ENGINE-CASE-SHAPE.txt")  # fmt: skip
    parser.add_argument("--memory", action="store_true", help="the memory table instead: TRL with and without its "
                        "gradient checkpointing, prefalign with train.memory auto and with checkpointing on and "
                        "off (live reference, no cache); --engines: whose rows")  # fmt: skip
    parser.add_argument("--out", default=str(REPO / "runs" / "speed"), help="where results.json is written")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return []
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    cases, shapes, engines = (a.split(",") for a in (args.cases, args.shapes, args.engines))
    for name, values, known in (("cases", cases, CASES), ("shapes", shapes, SHAPES), ("engines", engines, ENGINES)):
        if unknown := [v for v in values if v not in known]:
            parser.error(f"--{name}: unknown {', '.join(unknown)}; known: {', '.join(known)}")

    import datasets
    import transformers
    from transformers import AutoTokenizer

    import prefalign
    from prefalign.config import ConfigError
    from prefalign.model.load import resolve_path

    datasets.disable_progress_bars()
    transformers.logging.disable_progress_bar()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = tiny_model(out) if args.model == "tiny" else resolve_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    if args.precision == "auto":
        import torch

        from prefalign.training.precision import resolve_precision

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        args.precision = "bf16" if resolve_precision("auto", device)[0] == "bf16" else "fp32"
    peaks = {"fp32": matmul_peak("float32")}
    # Without native bf16 a 2048² bf16 matmul takes a minute: a smaller one shows the rate as well.
    peaks["bf16"] = matmul_peak("bfloat16") if args.precision == "bf16" else matmul_peak("bfloat16", 512, 1)
    peak = peaks[args.precision]
    print(machine(), flush=True)
    print(
        f"model {args.model}; batch {args.batch_size} pairs, max_length {args.max_length}, precision "
        f"{args.precision}, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, prefalign "
        f"layout {args.layout}; "
        f"{args.warmup} warm-up + {args.steps} measured steps (medians); matmul peak: float32 "
        f"{peaks['fp32'] / 1e9:.3g} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.3g} GFLOP/s",
        flush=True,
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="prefalign-speed-") as tmp:
        work = Path(tmp)
        count = (args.warmup + args.steps) * args.batch_size  # one pass: each step draws new pairs
        for shape in shapes:
            data = work / f"{shape}.jsonl"
            data.write_text("".join(json.dumps(row) + "\n" for row in generate_rows(shape, count, args.max_length,
                                                                                    args.seed)))  # fmt: skip
            max_length = args.max_length * (LONG if shape.endswith("_long") else 1)
            lengths = token_lengths(data, tokenizer, max_length)
            longest = max(p + max(c, r) for p, c, r in lengths)
            # TRL's rendering is one token longer (a newline after the end-of-turn): keep both untruncated.
            if longest + 1 > max_length:
                raise SystemExit(f"{shape}: a row has {longest} tokens; raise --max-length above {longest + 1}")
            prompt = statistics.mean(p for p, _, _ in lengths)
            answer = statistics.mean(c + r for _, c, r in lengths) / 2
            print(f"{shape}: {count} pairs, mean prompt {prompt:.0f} tokens, mean answer {answer:.0f} tokens, "
                  f"longest sequence {longest}", flush=True)  # fmt: skip
            for case in cases:
                plain = [(engine, args.gradient_checkpointing, "off") for engine in engines]
                variants = [v for v in MEMORY_VARIANTS if v[0] in engines] if args.memory else plain
                for engine, checkpointing, memory in variants:
                    spec = {
                        "engine": engine, "case": case, "shape": shape, "model": model, "data": str(data),
                        "steps": args.steps, "warmup": args.warmup, "batch_size": args.batch_size,
                        "max_length": args.max_length, "precision": args.precision, "seed": args.seed,
                        "gradient_checkpointing": checkpointing, "layout": args.layout, "memory": memory,
                        "length_factor": LONG if shape.endswith("_long") else 1,
                        "variant": variant_name(engine, checkpointing, memory) if args.memory else "",
                        "cache_dir": str(work / f"cache-{engine}-{case}-{shape}"),
                        "profile": str(out / f"profile-{engine}-{case}-{shape}.txt") if args.profile else None,
                    }  # fmt: skip
                    if engine == "prefalign-cached":  # the losses that keep a live reference (kto) refuse it
                        try:
                            prefalign.load_config(prefalign_config({**spec, "run_dir": str(work / "check")}))
                        except ConfigError as exc:
                            print(f"skip {engine} {case} {shape}: reference.mode precomputed rejected: {exc}")
                            continue
                    fill_seconds = None
                    if engine in CACHED:  # a first run fills the cache; the second, measured, reuses it
                        fill_seconds = run_engine({**spec, "fill": True, "profile": None}, work)["run_seconds"]
                    result = run_engine(spec, work)
                    if result.get("killed"):
                        row = killed_row(result, spec)
                        rows.append(row)
                        print(f"  {engine} {case}: killed by the kernel at {row['peak_rss_mib']:.0f} MiB after "
                              f"{result['wall_seconds']:.0f}s", flush=True)  # fmt: skip
                        write_results(out, args, peaks, rows)
                        continue
                    row = {**summarise(result, spec, peak), "fill_seconds": fill_seconds}
                    rows.append(row)
                    fill = f", cache fill run {row['fill_seconds']:.0f}s" if row["fill_seconds"] else ""
                    print(
                        f"  {engine} {case}: {row['pairs_per_s']:.3f} pairs/s, {row['scored_per_pair']:.0f} "
                        f"scored tokens/pair, peak RSS {row['peak_rss_mib']:.0f} MiB, run {row['run_seconds']:.0f}s"
                        f"{fill}",
                        flush=True,
                    )
                    if row["memory_choice"]:
                        print(f"    train.memory: {row['memory_choice']}", flush=True)
                    write_results(out, args, peaks, rows)  # each row as it lands
    print()
    parameters = next((r["parameters"] for r in rows if "parameters" in r), 0)
    print(f"N = {parameters / 1e6:.1f}M parameters; MFU against the {args.precision} matmul peak "
          f"{peak / 1e9:.0f} GFLOP/s")  # fmt: skip
    print_memory_table(rows) if args.memory else print_table(rows)
    write_results(out, args, peaks, rows)
    print(f"\nresults: {out / 'results.json'}")
    return rows


if __name__ == "__main__":
    main()
