"""Other tools' configs (Axolotl, LLaMA-Factory, TRL, AutoTrain) read as they are: detection, the translation of
every key (the import table checked key by key), the datasets they describe, `config convert`, and the errors
for what cannot be read. No model is loaded here; tests/test_dialects_train.py trains each one step."""

import dataclasses

import pytest
import yaml

from prefalign.config import ConfigError, load_config
from prefalign.dialects import detect, import_config
from prefalign.dialects.autotrain import parse_args
from prefalign.dialects.convert import converted_yaml
from prefalign.dialects.hf_args import TRAINING_ARGUMENTS
from prefalign.dialects.trl import TRL_FIELDS
from tests.conftest import PEERS

CONFIGS = PEERS / "configs"
LF_DIR = f"dataset_dir={PEERS}"


def outcomes(config) -> dict[str, str]:
    """Each foreign key's outcome: the prefalign key(s) it became, or ignored / refused / needs ..."""
    return {row.key: row.outcome for row in config.import_table.rows}


# --- LLaMA-Factory -------------------------------------------------------------------------------------------

LF_COMMON = {
    "model_name_or_path": "model.path",
    "trust_remote_code": "model.trust_remote_code",
    "do_train": "ignored",
    "finetuning_type": "ignored",
    "lora_rank": "model.lora.r",
    "(lora_alpha)": "model.lora.alpha",
    "lora_target": "model.lora.target_modules",
    "template": "data.template",
    "cutoff_len": "data.max_length, data.max_prompt_length",
    "max_samples": "ignored",
    "preprocessing_num_workers": "ignored",
    "dataloader_num_workers": "ignored",
    "output_dir": "output.dir",
    "logging_steps": "train.log_every",
    "save_steps": "train.save_every",
    "plot_loss": "ignored",
    "overwrite_output_dir": "output.overwrite",
    "report_to": "ignored",
    "per_device_train_batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.grad_accum",
    "learning_rate": "train.lr",
    "num_train_epochs": "train.epochs",
    "lr_scheduler_type": "train.schedule",
    "warmup_ratio": "train.warmup_ratio",
    "bf16": "train.mixed_precision",
    "ddp_timeout": "ignored",
    "dataset_dir": "ignored",
}


def test_llamafactory_dpo_example_every_key():
    config = load_config(CONFIGS / "llamafactory/qwen3_lora_dpo.yaml", [LF_DIR])
    assert outcomes(config) == {
        **LF_COMMON,
        "stage": "method.loss",
        "pref_loss": "method.loss",
        "pref_beta": "method.beta",
        "(pref_ftx)": "method.rpo_alpha",
        "dataset: dpo_en_demo": "data.train",
        "save_only_model": "ignored",
        "resume_from_checkpoint": "ignored",
    }
    m, d, t = config.method, config.data, config.train
    # LLaMA-Factory's DPO is plain DPO unless pref_ftx: no NLL term.
    assert (m.kind, m.loss, m.beta, m.rpo_alpha) == ("policy", "sigmoid", 0.1, None)
    assert (config.model.path, config.model.trust_remote_code) == ("Qwen/Qwen3-4B-Instruct-2507", True)
    lora = config.model.lora
    assert (lora.r, lora.alpha, lora.target_modules) == (8, 16.0, "all-linear")  # alpha: LLaMA-Factory's 2 × rank
    [source] = d.train
    assert source.path == str(PEERS / "dpo_en_demo.json") and source.format == "sharegpt"
    assert source.columns == {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}
    assert source.max_rows == 1000
    assert (d.template, d.max_length, d.max_prompt_length) == ("chatml", 2048, None)
    assert (t.batch_size, t.grad_accum, t.lr, t.epochs, t.schedule, t.warmup_ratio) == (1, 8, 5e-6, 3, "cosine", 0.1)
    assert (t.mixed_precision, t.log_every, t.save_every) == ("bf16", 10, 500)
    assert config.output.dir == "saves/qwen3-4b/lora/dpo" and config.output.overwrite


