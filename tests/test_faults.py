"""Faults: a process killed while a checkpoint or the final model is written, a disk that fills, an output
directory that cannot be written. Real runs of the tiny model; the kills are real SIGKILLs of a real process,
sent from inside the write (so they land mid-write every time, not by timing luck)."""

import errno
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from safetensors.torch import load_file

import prefalign
from prefalign.config import ConfigError
from prefalign.training import checkpoint as checkpoint_module
from prefalign.training.checkpoint import CheckpointError, latest_checkpoint, skipped_checkpoints
from prefalign.training.metrics import read_metrics
from tests.conftest import REPO, tiny_config, toy_rows, write_jsonl

SETTINGS = dict(train={"max_steps": 6, "save_every": 2, "batch_size": 2, "keep_checkpoints": 3})


def train_losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]


def killed_run(tmp_path, model_dir, data, name: str, kill_code: str) -> tuple:
    """Run `prefalign.train` in a child process that first runs `kill_code` (which patches a write to SIGKILL
    the process from inside it); returns the run directory and its config."""
    run_dir = tmp_path / name
    config = tiny_config(model_dir, data, run_dir, **SETTINGS)
    script = tmp_path / f"{name}.py"
    script.write_text(
        "import os, signal, sys\nimport prefalign\n"
        + textwrap.dedent(kill_code)
        + f"\nprefalign.train({config!r}, quiet=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    return run_dir, config


@pytest.fixture
def straight(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    run_dir = tmp_path / "straight"
    prefalign.train(tiny_config(tiny_model_dir, data, run_dir, **SETTINGS), quiet=True)
    return data, run_dir


def test_killed_while_writing_a_checkpoint(tmp_path, tiny_model_dir, straight):
    data, straight_dir = straight
    # killed after step-4's weights are written and before its optimizer state: .tmp-step-4 is left half-written
    run_dir, config = killed_run(tmp_path, tiny_model_dir, data, "killed", """
        from prefalign.training import checkpoint
        write = checkpoint.save_file
        def save_file(tensors, path):
            write(tensors, path)
            if ".tmp-step-4" in str(path):
                os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.save_file = save_file
    """)  # fmt: skip
    root = run_dir / "checkpoints"
    assert (root / ".tmp-step-4" / "trainable.safetensors").is_file() and not (root / "step-4").exists()
    assert latest_checkpoint(root) == root / "step-2"
    assert skipped_checkpoints(root) == [f"{root / '.tmp-step-4'}: incomplete (the write was interrupted)"]

    config["train"]["resume"] = True
    result = prefalign.train(config, quiet=True)
    assert result.ignored_checkpoints == [f"{root / '.tmp-step-4'}: incomplete (the write was interrupted)"]
    assert json.loads((run_dir / "result.json").read_text())["ignored_checkpoints"] == result.ignored_checkpoints
    assert train_losses(run_dir) == pytest.approx(train_losses(straight_dir), rel=1e-5)
    assert not list(root.glob(".tmp-*"))  # step 4 was written again, through the same temp directory


def test_a_checkpoint_cut_short_is_passed_over(tmp_path, tiny_model_dir, straight):
    """A step-N directory whose file is shorter than written (a copy cut short) is not resumed from."""
    data, straight_dir = straight
    root = straight_dir / "checkpoints"
    assert latest_checkpoint(root) == root / "step-4"
    optimizer = root / "step-4" / "optimizer.pt"
    size = optimizer.stat().st_size
    optimizer.write_bytes(optimizer.read_bytes()[: size // 2])
    assert latest_checkpoint(root) == root / "step-2"
    reason = f"optimizer.pt: {size // 2} bytes, {size} written"
    assert skipped_checkpoints(root) == [f"{root / 'step-4'}: incomplete ({reason})"]
    losses = train_losses(straight_dir)
    config = tiny_config(tiny_model_dir, data, straight_dir, **SETTINGS)
    config["train"]["resume"] = True
    prefalign.train(config, quiet=True)  # from step 2: steps 3-6 again, the same losses
    assert train_losses(straight_dir) == pytest.approx(losses, rel=1e-5)


def test_killed_while_saving_the_final_model(tmp_path, tiny_model_dir, straight):
    data, straight_dir = straight
    # killed inside the adapter's save, after its files are written into the temp directory, before the rename
    run_dir, config = killed_run(tmp_path, tiny_model_dir, data, "killed", """
        from prefalign.export import save
        atomic = save.write_atomically
        def write_atomically(target, write, **options):
            def write_then_die(tmp):
                write(tmp)
                os.kill(os.getpid(), signal.SIGKILL)
            return atomic(target, write_then_die, **options)
        save.write_atomically = write_atomically
    """)  # fmt: skip
    assert not (run_dir / "adapter").exists()  # nothing that loads as if complete
    assert [p.name.startswith(".tmp-adapter-") for p in run_dir.iterdir() if p.name.startswith(".tmp-")] == [True]

    config["train"]["resume"] = True
    prefalign.train(config, quiet=True)
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp-")]  # the leftover is cleared
    straight_weights = load_file(straight_dir / "adapter" / "adapter_model.safetensors")
    resumed_weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    for name, tensor in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor)


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path, tiny_model_dir, monkeypatch):
    """The write of step-4's optimizer state fails with ENOSPC, as on a full disk; step-2 stays whole."""
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, data, run_dir, **SETTINGS)
    save = checkpoint_module.torch.save

    def full_disk(obj, path):
        if ".tmp-step-4" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        save(obj, path)

    monkeypatch.setattr(checkpoint_module.torch, "save", full_disk)
    with pytest.raises(CheckpointError) as caught:
        prefalign.train(config, quiet=True)
    root = run_dir / "checkpoints"
    message = str(caught.value)
    assert f"checkpoint step 4: could not write {root / '.tmp-step-4' / 'optimizer.pt'}: No space left" in message
    assert f"the previous checkpoint {root / 'step-2'} is intact" in message and "train.resume: true" in message
    assert caught.value.errno == errno.ENOSPC
    assert [p.name for p in root.iterdir()] == ["step-2"] and skipped_checkpoints(root) == []

    monkeypatch.setattr(checkpoint_module.torch, "save", save)  # space freed: the run continues from step 2
    config["train"]["resume"] = True
    assert prefalign.train(config, quiet=True).steps == 6


def test_unwritable_output_dir_fails_before_the_model_loads(tmp_path, toy_data):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    # model.path does not exist: had the model been loaded first, the error would be about it
    config = tiny_config(tmp_path / "no-model", toy_data, blocker / "run")
    with pytest.raises(ConfigError, match=re.escape(f"output.dir: cannot write {blocker / 'run'}: Not a directory")):
        prefalign.train(config, quiet=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="root ignores permissions only when it is root; see the test below")
def test_read_only_output_dir_as_root_is_named(tmp_path, toy_data):
    """Root writes through permission bits, so a read-only bind is not available; /proc refuses everyone."""
    config = tiny_config(tmp_path / "no-model", toy_data, "/proc/prefalign-run")
    with pytest.raises(ConfigError, match=re.escape("output.dir: cannot write /proc/prefalign-run")):
        prefalign.train(config, quiet=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_read_only_output_dir_is_named(tmp_path, toy_data):
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        config = tiny_config(tmp_path / "no-model", toy_data, parent / "run")
        expected = f"output.dir: cannot write {parent / 'run'}: Permission denied"
        with pytest.raises(ConfigError, match=re.escape(expected)):
            prefalign.train(config, quiet=True)
    finally:
        parent.chmod(0o700)


def test_the_written_config_records_the_run(tmp_path, tiny_model_dir, toy_data):
    """result.json counts the data's bad and repeated rows (data.json lists them)."""
    rows = toy_rows()
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in [*rows, rows[0]]) + "{broken\n")
    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, data, run_dir, data={"skip_bad_rows": True})
    prefalign.train(config, quiet=True)
    counts = json.loads((run_dir / "result.json").read_text())["data"]
    assert counts == {"rows_read": 18, "bad_rows_skipped": 1, "duplicates": 1, "dropped": 0, "truncated": 0}
    listed = json.loads((run_dir / "data.json").read_text())
    assert listed["bad_rows"][0].startswith(f"{data}: line 18: not valid JSON")
    assert listed["duplicates"][0].startswith(f"{data}: row 17: duplicate of {data}: row 1")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["skip_bad_rows"] is True


