"""Measure one training run's peak memory in a fresh process (tests/test_memory_plan.py runs it).

    python tests/memory_probe.py CONFIG.json RESULT.json

What is measured: the process's peak resident memory (VmHWM) while `prefalign.train` runs, minus its resident
memory just before (VmRSS), after the imports and a first pass of the same data preparation (tokenizer and
tokenised data, then freed), so that neither counts. Linux resets VmHWM when "5" is written to
/proc/self/clear_refs; the weights' file pages count once they are read (safetensors maps the file). glibc's
mmap threshold is fixed first (memory/allocator.py), as a run does on CPU, so freed tensors leave the resident set.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path


def status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def main(config_path: str, out_path: str) -> None:
    import prefalign
    import prefalign.run  # every import a run makes, before the baseline
    from prefalign.config import load_config
    from prefalign.data import prepare_data
    from prefalign.memory.allocator import return_freed_memory
    from prefalign.model.load import load_tokenizer

    return_freed_memory()  # as a run does on CPU: freed tensors leave the resident set
    raw = json.loads(Path(config_path).read_text())
    config = load_config(raw)
    tokenizer = load_tokenizer(config.model)
    data = prepare_data(config.data, tokenizer, config.train.seed, method=config.method)
    del tokenizer, data
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    baseline = status_mib("VmRSS")
    prefalign.train(raw, quiet=True)
    peak = status_mib("VmHWM")
    Path(out_path).write_text(json.dumps({"baseline_mib": baseline, "peak_mib": peak, "delta_mib": peak - baseline}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
