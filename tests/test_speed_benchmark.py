"""benchmarks/speed.py's plumbing on the tiny random Llama: both engines train on the same generated pairs, each in
its own process, and the table and results file carry every engine's rates and the ratios against TRL.

Timings here mean nothing (a tiny model, one measured step); the figures come from running the script itself.
"""

from __future__ import annotations

import importlib.util
import json
import sys

from tests.conftest import REPO


def _speed():
    spec = importlib.util.spec_from_file_location("speed_benchmark", REPO / "benchmarks" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["speed_benchmark"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_shapes_have_the_prompt_and_answer_shares_they_name():
    """Prompt text ~4× each answer's, ~1×, ~¼× (the chat template adds the same few tokens to every prompt)."""
    speed = _speed()
    for shape, low, high in (("prompt_heavy", 3.0, 5.5), ("balanced", 0.75, 1.33), ("answer_heavy", 0.18, 0.33)):
        rows = speed.generate_rows(shape, 16, 512, seed=0)
        prompts = [sum(len(turn["content"]) for turn in row["prompt"]) for row in rows]
        answers = [len(row["chosen"][0]["content"]) + len(row["rejected"][0]["content"]) for row in rows]
        ratio = sum(prompts) / (sum(answers) / 2)
        assert low < ratio < high, (shape, ratio)
        assert len(set(answers)) > 8, "lengths vary row to row"
        assert rows == speed.generate_rows(shape, 16, 512, seed=0), "seeded"


def test_one_measured_step_of_each_engine_gives_a_table_with_ratios(tmp_path, capsys):
    speed = _speed()
    argv = ["--model", "tiny", "--max-length", "256", "--steps", "1", "--warmup", "1", "--precision", "fp32"]
    rows = speed.main([*argv, "--cases", "lora", "--shapes", "balanced", "--profile", "--out", str(tmp_path)])

    assert [r["engine"] for r in rows] == ["trl", "prefalign", "prefalign-cached", "trl-cached"]
    for row in rows:
        assert row["pairs_per_s"] > 0 and row["scored_tokens_per_s"] > 0 and row["peak_rss_mib"] > 0
        assert row["timed_steps"] == 1 and 0 < row["mfu"] < 1
        # The same pairs: TRL also scores the newline its template prints after each end-of-turn (1 per answer).
        assert 0 <= rows[0]["scored_per_pair"] - row["scored_per_pair"] <= 2
        assert (tmp_path / f"profile-{row['engine']}-lora-balanced.txt").read_text().count("\n") > 10
    assert rows[2]["fill_seconds"] > 0 and rows[3]["fill_seconds"] > 0  # the cached engines' first runs filled caches
    printed = capsys.readouterr().out
    assert "×TRL pairs/s" in printed and printed.count("×") >= 7 and "machine: " in printed
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows)) and saved["peaks"]["fp32"] > 0