def test_llamafactory_kto_example_every_key():
    config = load_config(CONFIGS / "llamafactory/qwen3_lora_kto.yaml", [LF_DIR])
    assert outcomes(config) == {
        **LF_COMMON,
        "stage": "method.loss, method.rpo_alpha",
        "pref_beta": "method.beta",
        "dataset: kto_en_demo": "data.train",
        "per_device_train_batch_size": "train.batch_size, train.grad_accum",
    }
    assert (config.method.loss, config.method.beta, config.method.rpo_alpha) == ("kto", 0.1, None)
    [source] = config.data.train
    assert source.format == "sharegpt_kto" and source.columns == {"messages": "messages", "kto_tag": "label"}
    assert source.tags == {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
    }
    # KTO estimates its KL term from the other rows of a micro-batch: 2 × 4 keeps LLaMA-Factory's 8 rows a step.
    assert (config.train.batch_size, config.train.grad_accum) == (2, 4)


def test_llamafactory_reward_example_every_key():
    config = load_config(CONFIGS / "llamafactory/qwen3_lora_reward.yaml", [LF_DIR])
    assert outcomes(config) == {
        **LF_COMMON,
        "stage": "method.kind",
        "dataset: dpo_en_demo": "data.train",
        "save_only_model": "ignored",
        "resume_from_checkpoint": "ignored",
    }
    assert (config.method.kind, config.method.loss, config.train.lr) == ("reward", "bradley_terry", 1e-4)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"pref_loss": "orpo", "pref_beta": 0.25}, {"loss": "orpo", "orpo_lambda": 0.25}),  # pref_beta is ORPO's λ
        ({"pref_loss": "simpo", "pref_beta": 2.0, "simpo_gamma": 0.8}, {"loss": "simpo", "beta": 2.0, "gamma": 0.8}),
        ({"pref_ftx": 0.5}, {"loss": "sigmoid", "rpo_alpha": 0.5}),  # the SFT weight is RPO's alpha
        ({"pref_loss": "ipo", "pref_beta": 0.3}, {"loss": "ipo", "beta": 0.3}),
    ],
)
def test_llamafactory_values_that_change_meaning(tmp_path, settings, expected):
    raw = yaml.safe_load((CONFIGS / "llamafactory/qwen3_lora_dpo.yaml").read_text())
    raw.pop("pref_beta"), raw.pop("pref_loss")
    config = load_config({**raw, **settings}, [LF_DIR])
    assert {key: getattr(config.method, key) for key in expected} == expected


def test_llamafactory_dataset_errors(tmp_path):
    raw = yaml.safe_load((CONFIGS / "llamafactory/qwen3_lora_dpo.yaml").read_text())
    with pytest.raises(ConfigError, match=r"dataset 'dpo_zh_demo' is not in .*dataset_info.json; it has: dpo_en_demo, "
                                          r"kto_en_demo"):  # fmt: skip
        load_config({**raw, "dataset": "dpo_zh_demo"}, [LF_DIR])
    with pytest.raises(ConfigError, match=r"no dataset_info.json in .*set dataset_dir"):
        load_config({**raw, "dataset_dir": str(tmp_path)})
    # unpaired data under stage dpo
    with pytest.raises(ConfigError, match="'kto_en_demo' is not preference data"):
        load_config({**raw, "dataset": "kto_en_demo"}, [LF_DIR])
    with pytest.raises(ConfigError, match=r"stage 'ppo' \(online RL"):
        load_config({**raw, "stage": "ppo"}, [LF_DIR])


# --- Axolotl -------------------------------------------------------------------------------------------------


