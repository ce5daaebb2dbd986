"""The run report (report/): rendered from the files of real tiny runs; empty and wrong directories."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest

from prefalign.report.lengths import length_percentiles
from prefalign.report.listener import ReportListener
from prefalign.report.render import render_report
from prefalign.report.rundir import RUN_MARKER, ReportError


def _figures(page: str) -> dict[str, str]:
    """data-metric -> the figure's markup."""
    return dict(re.findall(r'<figure class="plot" id="plot-[^"]*" data-metric="([^"]+)".*?(<svg.*?</svg>)', page, re.S))


def test_policy_run_report_has_every_curve_the_table_and_the_answers(policy_run, tmp_path):
    run = shutil.copytree(policy_run, tmp_path / "run")
    (run / "warnings.jsonl").write_text(json.dumps({"step": 6, "message": "chosen answers getting less likely"}) + "\n")
    page = render_report(run).read_text()
    figures = _figures(page)
    for name in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                 "logps/chosen", "logps/rejected", "lr", "grad_norm"):  # fmt: skip
        assert name in figures, name
        assert f'id="{name.replace("/", "-").replace("_", "-")}-train"' in figures[name]
    # Held-out curves start at step 0 (before training) and the warning is drawn on every curve.
    assert 'id="loss-eval"' in figures["loss"] and 'id="loss-warning-0"' in figures["loss"]
    before = json.loads((run / "before.json").read_text())["metrics"]
    after = json.loads((run / "result.json").read_text())["after"]
    row = re.search(r"<td>rewards/margins</td>(.*?)</tr>", page).group(1)
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert cells[:3] == [f"{before['rewards/margins']:.4g}", f"{after['rewards/margins']:.4g}",
                         f"{after['rewards/margins'] - before['rewards/margins']:.4g}"]  # fmt: skip
    for generation in json.loads((run / "generations.json").read_text()):
        assert generation["prompt"] in page
    assert "step 6: chosen answers getting less likely" in page
    assert "Resolved config" in page and "sigmoid" in page
    # Nothing to fetch: no script, no link, no external reference (the SVG namespaces are names, not fetched).
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_reward_run_report_draws_accuracy_margin_and_reward_histograms(reward_run):
    # The run itself wrote rewards.json: every held-out pair's rewards, before and after training.
    rewards = json.loads((reward_run / "rewards.json").read_text())
    assert {len(rewards[w][a]) for w in ("before", "after") for a in ("chosen", "rejected")} == {16}
    # The mean held-out margin in metrics.jsonl is the mean of these rewards' differences.
    last_eval = [r for r in map(json.loads, (reward_run / "metrics.jsonl").read_text().splitlines())][-1]
    margins = [c - r for c, r in zip(rewards["after"]["chosen"], rewards["after"]["rejected"], strict=True)]
    assert last_eval["split"] == "eval" and sum(margins) / 16 == pytest.approx(last_eval["margin"], abs=1e-5)
    page = (reward_run / "report.html").read_text()  # written by the run
    figures = _figures(page)
    assert {"loss", "accuracy", "margin", "mean_reward"} <= set(figures)
    assert 'id="accuracy-eval"' in figures["accuracy"]
    for when in ("before", "after"):
        hist = figures[f"rewards {when} training"]
        assert f'id="rewards-{when}-training-chosen-bar-0"' in hist
        assert f'id="rewards-{when}-training-rejected-bar-0"' in hist


def test_a_run_with_nothing_logged_yet_gets_an_explicit_empty_state(tmp_path):
    (tmp_path / RUN_MARKER).touch()
    (tmp_path / "config.yaml").write_text("model:\n  path: x\n")
    page = render_report(tmp_path).read_text()
    assert 'id="empty-state"' in page and "No metrics yet" in page
    assert "<figure" not in page


