"""Peak memory of reading a large JSONL file: it must not grow with the file.

    python benchmarks/large_jsonl.py --mb 1024          # the issue's 1 GB case (minutes on 2 cores)
    python benchmarks/large_jsonl.py --mb 64 --bad-line  # with one broken line at the end, skipped

Writes a file of realistic pairs (conversational prompt, answers of a few hundred words), then reads and converts
it as training does (`canonical_rows`: datasets' reader, the format reader, duplicate keys) in this process,
and prints the file size, the rows, the seconds and the peak RSS above what the imports took, split into memory the
process holds (RssAnon) and pages of the Arrow files it maps (RssFile, which the kernel can drop). Uses a fresh
datasets cache under --dir so that nothing is read from an earlier run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import threading
import time
from pathlib import Path

WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "question",
    "data",
    "train",
    "prompt",
    "reply",
    "user",
    "helpful",
    "short",
    "long",
    "clear",
    "because",
]


def write_file(path: Path, megabytes: int, bad_line: bool) -> int:
    rng = random.Random(0)
    rows, target = 0, megabytes * 1024 * 1024
    with path.open("w") as out:
        while out.tell() < target:

            def text(n: int) -> str:
                return " ".join(rng.choice(WORDS) for _ in range(n))

            row = {
                "prompt": [{"role": "user", "content": f"{rows}: {text(60)}"}],
                "chosen": [{"role": "assistant", "content": text(rng.randint(100, 400))}],
                "rejected": [{"role": "assistant", "content": text(rng.randint(100, 400))}],
            }
            out.write(json.dumps(row) + "\n")
            rows += 1
        if bad_line:
            out.write('{"prompt": "unterminated\n')
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_parts_mb() -> dict[str, float]:
    """This process's resident memory by kind (Linux /proc): RssAnon is what the process allocated itself;
    RssFile counts pages of files it maps (datasets' Arrow cache), which the kernel can drop and read again."""
    parts = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            parts[key] = int(value.split()[0]) / 1024  # kB
    return parts


class PeakSampler:
    """The largest RssAnon and RssFile seen while it runs (sampled every 20 ms in a thread): ru_maxrss gives only
    their sum's peak, so it cannot tell memory the reader holds from the Arrow file it maps."""

    def __init__(self) -> None:
        self.peaks = rss_parts_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for key, value in rss_parts_mb().items():
                self.peaks[key] = max(self.peaks[key], value)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--bad-line", action="store_true", help="end the file with a broken line (skipped)")
    parser.add_argument("--dir", default=None, help="where to write the file and the datasets cache")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="prefalign-large-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["HF_DATASETS_CACHE"] = str(work / "cache")
    path = work / "pairs.jsonl"
    rows = write_file(path, args.mb, args.bad_line)

    import datasets

    from prefalign.config import DataSource
    from prefalign.data.load import canonical_rows

    datasets.disable_progress_bars()
    baseline, parts = peak_rss_mb(), rss_parts_mb()
    started = time.perf_counter()
    with PeakSampler() as sampler:
        read, report = canonical_rows([DataSource(path=str(path))], "auto", skip_bad_rows=args.bad_line)
    seconds = time.perf_counter() - started
    growth = peak_rss_mb() - baseline
    result = {
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "rows": rows,
        "rows_kept": len(read),
        "bad_rows": len(report.bad_rows),
        "seconds": round(seconds, 1),
        "rss_after_imports_mb": round(baseline),
        "peak_rss_growth_mb": round(growth),
        # of which: memory the process holds, and pages of the memory-mapped Arrow cache (sampled peaks)
        "peak_anon_growth_mb": round(sampler.peaks["RssAnon"] - parts["RssAnon"]),
        "peak_file_mapped_growth_mb": round(sampler.peaks["RssFile"] - parts["RssFile"]),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