def test_axolotl_dpo_example_every_key():
    path = CONFIGS / "axolotl/qwen2-dpo.yaml"
    # Every key is honoured: the 8-bit optimizer is train.optimizer adamw_8bit (bitsandbytes, the quant extra).
    config = load_config(path)
    assert config.train.optimizer == "adamw_8bit"
    got = outcomes(config)
    unset = [key for key, value in yaml.safe_load(path.read_text()).items() if value is None]
    assert all(got[key] == "ignored" for key in unset)  # wandb_project:, fp16:, deepspeed:, ... listed, not set
    assert {k: v for k, v in got.items() if k not in unset} == {
        "rl": "method.loss, method.rpo_alpha",
        "datasets[0]": "data.train",
        "chat_template": "data.template",
        "(adapter)": "model.lora",
        "base_model": "model.path",
        "strict": "ignored",
        "val_set_size": "data.eval_fraction",
        "output_dir": "output.dir",
        "sequence_len": "data.max_length",
        "sample_packing": "ignored",
        "pad_to_sequence_len": "ignored",
        "gradient_accumulation_steps": "train.grad_accum",
        "micro_batch_size": "train.batch_size",
        "num_epochs": "train.epochs",
        "optimizer": "train.optimizer",
        "lr_scheduler": "train.schedule",
        "learning_rate": "train.lr",
        "train_on_inputs": "ignored",
        "group_by_length": "ignored",
        "bf16": "train.mixed_precision",
        "tf32": "ignored",
        "gradient_checkpointing": "train.gradient_checkpointing",
        "logging_steps": "train.log_every",
        "flash_attention": "model.attention",
        "warmup_steps": "train.warmup_steps",
        "evals_per_epoch": "ignored",
        "eval_max_new_tokens": "eval.max_new_tokens",
        "saves_per_epoch": "ignored",
        "weight_decay": "train.weight_decay",
    }
    m, d, t = config.method, config.data, config.train
    assert (m.loss, m.rpo_alpha, config.model.lora) == ("sigmoid", None, None)  # no adapter: every weight
    assert (config.model.path, config.model.attention) == ("Qwen/Qwen2.5-0.5B", "flash_attention_2")
    [source] = d.train
    assert (source.path, source.format, source.field_messages) == (
        "fozziethebeat/alpaca_messages_2k_dpo_test", "axolotl_chat_template", "conversation"
    )  # fmt: skip
    assert source.roles == {"system": ["system"], "user": ["user"], "assistant": ["assistant"]}
    assert (d.template, d.max_length, d.eval_fraction) == ("qwen", 2048, 0.0)
    assert (t.batch_size, t.grad_accum, t.epochs, t.lr, t.schedule) == (2, 4, 4, 2e-4, "cosine")
    assert (t.mixed_precision, t.gradient_checkpointing, t.log_every, t.warmup_steps) == ("auto", True, 1, 10)
    assert config.eval.max_new_tokens == 128 and config.output.save == ["merged"]


def test_axolotl_reward_example_every_key():
    path = CONFIGS / "axolotl/qwen2-reward-model.yaml"
    config = load_config(path, lenient=True)
    got = outcomes(config)
    unset = [key for key, value in yaml.safe_load(path.read_text()).items() if value is None]
    assert all(got[key] == "ignored" for key in unset)
    assert {k: v for k, v in got.items() if k not in unset} == {
        "reward_model": "method.kind",
        "datasets[0]": "data.train",
        "chat_template": "data.template",
        "(adapter)": "model.lora",
        "base_model": "model.path",
        "model_type": "ignored",
        "num_labels": "ignored",
        "tokenizer_type": "ignored",
        "val_set_size": "data.eval_fraction",
        "output_dir": "output.dir",
        "remove_unused_columns": "ignored",
        "sequence_len": "data.max_length",
        "sample_packing": "ignored",
        "eval_sample_packing": "ignored",
        "gradient_accumulation_steps": "train.grad_accum",
        "micro_batch_size": "train.batch_size",
        "num_epochs": "train.epochs",
        "optimizer": "train.optimizer",
        "lr_scheduler": "train.schedule",
        "learning_rate": "train.lr",
        "bf16": "train.mixed_precision",
        "tf32": "ignored",
        "gradient_checkpointing": "train.gradient_checkpointing",
        "gradient_checkpointing_kwargs": "ignored",
        "logging_steps": "train.log_every",
        "attn_implementation": "model.attention",
        "warmup_ratio": "train.warmup_ratio",
        "saves_per_epoch": "ignored",
        "weight_decay": "train.weight_decay",
    }
    [source] = config.data.train
    # bradley_terry.chat_template reads system, input, chosen, rejected strings through the chat template.
    assert (source.format, source.columns, config.data.template) == ("trl_standard", {"prompt": "input"}, "qwen")
    assert (config.method.kind, config.train.mixed_precision) == ("reward", "bf16")


