"""Other tools' configs train here: each peer config (../shared/peers/configs), a TRL DPOConfig and an AutoTrain
command line train one step on the tiny model with only model.path (and, for hub datasets, the data path)
overridden, plus what keeps the test short (one step, no before/after answers). The run directory holds the
import table (config-import.md) beside the resolved config.yaml."""

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

import prefalign
from prefalign.cli import app
from prefalign.config import load_config
from prefalign.training.loop import make_optimizer
from prefalign.training.metrics import read_metrics
from tests.conftest import PEERS, assistant, tiny_config, user, write_jsonl

CONFIGS = PEERS / "configs"


def short(tmp_path, model_dir, *extra) -> list[str]:
    """The overrides every run here takes: the tiny model, one step, a run directory, no generations."""
    return [
        f"model.path={model_dir}", f"output.dir={tmp_path / 'run'}", "train.max_steps=1", "eval.before=false",
        "eval.generations=0", "data.max_length=128", *extra,
    ]  # fmt: skip


def trained(tmp_path) -> list[dict]:
    run_dir = tmp_path / "run"
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]
    assert len(records) == 1 and torch.isfinite(torch.tensor(records[0]["loss"]))
    return records


def import_table(tmp_path) -> str:
    return (tmp_path / "run" / "config-import.md").read_text()


def dpo_demo_rows(n: int) -> list[dict]:
    return json.loads((PEERS / "dpo_en_demo.json").read_text())[:n]


@pytest.mark.parametrize("name", ["qwen3_lora_dpo", "qwen3_lora_kto", "qwen3_lora_reward"])
def test_llamafactory_examples_train(tmp_path, tiny_model_dir, name):
    # dataset_dir names the folder of dataset_info.json; the examples read dpo_en_demo / kto_en_demo from it.
    overrides = short(tmp_path, tiny_model_dir, f"dataset_dir={PEERS}", "data.train.0.max_rows=12")
    result = prefalign.train(CONFIGS / f"llamafactory/{name}.yaml", overrides, quiet=True)
    assert result.steps == 1
    trained(tmp_path)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    expected = {"qwen3_lora_dpo": ("policy", "sigmoid"), "qwen3_lora_kto": ("policy", "kto"),
                "qwen3_lora_reward": ("reward", "bradley_terry")}[name]  # fmt: skip
    assert (saved["method"]["kind"], saved["method"]["loss"]) == expected
    assert saved["data"]["template"] == "chatml" and saved["model"]["lora"]["r"] == 8
    table = import_table(tmp_path)
    assert (
        table.startswith("# Imported from LLaMA-Factory")
        and "| `template` | `qwen3_nothink` | data.template |" in table
    )
    assert "| `ddp_timeout` | `180000000` | ignored | accepted, not needed |" in table


def test_axolotl_dpo_example_trains(tmp_path, tiny_model_dir):
    # The hub dataset's layout (chat_template.default with field_messages: conversation), written from the peer data.
    rows = [
        {"conversation": [user(r["conversations"][-1]["value"])], "chosen": assistant(r["chosen"]["value"]),
         "rejected": assistant(r["rejected"]["value"])}
        for r in dpo_demo_rows(12)
    ]  # fmt: skip
    data = write_jsonl(tmp_path / "alpaca_messages.jsonl", rows)
    # flash_attention: true asks for flash-attn on a CUDA GPU; this CPU runs sdpa. adamw_bnb_8bit is
    # train.optimizer adamw_8bit (bitsandbytes runs on CPU too).
    overrides = short(tmp_path, tiny_model_dir, f"data.train.0.path={data}", "model.attention=sdpa")
    result = prefalign.train(load_config(CONFIGS / "axolotl/qwen2-dpo.yaml", overrides), quiet=True)
    assert result.steps == 1
    trained(tmp_path)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["method"]["loss"], saved["model"]["lora"], saved["data"]["template"]) == ("sigmoid", None, "qwen")
    assert saved["train"]["warmup_steps"] == 10
    table = import_table(tmp_path)
    assert saved["train"]["optimizer"] == "adamw_8bit"
    assert "| `optimizer` | `adamw_bnb_8bit` | train.optimizer |" in table
    assert "Not honoured" not in table


def test_axolotl_reward_example_trains(tmp_path, tiny_model_dir):
    # argilla/distilabel-intel-orca-dpo-pairs' columns: system, input, chosen, rejected.
    rows = [
        {"system": "", "input": r["conversations"][-1]["value"], "chosen": r["chosen"]["value"],
         "rejected": r["rejected"]["value"], "generations": ["a", "b"]}
        for r in dpo_demo_rows(12)
    ]  # fmt: skip
    data = write_jsonl(tmp_path / "orca_pairs.jsonl", rows)
    overrides = short(tmp_path, tiny_model_dir, f"data.train.0.path={data}", "model.attention=sdpa",
                      "train.mixed_precision=auto")  # fmt: skip
    config = load_config(CONFIGS / "axolotl/qwen2-reward-model.yaml", overrides, lenient=True)
    assert prefalign.train(config, quiet=True).steps == 1
    trained(tmp_path)
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["method"]["kind"] == "reward"


