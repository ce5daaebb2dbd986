"""End-to-end runs on the tiny model: outputs, invariances (accumulation, resume), reference strategies."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import prefalign
from prefalign.config import ConfigError
from prefalign.training.metrics import read_metrics
from tests.conftest import REPO, tiny_config, toy_rows, write_jsonl


def train_records(run_dir: Path) -> list[dict]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]


def test_lora_run_writes_everything_users_load(tiny_model_dir, toy_data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path / "run"
    config = tiny_config(
        tiny_model_dir, toy_data, run_dir,
        data={"eval_fraction": 0.25},
        train={"max_steps": 3, "eval_every": 2},
        output={"save": ["adapter", "merged"]},
        eval={"generations": 1, "max_new_tokens": 4, "before": True},
    )  # fmt: skip
    result = prefalign.train(config, quiet=True)

    assert result.steps == 3 and result.run_dir == run_dir
    # the resolved config, every default filled in, reproduces the run's config
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["train"]["max_steps"] == 3 and written["train"]["warmup_ratio"] == 0.1
    assert prefalign.load_config(written) == prefalign.load_config(config)

    records = read_metrics(run_dir / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in records] == [
        (1, "train"),
        (2, "train"),
        (2, "eval"),
        (3, "train"),
        (3, "eval"),
    ]
    for record in records:
        assert {"step", "epoch", "split", "loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies",
                "rewards/margins", "logps/chosen", "logps/rejected"} <= record.keys()  # fmt: skip
    assert {"grad_norm", "lr", "tokens_per_s"} <= records[0].keys()
    assert records[0]["epoch"] == pytest.approx(1 / 3, abs=1e-4)  # 12 training pairs, 4 per step
    assert result.before is not None and result.after["loss"] == records[-1]["loss"]
    assert len(result.generations) == 1 and set(result.generations[0]) == {"prompt", "before", "after"}

    # the adapter loads with PEFT, the merged model with transformers, and both give the same logits
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    policy = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged").eval()
    ids = torch.tensor([[1, 520, 3000, 42, 7, 99]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, policy(ids).logits, rtol=1e-4, atol=1e-4)
        with policy.disable_adapter():
            assert not torch.allclose(policy(ids).logits, merged(ids).logits, atol=1e-4)  # training changed it
    assert (run_dir / "merged" / "model.safetensors").is_file() and (run_dir / "merged" / "tokenizer.json").is_file()
    # Readable as a plain open would make them: safetensors' writer and the temporary directories are private.
    umask = os.umask(0)
    os.umask(umask)
    for path in [*(run_dir / "adapter").rglob("*"), *(run_dir / "merged").rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o777 if path.is_dir() else 0o666) & ~umask, path

    card = (run_dir / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == str(tiny_model_dir) and front["library_name"] == "peft"
    assert {"prefalign", "dpo", "lora"} <= set(front["tags"])
    assert "rewards/margins" in card
    # nothing is written outside the run directory (the tiny model dir and the data stay as they were)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "toy.jsonl"]


def test_existing_run_directory_is_never_clobbered(tiny_model_dir, toy_data, tmp_path):
    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, toy_data, run_dir, train={"max_steps": 1})
    prefalign.train(config, quiet=True)
    with pytest.raises(ConfigError, match="exists and is not empty"):
        prefalign.train(config, quiet=True)
    prefalign.train(config, ["output.overwrite=true"], quiet=True)  # our own run: may be replaced

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a prefalign run"):
        prefalign.train(config, [f"output.dir={foreign}", "output.overwrite=true"], quiet=True)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_runs_in_one_process_may_change_precision(tiny_model_dir, toy_data, tmp_path):
    """A notebook or a sweep trains several runs in one process; accelerate's process-wide state must not pin the first
    run's precision on the next."""
    for precision in ("bf16", "no"):
        run_dir = tmp_path / precision
        config = tiny_config(tiny_model_dir, toy_data, run_dir, train={"max_steps": 1, "mixed_precision": precision})
        prefalign.train(config, quiet=True)
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["mixed_precision"] == precision


