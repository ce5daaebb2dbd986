"""The config schema: defaults, overrides, and errors that name the key."""

import pytest
import yaml

from prefalign.config import ConfigError, RunConfig, load_config

MINIMAL = {"data": {"train": "pairs.jsonl"}}


def test_defaults_fill_every_section():
    config = load_config(MINIMAL)
    assert config.model.path == "builtin:smollm2-135m-instruct"
    assert config.model.lora is not None and config.model.lora.r == 16
    assert config.data.train[0].path == "pairs.jsonl" and config.data.train[0].format == "auto"
    assert config.method.loss == "sigmoid" and config.method.beta == 0.1
    assert config.resolved_reference_mode() == "adapter"
    # every default is written out, so the run directory's config.yaml reproduces the run
    dumped = yaml.safe_load(config.to_yaml())
    assert dumped["train"]["lr"] == config.train.lr and dumped["output"]["save"] == ["adapter", "merged"]
    assert load_config(dumped) == config


def test_overrides_are_read_as_yaml():
    config = load_config(
        MINIMAL,
        ["train.lr=1e-5", "output.save=[merged]", "model.lora=null", "train.max_steps=3", "data.eval=e.json"],
    )
    assert config.train.lr == 1e-5
    assert config.output.save == ["merged"]
    assert config.model.lora is None
    assert config.train.max_steps == 3
    assert config.data.eval[0].path == "e.json"
    assert config.resolved_reference_mode() == "model"  # full fine-tuning: a frozen copy


def test_yaml_file_and_config_object(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  train: [a.jsonl, {path: b.csv, format: trl_standard}]\ntrain:\n  lr: 5e-4\n")
    config = load_config(path)
    assert [s.path for s in config.data.train] == ["a.jsonl", "b.csv"]
    assert config.train.lr == 5e-4  # YAML 1.1 reads 5e-4 as a string; it still becomes a float
    assert load_config(config) is config
    assert load_config(config, ["method.beta=0.5"]).method.beta == 0.5


@pytest.mark.parametrize(
    ("raw", "overrides", "expected"),
    [
        (MINIMAL, ["train.learning_rate=1e-5"], "train.learning_rate: unknown key (did you mean 'lr'?)"),
        (MINIMAL, ["trian.lr=1"], "trian: unknown key (did you mean 'train'?)"),
        (MINIMAL, ["model.lora.rank=8"], "model.lora.rank: unknown key"),
        (MINIMAL, ["train.batch_size=eight"], "train.batch_size"),
        (MINIMAL, ["train.lr=-1"], "train.lr"),
        (MINIMAL, ["method.loss=sigmod"], "unknown loss 'sigmod' (did you mean 'sigmoid'?)"),
        (MINIMAL, ["method.beta=0"], "method.beta"),
        (MINIMAL, ["method.label_smoothing=0.7"], "method.label_smoothing"),
        ({}, [], "data: required"),
        (MINIMAL, ["reference.mode=none"], "needs a reference"),
        (MINIMAL, ["model.lora=null", "reference.mode=adapter"], "needs model.lora"),
        (MINIMAL, ["model.lora=null", "output.save=[adapter]"], "output.save"),
    ],
)
def test_errors_name_the_key(raw, overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_config(raw, overrides)
    assert expected in str(info.value)


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"dotted\.key=value"):
        load_config(MINIMAL, ["train.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_every_field_is_described():
    """Typed config, documented once: every field carries its one-line description."""
    from pydantic import BaseModel

    def walk(model):
        for name, field in model.model_fields.items():
            if model is not RunConfig:
                assert field.description, f"{model.__name__}.{name} has no description"
            for inner in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    walk(inner)

    walk(RunConfig)


def test_loss_lists_and_weights():
    config = load_config(MINIMAL, ["method.loss=[sigmoid, sft]", "method.loss_weights=[1.0, 0.2]"])
    assert [(spec.name, w) for spec, w in config.method.terms()] == [("sigmoid", 1.0), ("sft", 0.2)]
    assert config.resolved_reference_mode() == "adapter"
    with pytest.raises(ConfigError, match="2 weights for 1 loss terms"):
        load_config(MINIMAL, ["method.loss_weights=[1, 2]"])
    with pytest.raises(ConfigError, match="not a loss on its own"):
        load_config(MINIMAL, ["method.loss=sft"])