def _mount_tmpfs(path, size: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


def test_a_real_full_disk_during_a_checkpoint(tmp_path, tiny_model_dir, straight):
    """A tmpfs with room for one checkpoint and the logs, not two: the disk really fills while step-4 is
    written (where a tmpfs cannot be mounted, the injected ENOSPC test above stands in)."""
    data, straight_dir = straight
    one = sum(p.stat().st_size for p in (straight_dir / "checkpoints" / "step-2").iterdir())
    run_dir = tmp_path / "small-disk"
    if not _mount_tmpfs(run_dir, one * 3 // 2 + 64 * 1024):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        config = tiny_config(tiny_model_dir, data, run_dir, **SETTINGS)
        with pytest.raises(CheckpointError) as caught:
            prefalign.train(config, quiet=True)
        root = run_dir / "checkpoints"
        message = str(caught.value)
        assert message.startswith("checkpoint step 4: could not write") and " MiB free on that disk" in message
        assert f"the previous checkpoint {root / 'step-2'} is intact" in message
        assert [p.name for p in root.iterdir()] == ["step-2"] and latest_checkpoint(root) == root / "step-2"
    finally:
        subprocess.run(["umount", "--lazy", str(run_dir)], check=True)  # lazy: torch may still hold a file open


def test_a_loss_that_blows_up_stops_or_skips_the_step(tmp_path, tiny_model_dir):
    """A learning rate of 1e20: the first update is finite, and the weights it leaves overflow the next step."""
    from prefalign.training.loop import NonFiniteError

    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    train = {"max_steps": 5, "lr": 1e20, "warmup_ratio": 0.0, "schedule": "constant", "max_grad_norm": None,
             "batch_size": 2, "save_every": 1, "keep_checkpoints": 1}  # fmt: skip
    with pytest.raises(NonFiniteError) as caught:
        prefalign.train(tiny_config(tiny_model_dir, data, tmp_path / "stop", train=train), quiet=True)
    step, metric = caught.value.step, caught.value.metric
    assert (step, metric) == (2, "loss")
    root = tmp_path / "stop" / "checkpoints"
    assert str(caught.value).startswith(f"step {step}: {metric} is not finite; stopped before updating the weights "
                                        f"(the last checkpoint is {root / f'step-{step - 1}'})")  # fmt: skip
    assert "train.on_nonfinite: skip_step" in str(caught.value)
    logged = train_losses(tmp_path / "stop")
    assert len(logged) == step - 1 and all(map(math.isfinite, logged))  # the bad step is not logged as done

    train = {**train, "on_nonfinite": "skip_step", "save_every": None}
    result = prefalign.train(tiny_config(tiny_model_dir, data, tmp_path / "skip", train=train), quiet=True)
    assert result.steps == 5 and result.skipped_steps == [2, 3, 4, 5]  # the weights stay where step 1 left them
    assert json.loads((tmp_path / "skip" / "result.json").read_text())["skipped_steps"] == result.skipped_steps
    # the weights stay finite: a skipped step's update is never applied
    weights = load_file(tmp_path / "skip" / "adapter" / "adapter_model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