def test_accumulation_gives_the_same_updates(tiny_model_dir, tmp_path):
    """batch 8 × accum 1 and batch 4 × accum 2 (and 2 × 4) log the same losses and end at the same weights."""
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    runs = {}
    for batch_size, accum in ((8, 1), (4, 2), (2, 4)):
        run_dir = tmp_path / f"b{batch_size}a{accum}"
        config = tiny_config(
            tiny_model_dir,
            data,
            run_dir,
            train={"batch_size": batch_size, "grad_accum": accum, "max_steps": 4},
        )
        prefalign.train(config, quiet=True)
        runs[(batch_size, accum)] = (
            train_records(run_dir),
            load_file(run_dir / "adapter" / "adapter_model.safetensors"),
        )
    (ref_records, ref_weights), *others = runs.values()
    assert ref_records[-1]["loss"] < ref_records[0]["loss"]  # it learns, so the comparison means something
    for records, weights in others:
        for a, b in zip(ref_records, records, strict=True):
            for key in ("loss", "rewards/margins", "logps/chosen", "grad_norm"):
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
        for name, tensor in ref_weights.items():
            torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-6)


# adamw_8bit: LoRA r 64 on the tiny model's 64-wide layers gives tensors of ≥ 4096 elements, the size from which
# bitsandbytes keeps 8-bit state (smaller ones it keeps in 32 bits), so the checkpoint holds 8-bit state.
@pytest.mark.parametrize(("optimizer", "rank"), [("adamw", 4), pytest.param("adamw_8bit", 64, id="adamw_8bit")])
def test_killed_run_resumes_and_logs_the_same_losses(tiny_model_dir, tmp_path, optimizer, rank):
    """SIGKILL a real `python -m prefalign train` after a checkpoint; `--resume` reproduces the straight run."""
    if optimizer != "adamw":
        pytest.importorskip("bitsandbytes")
    data = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    settings = dict(
        train={"max_steps": 8, "save_every": 2, "batch_size": 2, "optimizer": optimizer},
        model={"lora": {"r": rank, "dropout": 0.1}},
    )
    straight = tmp_path / "straight"
    prefalign.train(tiny_config(tiny_model_dir, data, straight, **settings), quiet=True)

    resumed = tmp_path / "resumed"
    config_file = tmp_path / "resumed.yaml"
    config_file.write_text(yaml.safe_dump(tiny_config(tiny_model_dir, data, resumed, **settings)))
    command = [sys.executable, "-m", "prefalign", "train", str(config_file)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (resumed / "checkpoints" / "step-2").is_dir():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    logged = train_records(resumed)
    assert len(logged) < 8, "the run finished before it could be interrupted"

    finished = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    a, b = train_records(straight), train_records(resumed)
    assert [r["step"] for r in b] == list(range(1, 9))
    for x, y in zip(a, b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5), f"step {x['step']}"
        assert y["rewards/margins"] == pytest.approx(x["rewards/margins"], rel=1e-4, abs=1e-7)
    straight_weights = load_file(straight / "adapter" / "adapter_model.safetensors")
    resumed_weights = load_file(resumed / "adapter" / "adapter_model.safetensors")
    for name, tensor in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor)
    assert not list((resumed / "checkpoints").glob(".tmp-*"))
    if optimizer == "adamw_8bit":  # the checkpoint really held 8-bit state
        checkpoint = max((resumed / "checkpoints").glob("step-*"), key=lambda p: int(p.name.removeprefix("step-")))
        state = torch.load(checkpoint / "optimizer.pt", weights_only=False)["state"]
        # bitsandbytes packs its state per tensor; k/v projections' B (32 × 64) stay under 4096, so 32-bit
        eight_bit = [e for e in state.values() if e["__bnb_optimizer_quant_state__"]["state1"].dtype == torch.uint8]
        assert len(eight_bit) >= len(state) // 2, (len(eight_bit), len(state))