def test_trl_dpo_config_trains(tmp_path, tiny_model_dir, toy_data):
    from trl import DPOConfig

    args = DPOConfig(
        output_dir="trl-out",
        use_cpu=True,
        bf16=False,
        learning_rate=1e-3,
        beta=0.2,
        per_device_train_batch_size=4,
        loss_type=["sigmoid"],
        max_length=64,
        gradient_checkpointing=False,
    )
    path = tmp_path / "dpo_config.yaml"  # fmt: skip
    path.write_text(yaml.safe_dump(args.to_dict()))
    # TRL names its dataset outside the config: data.train is the one override it needs beyond model.path.
    result = prefalign.train(path, short(tmp_path, tiny_model_dir, f"data.train={toy_data}"), quiet=True)
    assert result.steps == 1
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["method"]["beta"], saved["train"]["lr"], saved["train"]["batch_size"]) == (0.2, 1e-3, 4)
    assert "| `learning_rate` | `0.001` | train.lr |" in import_table(tmp_path)


def test_autotrain_command_trains(tmp_path, tiny_model_dir):
    rows = [{"question": f"Q{i}?", "better": f"Good answer {i}.", "worse": f"bad {i}"} for i in range(8)]
    data = write_jsonl(tmp_path / "prefs.jsonl", rows)
    args = [
        "autotrain", "llm", "--train", "--model", str(tiny_model_dir), "--data-path", str(data), "--trainer", "dpo",
        "--project-name", str(tmp_path / "run"), "--prompt-text-column", "question", "--text-column", "better",
        "--rejected-text-column", "worse", "--dpo-beta", "0.2", "--peft", "--lora-r", "4", "--lora-alpha", "8",
        "--lr", "1e-3", "--batch-size", "4", "--gradient-accumulation", "1",
        "train.max_steps=1", "eval.before=false", "eval.generations=0",
    ]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    trained(tmp_path)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["train"][0]["columns"] == {"prompt": "question", "chosen": "better", "rejected": "worse"}
    assert (saved["method"]["beta"], saved["model"]["lora"]["r"], saved["output"]["save"]) == (0.2, 4, ["adapter"])
    assert "| `(max_prompt_length)` | `128` | data.max_prompt_length | AutoTrain's default |" in import_table(tmp_path)


def test_convert_writes_a_config_that_trains_the_same(tmp_path, tiny_model_dir):
    out = tmp_path / "converted.yaml"
    args = ["config", "convert", str(CONFIGS / "llamafactory/qwen3_lora_dpo.yaml"), f"dataset_dir={PEERS}",
            f"model.path={tiny_model_dir}", "-o", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "  loss: sigmoid  # from: stage, pref_loss" in text and "  lr: 5.0e-06  # from: learning_rate" in text
    direct = load_config(CONFIGS / "llamafactory/qwen3_lora_dpo.yaml", [f"dataset_dir={PEERS}",
                                                                        f"model.path={tiny_model_dir}"])  # fmt: skip
    assert load_config(out).model_dump() == direct.model_dump()


# --- defaults follow the data --------------------------------------------------------------------------------


def kto_rows() -> list[dict]:
    return [{"prompt": f"Q{i}?", "completion": f"Answer {i}.", "label": i % 2 == 0} for i in range(8)]


def test_unpaired_data_with_no_loss_named_trains_kto(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "kto.jsonl", kto_rows())
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", train={"max_steps": 1, "batch_size": 4})
    del config["method"]  # no loss named: the recipe's sigmoid + NLL would need pairs
    result = prefalign.train(config, quiet=True)
    assert result.steps == 1
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["method"]["loss"], saved["method"]["rpo_alpha"]) == ("kto", None)
    # a loss named explicitly is trained as named: sigmoid on unpaired rows is still an error
    config = tiny_config(tiny_model_dir, data, tmp_path / "run2", train={"max_steps": 1})
    with pytest.raises(prefalign.ConfigError, match=r"method\.loss: sigmoid needs pairs"):
        prefalign.train(config, quiet=True)


def test_data_validate_names_the_loss_the_data_gets(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "kto.jsonl", kto_rows())
    config = tiny_config(tiny_model_dir, data, tmp_path / "run")
    del config["method"]
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    out = CliRunner().invoke(app, ["data", "validate", str(path)])
    assert out.exit_code == 0, out.output
    assert "Loss: kto: no loss named, and the data is unpaired (prompt, completion, label)" in out.stdout
    assert "Result: ready to train" in out.stdout
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Q", "chosen": "A", "rejected": "B"}])
    path.write_text(yaml.safe_dump({**config, "data": {"train": str(pairs)}}))
    out = CliRunner().invoke(app, ["data", "validate", str(path)])
    assert "Loss: sigmoid + sft (the recipe: no loss named)" in out.stdout


def test_warmup_steps_sets_the_warm_up_in_steps():
    params = [torch.nn.Parameter(torch.zeros(1))]
    cfg = load_config({"data": {"train": "x.jsonl"}, "train": {"warmup_steps": 3, "lr": 1.0, "schedule": "constant"}})
    optimizer, scheduler = make_optimizer(params, cfg.train, total_steps=100)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0, 1.0])  # 3 steps of warm-up, not 10% of 100


def test_train_command_refuses_what_it_cannot_honour_before_any_model_loads(tmp_path):
    run_dir = tmp_path / "run"
    text = (CONFIGS / "axolotl/qwen2-dpo.yaml").read_text()
    config = tmp_path / "qwen2-dpo-ia3.yaml"
    config.write_text(text + "adapter: ia3\n")  # an adapter kind prefalign does not train
    args = ["train", str(config), f"output.dir={run_dir}"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2
    line = len(text.splitlines()) + 1
    assert f"line {line}: adapter: 'ia3'" in out.output and "--lenient" in out.output
    assert not run_dir.exists()
    out = CliRunner().invoke(app, [*args, "--from", "unsloth"])
    assert out.exit_code == 2 and "--from unsloth: unknown; prefalign reads axolotl, llamafactory, trl" in out.output
