"""Tokenisation speed: prefalign's preprocessing of preference pairs against TRL 1.16's DPO preprocessing.

    python benchmarks/tokenization.py                      # 300 LLaMA-Factory pairs ×20 = 6000 rows, 3 repeats
    python benchmarks/tokenization.py --scale 5 --repeat 1 --num-proc 2

Both engines get the same rows (`/work/shared/peers/dpo_en_demo.json`, ShareGPT preference, turned here
into TRL's conversational prompt/chosen/rejected message lists), the same tokenizer (SmolLM2-135M-Instruct,
`builtin:smollm2-135m-instruct`), the same `num_proc`, and caching off, so every repeat tokenises:

- prefalign: `tokenize_rows` on the canonical rows, the call `prepare_data` makes in training (render,
  truncate to data.max_length 1024 / max_prompt_length 512, drop unusable rows);
- TRL: `DPOTrainer._prepare_dataset`, the method its constructor runs on the training set (apply the chat
  template and tokenise prompt, prompt + chosen and prompt + rejected; drop prompts that fill max_length
  1024), called on its own, without building a trainer and its model.

Reading the file and converting it to canonical rows are not timed (TRL has no such step). Engines alternate
within each repeat; the table gives each engine's median. The tokenizers' own thread pool is off unless
--tokenizer-threads: TRL tokenises one text at a time, so only prefalign's batched calls would use it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import types
import warnings
from pathlib import Path

PEERS = Path(__file__).resolve().parents[2] / "shared" / "peers"
ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


def trl_rows(path: Path) -> list[dict]:
    """ShareGPT preference records as TRL conversational rows (explicit prompt, one-turn answers)."""
    rows = []
    for record in json.loads(path.read_text()):
        rows.append(
            {
                "prompt": [{"role": ROLES[t["from"]], "content": t["value"]} for t in record["conversations"]],
                "chosen": [{"role": "assistant", "content": record["chosen"]["value"]}],
                "rejected": [{"role": "assistant", "content": record["rejected"]["value"]}],
            }
        )
    return rows


def agreement(trl_out, canonical, tokenizer, distinct: int) -> str:
    """How many of the first `distinct` rows (one copy of the file) get the same tokens from both engines,
    of those that both keep; not timed."""
    from prefalign.data.render import Renderer, RenderSettings

    renderer = Renderer(tokenizer, RenderSettings(None, 10**9, None, None))  # no truncation: TRL's rows are whole
    trl_rows = {row: i for i, row in enumerate(trl_out["row"])}
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    same = compared = 0
    for i in range(distinct):
        if i not in trl_rows:
            continue
        ours, theirs = renderer.render(canonical[i]), trl_out[trl_rows[i]]
        compared += 1
        # TRL also scores what the template prints after the end-of-turn token (a newline); prefalign does not.
        same += ours["prompt_ids"] == theirs["prompt_ids"] and all(
            ours[key] + newline == theirs[key] for key in ("chosen_ids", "rejected_ids")
        )
    return f"same tokens on {same} of {compared} distinct rows (TRL's trailing newline aside)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=PEERS / "dpo_en_demo.json")
    parser.add_argument("--scale", type=int, default=20, help="Repeat the file's rows this many times.")
    parser.add_argument("--repeat", type=int, default=3, help="Timed runs per engine; the median is reported.")
    parser.add_argument("--num-proc", type=int, default=None, help="datasets.map processes, for both engines.")
    parser.add_argument("--tokenizer-threads", action="store_true", help="Let the fast tokenizer use threads.")
    args = parser.parse_args()
    if not args.tokenizer_threads:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")

    import datasets
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from prefalign.config import DataConfig, DataSource
    from prefalign.data.check import render_settings
    from prefalign.data.load import canonical_rows
    from prefalign.data.render import tokenize_rows
    from prefalign.model.load import resolve_path

    datasets.disable_progress_bars()
    datasets.disable_caching()  # every map recomputes: nothing is read back from an earlier repeat
    tokenizer = AutoTokenizer.from_pretrained(resolve_path("builtin:smollm2-135m-instruct"))
    rows = trl_rows(args.data) * args.scale

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        canonical, _ = canonical_rows([DataSource(path=str(path))], "auto", skip_bad_rows=False)
        canonical = canonical.flatten_indices()
        settings = render_settings(DataConfig(train=str(path)))
        trl_input = datasets.Dataset.from_list([{**row, "row": i} for i, row in enumerate(rows)])
        trl_args = DPOConfig(output_dir=tmp, report_to=[], use_cpu=True, bf16=False, dataset_num_proc=args.num_proc)
        trainer = types.SimpleNamespace(_tokenizer=tokenizer)  # all of `self` that _prepare_dataset reads

        def run_prefalign() -> datasets.Dataset:
            return tokenize_rows(canonical, tokenizer, settings, num_proc=args.num_proc)[0]

        def run_trl() -> datasets.Dataset:
            return DPOTrainer._prepare_dataset(trainer, trl_input, tokenizer, trl_args, "train")

        seconds: dict[str, list[float]] = {"prefalign": [], "trl": []}
        outputs = {}
        for _ in range(args.repeat):
            for engine, run in (("prefalign", run_prefalign), ("trl", run_trl)):
                started = time.perf_counter()
                outputs[engine] = run()
                seconds[engine].append(time.perf_counter() - started)

    same = agreement(outputs["trl"], canonical, tokenizer, len(rows) // args.scale)
    print(
        f"{len(rows)} rows ({args.data.name} ×{args.scale}), num_proc {args.num_proc}, tokenizer threads "
        f"{'on' if args.tokenizer_threads else 'off'}, median of {args.repeat}; rows kept: prefalign "
        f"{len(outputs['prefalign'])}, TRL {len(outputs['trl'])}; {same}"
    )
    print(f"{'engine':<10} {'rows':>6} {'seconds':>8} {'rows/s':>8}   runs (s)")
    median = {engine: statistics.median(times) for engine, times in seconds.items()}
    for engine, times in seconds.items():
        runs = " ".join(f"{t:.2f}" for t in times)
        print(f"{engine:<10} {len(rows):>6} {median[engine]:>8.2f} {len(rows) / median[engine]:>8.0f}   {runs}")
    print(f"prefalign / TRL rows/s: {median['trl'] / median['prefalign']:.2f}×")


if __name__ == "__main__":
    main()