def axolotl(**settings) -> dict:
    return {"base_model": "m", "rl": "dpo", "datasets": [{"path": "d.jsonl", "type": "chatml.intel"}], **settings}


@pytest.mark.parametrize(
    ("rl", "kind", "fmt", "columns", "template"),
    [
        ("dpo", "chatml.intel", "trl_standard", {"prompt": "question"}, "chatml"),
        ("dpo", "llama3.icr", "trl_standard", {"prompt": "input"}, "llama3"),
        ("dpo", "chatml.argilla", "trl_standard",
         {"prompt": "instruction", "chosen": "chosen_response", "rejected": "rejected_response"}, "chatml"),
        ("dpo", "chatml.prompt_pairs", "trl_standard", None, "chatml"),
        ("dpo", "chatml.argilla_chat", "trl_conversational", None, "chatml"),
        ("kto", "chatml.intel", "trl_unpaired_standard", {"prompt": "question"}, "chatml"),
        ("kto", "llama3.ultra", "trl_unpaired_standard", None, "llama3"),
    ],
)  # fmt: skip
def test_axolotl_dataset_types(rl, kind, fmt, columns, template):
    config = load_config(axolotl(rl=rl, datasets=[{"path": "d.jsonl", "type": kind}]))
    [source] = config.data.train
    assert (source.format, source.columns, config.data.template) == (fmt, columns, template)
    assert config.method.loss == {"dpo": "sigmoid", "kto": "kto"}[rl]


def test_axolotl_user_defined_and_ultra():
    item = {"path": "d.jsonl", "type": "user_defined.default", "field_prompt": "q", "field_chosen": "a",
            "field_rejected": "b", "prompt_format": "{prompt}"}  # fmt: skip
    [source] = load_config(axolotl(datasets=[item])).data.train
    assert (source.format, source.columns) == ("trl_standard", {"prompt": "q", "chosen": "a", "rejected": "b"})
    with pytest.raises(ConfigError, match=r"datasets\[0\].prompt_format: .*format strings are not applied"):
        load_config(axolotl(datasets=[{**item, "prompt_format": "[INST] {prompt} [/INST]"}]))
    [source] = load_config(axolotl(datasets=[{"path": "d.jsonl", "type": "chatml.ultra"}])).data.train
    assert (source.format, source.field_messages) == ("axolotl_chat_template", "prompt")


def test_axolotl_values_that_change_meaning():
    config = load_config(axolotl(rl="ipo", adapter="lora", lora_r=4, lora_alpha=8, lora_target_linear=True,
                                 rl_beta=0.2))  # fmt: skip
    assert (config.method.loss, config.method.beta) == ("ipo", 0.2)
    assert (config.model.lora.r, config.model.lora.target_modules) == (4, "all-linear")
    config = load_config(axolotl(rl="orpo", orpo_alpha=0.3))
    assert (config.method.loss, config.method.orpo_lambda) == ("orpo", 0.3)  # Axolotl's orpo_alpha is ORPO's λ


