"""Trackers (output.report_to) read back offline: TensorBoard event files, an MLflow file store, a W&B offline
run, trackio's local store. The values must be metrics.jsonl's, under split/metric, at the same steps."""

from __future__ import annotations

import glob
import json
import os
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from prefalign.config import ConfigError, load_config
from prefalign.report import trackers
from prefalign.report.trackers import TrackerError, check_trackers, flatten, tracker_values

REPO = Path(__file__).resolve().parents[1]

# Replays a real run's metrics.jsonl through the TrackerListener in a fresh process: W&B and trackio read their
# settings (WANDB_MODE, TRACKIO_DIR) from the environment when they are first imported.
REPLAY = """
import json, sys, yaml
from pathlib import Path
from prefalign.report.trackers import TrackerListener
run = Path(sys.argv[1])
config = yaml.safe_load((run / "config.yaml").read_text())
listener = TrackerListener(sys.argv[2].split(","), "tiny-run", Path(sys.argv[3]), config)
for line in (run / "metrics.jsonl").read_text().splitlines():
    record = json.loads(line)
    (listener.on_eval if record["split"] == "eval" else listener.on_log)(record)
listener.on_end(None)
"""


def _expected(run: Path) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for name, value in tracker_values(record).items():
            out.setdefault(name, {})[record["step"]] = value
    return out


def _wandb_records(path: str):
    """The records of a W&B offline run file: its LevelDB-style log of 32 KiB blocks, each record a protobuf."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_every_tracker_reads_back_what_metrics_jsonl_holds(policy_run, tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "TRACKIO_DIR": str(tmp_path / "trackio"),
           "PYTHONPATH": str(REPO / "src")}  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)
    names = "tensorboard,wandb,mlflow,trackio"
    subprocess.run([sys.executable, "-c", REPLAY, str(policy_run), names, str(out)], env=env, check=True, timeout=300)
    expected = _expected(policy_run)
    assert "train/loss" in expected and "eval/rewards/margins" in expected

    # TensorBoard: event files under RUN_DIR/tensorboard/RUN_NAME
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard" / "tiny-run"))
    events.Reload()
    for name, by_step in expected.items():
        logged = {e.step: e.value for e in events.Scalars(name)}
        assert logged == pytest.approx(by_step, rel=1e-6), name

    # MLflow: the file store in RUN_DIR/mlruns, with the config as parameters
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads a file store only when told
    client = mlflow.MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("prefalign").experiment_id])
    assert run.info.run_name == "tiny-run"
    assert run.data.params["method.loss"] == "sigmoid" and run.data.params["model.lora.r"] == "4"
    for name, by_step in expected.items():
        logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}
        assert logged == pytest.approx(by_step, rel=1e-6), name

    # W&B offline: the run file's history and config records
    (path,) = glob.glob(str(out / "wandb" / "offline-run-*" / "run-*.wandb"))
    logged: dict[str, dict[int, float]] = {}
    config = {}
    for record in _wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for name, value in items.items():
                if not name.startswith("_"):
                    logged.setdefault(name, {})[items["_step"]] = value
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in record.config.update})
    for name, by_step in expected.items():
        assert logged[name] == pytest.approx(by_step, rel=1e-6), name
    assert config["method.beta"] == 0.1 and config["data.max_length"] == 64

    # trackio: its SQLite store in TRACKIO_DIR, one row per logged call
    with sqlite3.connect(tmp_path / "trackio" / "prefalign.db") as db:
        rows = db.execute("select step, metrics from metrics where run_name = 'tiny-run'").fetchall()
        (stored_config,) = db.execute("select config from configs where run_name = 'tiny-run'").fetchone()
    logged = {}
    for step, values in rows:
        for name, value in json.loads(values).items():
            logged.setdefault(name, {})[step] = value
    for name, by_step in expected.items():
        assert logged[name] == pytest.approx(by_step, rel=1e-6), name
    assert json.loads(stored_config)["method.loss"] == "sigmoid"


def test_a_run_with_report_to_tensorboard_logs_its_steps(tmp_path, tiny_model_dir, toy_data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import prefalign
    from tests.conftest import tiny_config

    config = tiny_config(tiny_model_dir, toy_data, tmp_path / "run", output={"report_to": "tensorboard",
                                                                              "run_name": "tb"})  # fmt: skip
    prefalign.train(config, quiet=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "tb"))
    events.Reload()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = {e.step: e.value for e in events.Scalars("train/loss")}
    assert logged == pytest.approx({r["step"]: r["loss"] for r in metrics if r["split"] == "train"})
    assert (tmp_path / "run" / "report.html").is_file()


def test_a_missing_tracker_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(trackers._PACKAGES, "wandb", "prefalign_no_such_package")
    expected = r"wandb is not installed; install it with: pip install 'prefalign\[wandb\]'"
    with pytest.raises(TrackerError, match=expected):
        check_trackers(["tensorboard", "wandb"])
    assert issubclass(TrackerError, ConfigError)  # the CLI prints it as a config error, no traceback


def test_report_to_accepts_a_name_a_list_or_none(toy_data):
    base = {"data": {"train": str(toy_data)}}
    assert load_config({**base, "output": {"report_to": "wandb"}}).output.report_to == ["wandb"]
    assert load_config({**base, "output": {"report_to": "none"}}).output.report_to == []
    assert load_config(base).output.report_to == []
    with pytest.raises(ConfigError, match="report_to"):
        load_config({**base, "output": {"report_to": ["comet"]}})


def test_config_is_flattened_to_dotted_hyperparameters():
    assert flatten({"model": {"lora": {"r": 4}, "path": "x"}, "data": {"train": [{"path": "a"}]}, "x": None}) == {
        "model.lora.r": 4, "model.path": "x", "data.train": "[{'path': 'a'}]", "x": "None"
    }  # fmt: skip
