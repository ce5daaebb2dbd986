"""The command line: help texts, overrides, and errors that exit non-zero with a message, not a traceback."""

import subprocess
import sys

import yaml

from prefalign.config import load_config
from tests.conftest import REPO, tiny_config


def run(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "prefalign", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_help_explains_itself():
    top = run("--help")
    assert top.returncode == 0 and "train" in top.stdout and "methods" in top.stdout
    sub = run("train", "--help")
    assert sub.returncode == 0
    for word in ("CONFIG", "overrides", "--resume", "train.lr=1e-5"):
        assert word in sub.stdout


def test_methods_lists_the_registry():
    out = run("methods")
    assert out.returncode == 0 and "sigmoid" in out.stdout and "2305.18290" in out.stdout
    one = run("methods", "sigmoid")
    assert one.returncode == 0 and "L = −(1 − ε) · log σ(β·h)" in one.stdout and "method.beta" in one.stdout
    assert run("methods", "dpo").returncode == 2


def test_examples_start_with_the_command_that_runs_them():
    import re

    examples = sorted(path.name for path in (REPO / "examples").glob("*.yaml"))
    # Every example the README runs is there (an empty or renamed folder fails here, not silently below).
    named = set(re.findall(r"prefalign train examples/([\w.-]+\.yaml)", (REPO / "README.md").read_text()))
    assert {"quickstart.yaml", "reward.yaml"} <= named <= set(examples)
    for name in examples:
        first = (REPO / "examples" / name).read_text().splitlines()[0]
        assert first.startswith("# Run:") and f"prefalign train examples/{name}" in first, name
        load_config(REPO / "examples" / name)  # each one valid as shipped


def test_config_errors_exit_2_naming_the_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  train: x.jsonl\ntrain:\n  learning_rate: 1e-5\n")
    out = run("train", str(config))
    assert out.returncode == 2
    assert "train.learning_rate: unknown key (did you mean 'lr'?)" in out.stderr
    assert "Traceback" not in out.stderr


def test_data_errors_exit_2_naming_file_row_and_field(tmp_path, tiny_model_dir):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_model_dir, data, tmp_path / "run")))
    out = run("train", str(config))
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"{data}: row 2: field rejected: missing" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_trains_with_overrides(tmp_path, tiny_model_dir, toy_data):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_model_dir, toy_data, tmp_path / "run")))
    out = run("train", str(config), "train.max_steps=1", "method.beta=0.25", "output.save=[adapter]")
    assert out.returncode == 0, out.stderr[-3000:]
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["train"]["max_steps"] == 1 and written["method"]["beta"] == 0.25
    assert "Run directory" in out.stdout and (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