def test_axolotl_errors():
    with pytest.raises(ConfigError, match=r"grpo is an online RL method .* prefalign trains offline"):
        load_config(axolotl(rl="grpo"))
    with pytest.raises(ConfigError, match=r"datasets\[0\].type: type 'alpaca' is not one prefalign reads for a "
                                          r"rl: dpo; it reads: chat_template.default, .*chatml.intel"):  # fmt: skip
        load_config(axolotl(datasets=[{"path": "d.jsonl", "type": "alpaca"}]))
    # an unknown key is refused (named), unless lenient, which lists it as not honoured
    with pytest.raises(ConfigError, match=r"1 key\(s\) prefalign cannot honour.*\n  lora_modules_to_save"):
        load_config(axolotl(adapter="lora", lora_modules_to_save=["embed_tokens"]))
    config = load_config(axolotl(adapter="lora", lora_modules_to_save=["embed_tokens"]), lenient=True)
    assert outcomes(config)["lora_modules_to_save"] == "refused"


# --- TRL -----------------------------------------------------------------------------------------------------


def trl_dict(config_class, **settings) -> dict:
    # As TRL users have them: the config object's own dump, through YAML.
    args = config_class(output_dir="out", use_cpu=True, bf16=False, **settings)
    return yaml.safe_load(yaml.safe_dump(args.to_dict()))


def test_trl_dpo_config_every_key(tmp_path):
    from trl import DPOConfig

    raw = trl_dict(DPOConfig, learning_rate=5e-6, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                   loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5], max_length=512, beta=0.2,
                   precompute_ref_log_probs=True, num_train_epochs=2, warmup_steps=0.1)  # fmt: skip
    assert detect(raw, "x") == "trl"
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"names no dataset prefalign can read: add data\.train=PATH"):
        load_config(path)
    config = load_config(path, ["data.train=pairs.jsonl"])
    got = outcomes(config)
    assert set(raw) <= set(got)  # every key of the dump has its row
    assert {row.action for row in config.import_table.rows} <= {"set", "ignored"}
    m, t, d = config.method, config.train, config.data
    assert (m.loss, m.loss_weights, m.beta, m.rpo_alpha) == (["sigmoid", "sft"], [1.0, 0.5], 0.2, None)
    assert (t.lr, t.batch_size, t.grad_accum, t.epochs, t.warmup_ratio, t.schedule) == (5e-6, 4, 2, 2, 0.1, "linear")
    assert (d.max_length, d.max_prompt_length, config.reference.mode) == (512, None, "precomputed")
    assert (t.gradient_checkpointing, t.log_every, t.mixed_precision) == (True, 10, "no")
    assert got["learning_rate"] == "train.lr" and got["optim"] == "train.optimizer"  # adamw_torch_fused: adamw
    assert t.optimizer == "adamw"


def test_trl_kto_and_reward_configs_are_told_apart():
    from trl import KTOConfig, RewardConfig

    config = load_config(trl_dict(KTOConfig, desirable_weight=1.5, per_device_train_batch_size=4),
                         ["data.train=rows.jsonl"])  # fmt: skip
    assert (config.method.loss, config.method.desirable_weight) == ("kto", 1.5)
    config = load_config(trl_dict(RewardConfig, center_rewards_coefficient=0.01), ["data.train=pairs.jsonl"])
    assert (config.method.kind, config.method.center_rewards_coefficient) == ("reward", 0.01)
    # ORPO (TRL 0.x's ORPOConfig): named, since its fields are DPO's; beta is ORPO's λ
    raw, _, _ = import_config({"beta": 0.2, "learning_rate": 1e-5}, source="x", dialect="trl:orpo")
    assert raw["method"] == {"loss": "orpo", "orpo_lambda": 0.2}


def test_trl_tables_cover_every_field():
    # A transformers or TRL release that adds a field shows up here, not as an unknown key in a user's config.
    from transformers import TrainingArguments
    from trl import DPOConfig, KTOConfig, RewardConfig

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    assert names <= TRAINING_ARGUMENTS.keys(), sorted(names - TRAINING_ARGUMENTS.keys())
    for cls in (DPOConfig, KTOConfig, RewardConfig):
        own = {f.name for f in dataclasses.fields(cls)} - names
        assert own <= TRL_FIELDS.keys() | {"beta", "loss_type"}, (cls.__name__, sorted(own - TRL_FIELDS.keys()))