def test_sft_adapter_is_the_reference(tiny_model_dir, toy_data, tmp_path):
    """Starting from a saved adapter, the reference is that adapter, not the bare base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    sft = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"),
    )
    torch.manual_seed(1)
    for name, p in sft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)  # an adapter that really changes the model
    sft.save_pretrained(tmp_path / "sft")

    run_dir = tmp_path / "run"
    config = tiny_config(
        tiny_model_dir, toy_data, run_dir, model={"adapter": str(tmp_path / "sft")}, train={"max_steps": 3}
    )
    prefalign.train(config, quiet=True)
    first = train_records(run_dir)[0]
    # before the first update the policy *is* the SFT adapter; a bare-base reference would give non-zero rewards
    assert first["rewards/chosen"] == pytest.approx(0.0, abs=1e-6)
    assert first["rewards/rejected"] == pytest.approx(0.0, abs=1e-6)
    assert first["loss"] == pytest.approx(0.693147, abs=1e-5)
    assert train_records(run_dir)[2]["rewards/margins"] != 0.0  # step 1 is warm-up at lr 0
    saved = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert saved["r"] == 4 and not (run_dir / "adapter" / "reference").exists()


def test_full_fine_tuning_with_a_frozen_copy(tiny_model_dir, toy_data, tmp_path):
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path / "run"
    config = tiny_config(
        tiny_model_dir, toy_data, run_dir, model={"lora": None}, train={"max_steps": 3, "lr": 1e-3},
        output={"save": ["merged"]},
    )  # fmt: skip
    prefalign.train(config, quiet=True)
    records = train_records(run_dir)
    assert records[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)  # the copy equals the start
    assert records[-1]["rewards/margins"] > 0
    yaml_config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert yaml_config["model"]["lora"] is None and yaml_config["reference"]["mode"] == "auto"
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged")
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(merged.model.layers[0].mlp.up_proj.weight, original.model.layers[0].mlp.up_proj.weight)


def rewards_by_hand(config: dict, policy_dir: Path, reference_dir: Path) -> dict[str, float]:
    """DPO's mean implicit rewards β·(log π − log π_ref) over the held-out pairs, through full logits."""
    from transformers import AutoModelForCausalLM

    from prefalign.config import load_config
    from prefalign.data import prepare_data
    from prefalign.data.layout import padded
    from prefalign.model.load import load_tokenizer
    from prefalign.scoring.logps import naive_sequence_logps

    run_config = load_config(config)
    tokenizer = load_tokenizer(run_config.model)
    pairs = prepare_data(run_config.data, tokenizer, run_config.train.seed).eval.to_list()
    batch = padded(pairs, tokenizer.pad_token_id)
    with torch.no_grad():
        policy = naive_sequence_logps(AutoModelForCausalLM.from_pretrained(policy_dir), batch)
        ref = naive_sequence_logps(AutoModelForCausalLM.from_pretrained(reference_dir), batch)
    beta = run_config.method.beta
    return {
        "rewards/chosen": (beta * (policy.chosen_logps - ref.chosen_logps)).mean().item(),
        "rewards/rejected": (beta * (policy.rejected_logps - ref.rejected_logps)).mean().item(),
    }


def test_reference_path_is_loaded(tiny_model_dir, toy_data, tmp_path, tokenizer):
    """reference.path: another checkpoint is the reference; the held-out rewards before training (LoRA starts as
    the base model) are β·(log π − log π_ref) with π_ref that checkpoint, computed here by hand."""
    from tests.conftest import make_tiny_model

    other = tmp_path / "other"
    make_tiny_model(tokenizer, seed=7).save_pretrained(other)
    run_dir = tmp_path / "run"
    config = tiny_config(
        tiny_model_dir,
        toy_data,
        run_dir,
        data={"eval": str(toy_data)},
        reference={"mode": "model", "path": str(other)},
        train={"max_steps": 1, "mixed_precision": "no"},
        eval={"before": True},
    )
    result = prefalign.train(config, quiet=True)
    expected = rewards_by_hand(config, tiny_model_dir, other)
    assert abs(expected["rewards/chosen"]) > 1e-3  # the two models differ: a policy-as-reference bug shows
    for name, value in expected.items():
        assert result.before[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