def test_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match=r"not a prefalign run directory \(no \.prefalign-run file\)"):
        render_report(tmp_path)
    with pytest.raises(ReportError, match="no such directory"):
        render_report(tmp_path / "missing")


def test_a_half_written_metrics_line_is_skipped_and_a_damaged_file_is_shown(policy_run, tmp_path):
    run = shutil.copytree(policy_run, tmp_path / "run")
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 13, "spl')  # the line a running writer is in the middle of
    (run / "before.json").write_text("{not json")
    page = render_report(run).read_text()
    assert "before.json: cannot be read" in page
    assert 'data-metric="loss"' in page


def test_report_listener_turns_a_render_error_into_a_warning(tmp_path):
    (tmp_path / RUN_MARKER).touch()
    (tmp_path / "report.html").mkdir()  # the page cannot be written over a directory
    listener = ReportListener(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listener.on_eval({"step": 1, "split": "eval", "loss": 0.5})
        listener.on_end(None)
    assert len(listener.errors) == 2 and "report.html was not written" in listener.errors[0]
    assert any("report.html was not written" in str(w.message) for w in caught)


def test_report_listener_writes_the_page_on_eval(policy_run, tmp_path):
    run = shutil.copytree(policy_run, tmp_path / "run")
    (run / "report.html").unlink(missing_ok=True)
    ReportListener(run).on_eval({"step": 4})
    assert (run / "report.html").is_file() and not ReportListener(run, enabled=False).render()


def test_length_percentiles_are_nearest_rank_per_column():
    import datasets

    lengths = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    dataset = datasets.Dataset.from_dict(
        {"prompt_ids": [[0] * n for n in lengths], "chosen_ids": [[0] * 2] * 10, "rejected_ids": [[0] * 7] * 10}
    )
    out = length_percentiles({"train": dataset, "eval": None})
    # sorted: 1 1 2 3 3 4 5 5 6 9; nearest rank p50 = 5th value (3), p90 = 9th (6), p99 = 10th (9)
    assert out == {
        "train": {
            "prompt": {"p50": 3, "p90": 6, "p99": 9, "max": 9},
            "chosen": {"p50": 2, "p90": 2, "p99": 2, "max": 2},
            "rejected": {"p50": 7, "p90": 7, "p99": 7, "max": 7},
        }
    }


def test_data_summary_is_rendered_from_data_json(policy_run, tmp_path):
    run = shutil.copytree(policy_run, tmp_path / "run")
    data = {"rows_read": 16, "formats": {"trl_conversational": 16}, "bad_rows": [], "dropped": {"too long": 2},
            "truncated": 3, "lengths": {"train": {"prompt": {"p50": 10, "p90": 12, "p99": 13, "max": 13}}}}  # fmt: skip
    Path(run / "data.json").write_text(json.dumps(data))
    page = render_report(run).read_text()
    assert "16 (trl_conversational 16)" in page and "2 (too long)" in page
    assert re.search(r"<td>train prompt</td><td class=\"num\">10</td><td class=\"num\">12</td>", page)


def test_a_run_whose_report_cannot_be_written_finishes_warns_and_keeps_its_results(
    tiny_model_dir, toy_data, tmp_path, monkeypatch
):
    import prefalign
    from prefalign.report import listener
    from tests.conftest import tiny_config

    def full_disk(run_dir):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(listener, "render_report", full_disk)  # every render of this run fails, as on a full disk
    run = tmp_path / "run"
    config = tiny_config(
        tiny_model_dir, toy_data, run, data={"train": str(toy_data), "eval": str(toy_data)},
        train={"max_steps": 2, "eval_every": 1}, eval={"before": True},
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = prefalign.train(config, quiet=True)
    assert any("report.html was not written: OSError" in str(w.message) for w in caught)
    assert not (run / "report.html").exists()
    saved = json.loads((run / "result.json").read_text())
    assert saved["after"]["loss"] == pytest.approx(result.after["loss"])  # training's results are all there
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) >= 2