# --- AutoTrain -----------------------------------------------------------------------------------------------

AUTOTRAIN_COMMAND = str.split(
    "llm --train --model M --data-path data/prefs --project-name runs/at --trainer dpo "
    "--prompt-text-column question --text-column better --rejected-text-column worse --dpo-beta 0.2 "
    "--model-ref R --max-completion-length 64 --peft --lora-r 8 --lora-alpha 16 --lora-dropout 0.1 --lr 1e-4 "
    "--epochs 2 --batch-size 4 --gradient-accumulation 2 --log none"
)


def test_autotrain_command_line_every_flag():
    params, overrides = parse_args([*AUTOTRAIN_COMMAND, "train.seed=3"])
    assert overrides == ["train.seed=3"] and params["train"] is True and params["lora_r"] == "8"
    config = load_config(params, overrides, dialect="autotrain")
    got = outcomes(config)
    assert set(params) <= set(got)
    assert got["(merge_adapter)"] == "output.save" and got["(quantization)"] == "ignored"
    m, d, t, lora = config.method, config.data, config.train, config.model.lora
    assert (m.loss, m.beta, m.rpo_alpha, config.reference.path) == ("sigmoid", 0.2, None, "R")
    [source] = d.train
    assert (source.path, source.format) == ("data/prefs", "trl_standard")
    assert source.columns == {"prompt": "question", "chosen": "better", "rejected": "worse"}
    assert (d.max_completion_length, d.max_prompt_length) == (64, 128)  # 128: AutoTrain's default
    assert (lora.r, lora.alpha, lora.dropout) == (8, 16, 0.1)
    assert (t.lr, t.epochs, t.batch_size, t.grad_accum, t.seed) == (1e-4, 2, 4, 2, 3)
    assert (t.schedule, t.warmup_ratio, config.output.dir, config.output.save) == (
        "linear",
        0.1,
        "runs/at",
        ["adapter"],
    )


def test_autotrain_params_and_errors():
    base = {"trainer": "orpo", "model": "M", "data_path": "d", "prompt_text_column": "p", "text_column": "c",
            "rejected_text_column": "r", "dpo_beta": 0.3}  # fmt: skip
    config = load_config(base)
    assert (config.method.loss, config.method.orpo_lambda, config.model.lora) == ("orpo", 0.3, None)
    with pytest.raises(ConfigError, match="trainer 'sft' is not one prefalign trains"):
        load_config({**base, "trainer": "sft"})
    with pytest.raises(ConfigError, match="give --rejected-text-column"):
        load_config({k: v for k, v in base.items() if k != "rejected_text_column"})
    with pytest.raises(ConfigError, match=r"lr: expected a number \(got 'fast'\)"):
        load_config({**base, "lr": "fast"})
    with pytest.raises(ConfigError, match=r"use_flash_attention_2: expected true or false \(got 'maybe'\)"):
        load_config({**base, "use_flash_attention_2": "maybe"})


# --- all dialects --------------------------------------------------------------------------------------------


