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
    assert config.method.loss == "sigmoid" and config.method.beta == 0.3  # the recipe's beta
    assert config.method.rpo_alpha == 1.0  # the recommended recipe: DPO + NLL on chosen
    assert config.train.lr == 3e-4 and config.train.epochs == 2
    assert config.resolved_reference_mode() == "precomputed"  # 2 epochs: the reference scores each example once
    # every default is written out, so the run directory's config.yaml reproduces the run
    dumped = yaml.safe_load(config.to_yaml())
    assert dumped["train"]["lr"] == config.train.lr and dumped["output"]["save"] == ["adapter", "merged"]
    assert load_config(dumped) == config


@pytest.mark.parametrize(
    ("overrides", "loss", "rpo_alpha", "beta", "lr"),
    [
        ([], "sigmoid", 1.0, 0.3, 3e-4),
        (["model.lora=null"], "sigmoid", 1.0, 0.3, 1e-5),  # full fine-tuning takes a far smaller step
        (["method.loss=sigmoid"], "sigmoid", None, 0.1, 3e-4),  # a loss named is trained as named, as TRL would
        (["method.rpo_alpha=null"], "sigmoid", None, 0.3, 3e-4),  # plain DPO, at the recipe's beta
        (["method.rpo_alpha=0.5"], "sigmoid", 0.5, 0.3, 3e-4),
        (["method.beta=0.2"], "sigmoid", 1.0, 0.2, 3e-4),
        (["method.loss=ipo"], "ipo", None, 0.1, 3e-4),
        (["method.loss=kto"], "kto", None, 0.1, 3e-4),
        (["method.kind=reward"], "bradley_terry", None, 0.1, 3e-4),
        (["train.lr=1e-4", "model.lora=null"], "sigmoid", 1.0, 0.3, 1e-4),
    ],
)
def test_recommended_recipe_fills_what_is_not_given(overrides, loss, rpo_alpha, beta, lr):
    config = load_config(MINIMAL, overrides)
    assert (config.method.loss, config.method.rpo_alpha, config.method.beta, config.train.lr) == (
        loss,
        rpo_alpha,
        beta,
        lr,
    )
    assert load_config(yaml.safe_load(config.to_yaml())) == config  # the written config.yaml reproduces it


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
    assert config.resolved_reference_mode() == "model"  # full fine-tuning, 3 steps over unknown data: a frozen copy


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
    assert config.resolved_reference_mode() == "precomputed"
    with pytest.raises(ConfigError, match="2 weights for 1 loss terms"):
        load_config(MINIMAL, ["method.loss_weights=[1, 2]"])
    with pytest.raises(ConfigError, match="not a loss on its own"):
        load_config(MINIMAL, ["method.loss=sft"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["reference.mode=model"], "  reference.mode: loss 'simpo' uses no reference; remove the reference"),
        (["reference.mode=adapter"], "  reference.mode: loss 'simpo' uses no reference"),
        (["reference.path=other-model"], "  reference.path: loss 'simpo' uses no reference"),
    ],
)
def test_a_reference_for_a_reference_free_loss_is_an_error(overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_config(MINIMAL, ["method.loss=simpo", *overrides])
    assert expected in str(info.value)


def test_reference_free_losses_resolve_to_no_reference():
    for loss in ("simpo", "cpo", "orpo"):
        assert load_config(MINIMAL, [f"method.loss={loss}"]).resolved_reference_mode() == "none"
        assert load_config(MINIMAL, [f"method.loss={loss}", "reference.mode=none"]).resolved_reference_mode() == "none"
        full = load_config(MINIMAL, [f"method.loss={loss}", "model.lora=null", "output.save=[merged]"])
        assert full.resolved_reference_mode() == "none"  # not a frozen copy, as sigmoid would get


def test_gamma_with_sigmoid_is_an_error():
    with pytest.raises(ConfigError) as info:
        load_config(MINIMAL, ["method.gamma=0.3"])
    assert "method.gamma: loss sigmoid does not use it; it is used by simpo" in str(info.value)
    assert load_config(MINIMAL, ["method.loss=simpo", "method.gamma=0.3"]).method.gamma == 0.3


def test_orpo_takes_lambda_by_its_paper_name():
    config = load_config(MINIMAL, ["method.loss=orpo", "method.lambda=0.2"])
    assert config.method.orpo_lambda == 0.2 and config.method.hyperparams()["orpo_lambda"] == 0.2
    assert load_config(yaml.safe_load(config.to_yaml())) == config  # written as orpo_lambda, read back
    # TRL's ORPO `beta` is this λ; prefalign's beta is not read by orpo, and says so
    with pytest.raises(ConfigError, match=r"method\.beta: loss orpo does not use it"):
        load_config(MINIMAL, ["method.loss=orpo", "method.beta=0.2"])


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        # EXO takes log ε: the default label_smoothing of 0 would make every loss infinite
        ({"loss": "exo_pair"}, "method.label_smoothing: exo_pair takes log ε, so it needs label_smoothing > 0"),
        # rDPO divides by 1 - 2ε
        ({"loss": "robust", "label_smoothing": 0.5}, "method.label_smoothing: Input should be less than 0.5"),
        # f-DPO's log Z(x) cancels only in a chosen - rejected difference: bco_pair reads each log-ratio alone
        (
            {"loss": ["sigmoid", "bco_pair"], "f_divergence_type": "js_divergence"},
            "method.f_divergence_type: loss bco_pair does not read the log-ratios it transforms",
        ),
        ({"loss": "apo_zero", "f_divergence_type": "forward_kl"}, "method.f_divergence_type: loss apo_zero"),
        ({"loss": "ipo", "discopop_tau": 0.1}, "method.discopop_tau: loss ipo does not use it"),
    ],
)
def test_dpo_family_hyperparameter_errors_name_the_key(method, expected):
    with pytest.raises(ConfigError) as info:
        load_config({**MINIMAL, "method": method})
    assert expected in str(info.value)


def test_dpo_family_hyperparameters_that_apply():
    assert load_config({**MINIMAL, "method": {"loss": "exo_pair", "label_smoothing": 1e-3}}).method.label_smoothing
    assert load_config({**MINIMAL, "method": {"loss": "robust", "label_smoothing": 0.4}})
    assert load_config(
        {**MINIMAL, "method": {"loss": "discopop", "discopop_tau": 0.1, "f_divergence_type": "js_divergence"}}
    )
    mpo = load_config({**MINIMAL, "method": {"loss": ["sigmoid", "bco_pair", "sft"], "loss_weights": [0.8, 0.2, 1.0]}})
    assert [spec.name for spec, _ in mpo.method.terms()] == ["sigmoid", "bco_pair", "sft"]