def test_mixed_dialects_and_wrong_types_name_key_and_line(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text("base_model: m\nrl: dpo\nstage: dpo\n")
    with pytest.raises(ConfigError, match=r"mixes the keys of two tools \(Axolotl: rl \(line 2\); LLaMA-Factory: "
                                          r"stage \(line 3\)\)"):  # fmt: skip
        load_config(path)
    path.write_text("model:\n  path: m\nstage: dpo\n")
    with pytest.raises(ConfigError, match=r"mixes prefalign sections \(model \(line 1\)\) with LLaMA-Factory keys"):
        load_config(path)
    raw = yaml.safe_load((CONFIGS / "llamafactory/qwen3_lora_dpo.yaml").read_text())
    path.write_text(yaml.safe_dump({**raw, "learning_rate": "fast"}, sort_keys=False))
    with pytest.raises(ConfigError, match=r"line \d+: learning_rate: expected a number \(got 'fast'\)"):
        load_config(path, [LF_DIR])


@pytest.mark.parametrize(
    ("path", "overrides", "lenient"),
    [
        ("llamafactory/qwen3_lora_dpo.yaml", [LF_DIR], False),
        ("llamafactory/qwen3_lora_kto.yaml", [LF_DIR], False),
        ("axolotl/qwen2-dpo.yaml", [], True),
        ("axolotl/qwen2-reward-model.yaml", [], True),
    ],
)
def test_convert_then_train_gives_the_same_config(tmp_path, path, overrides, lenient):
    direct = load_config(CONFIGS / path, [*overrides, "model.path=builtin:smollm2-135m-instruct"], lenient=lenient)
    text = converted_yaml(direct, "prefalign train converted.yaml")
    assert "# from: " in text and text.startswith("# prefalign train converted.yaml")
    converted = tmp_path / "converted.yaml"
    converted.write_text(text)
    again = load_config(converted)
    assert again.import_table is None and again.model_dump() == direct.model_dump()


def test_the_loss_follows_the_data_only_when_none_is_named():
    config = load_config({"data": {"train": "rows.jsonl"}, "method": {"beta": 0.3}})
    config.method.beta = 0.4  # assigning another field keeps the note that no loss was named
    unpaired = config.for_data("unpaired")
    assert (unpaired.method.loss, unpaired.method.rpo_alpha, unpaired.method.beta) == ("kto", None, 0.4)
    assert "the data is unpaired" in unpaired.method.loss_note
    assert config.for_data("paired") is config and config.for_data(None) is config
    named = load_config({"data": {"train": "rows.jsonl"}, "method": {"loss": "sigmoid"}})
    assert named.for_data("unpaired") is named  # a named loss is trained as named (and the data check says no)
    reward = load_config({"data": {"train": "rows.jsonl"}, "method": {"kind": "reward"}})
    assert reward.for_data("unpaired") is reward
    # the recipe's beta (0.3) was chosen for its own loss: kto, filled in for the data, keeps kto's 0.1
    recipe = load_config({"data": {"train": "rows.jsonl"}})
    assert recipe.method.beta == 0.3 and recipe.for_data("unpaired").method.beta == 0.1


def test_autotrain_config_yaml_and_llamafactory_eval_dataset(tmp_path):
    # AutoTrain's own config file: task, base_model, data (with column_mapping), params.
    path = tmp_path / "autotrain.yaml"
    path.write_text(yaml.safe_dump({
        "task": "llm-orpo", "base_model": "M", "project_name": "runs/orpo", "log": "none", "backend": "local",
        "data": {"path": "prefs", "train_split": "train", "valid_split": "test", "chat_template": "chatml",
                 "column_mapping": {"prompt_text_column": "prompt", "text_column": "chosen",
                                    "rejected_text_column": "rejected"}},
        "params": {"epochs": 3, "lr": 8e-6, "dpo_beta": 0.1, "peft": True, "lora_r": 16},
    }))  # fmt: skip
    config = load_config(path)
    assert config.import_table.dialect == "AutoTrain"
    assert (config.method.loss, config.method.orpo_lambda, config.data.template) == ("orpo", 0.1, "chatml")
    assert [s.split for s in config.data.train] == ["train"] and [s.split for s in config.data.eval] == ["test"]
    assert config.data.train[0].columns is None  # the TRL names themselves: nothing renamed
    # LLaMA-Factory's eval_dataset and val_size
    raw = yaml.safe_load((CONFIGS / "llamafactory/qwen3_lora_dpo.yaml").read_text())
    config = load_config({**raw, "eval_dataset": "dpo_en_demo", "val_size": 0.1}, [LF_DIR])
    assert config.data.eval[0].format == "sharegpt" and config.data.eval_fraction == 0.1
