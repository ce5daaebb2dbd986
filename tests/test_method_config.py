"""The method section: every hyper-parameter is checked against the losses that read it."""

import pytest
import yaml

from prefalign.config import ConfigError, load_config
from prefalign.losses import LOSSES

MINIMAL = {"data": {"train": "pairs.jsonl"}}


def method(**values) -> dict:
    return {**MINIMAL, "method": values}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"loss": "sigmoid", "discopop_tau": 0.1},
            "method.discopop_tau: loss sigmoid does not use it; it is used by discopop",
        ),
        ({"beta": 0}, "method.beta: Input should be greater than 0"),
        ({"beta": -1.0}, "method.beta: Input should be greater than 0"),
        ({"label_smoothing": 0.5}, "method.label_smoothing: Input should be less than 0.5"),
        ({"label_smoothing": -0.1}, "method.label_smoothing: Input should be greater than or equal to 0"),
        ({"loss": "sigmoid", "f_divergence_type": "chi2"}, "method.f_divergence_type: Input should be"),
        ({"loss": "sigmoid", "f_alpha_divergence_coef": 0.3}, "f_alpha_divergence_coef: only used with"),
        ({"loss": ["sigmoid", "sft"], "rpo_alpha": 0.5}, "rpo_alpha adds the sft term"),
        ({"loss": ["sigmoid", "sft"], "loss_weights": [1.0]}, "loss_weights: 1 weights for 2 loss terms"),
        ({"loss": "sft"}, "is a term to add to a preference loss"),
        ({"loss": "dpo"}, "unknown loss 'dpo'"),
        ({"ld_alpha": 1.5}, "method.ld_alpha: Input should be less than or equal to 1"),
        ({"learning_rate": 1e-5}, "method.learning_rate: unknown key"),
    ],
)
def test_method_errors_name_the_key(section, message):
    with pytest.raises(ConfigError) as error:
        load_config(method(**section))
    assert message in str(error.value)


def test_every_hyperparameter_of_every_loss_is_a_config_field():
    """A loss cannot declare a hyper-parameter that users have no key for."""
    from prefalign.config import MethodConfig

    for spec in LOSSES.values():
        for name in spec.hyperparams:
            assert name in MethodConfig.model_fields, f"{spec.name} reads method.{name}, which the schema lacks"
            assert MethodConfig.model_fields[name].description


def test_every_hyperparameter_a_loss_may_take_is_a_config_field():
    from prefalign.config import MethodConfig
    from prefalign.losses import LOSS_HYPERPARAMS

    assert [name for name in LOSS_HYPERPARAMS if name not in MethodConfig.model_fields] == []


def _misspelt_input(policy_chosen_logp, *, beta): ...
def _misspelt_hyperparameter(policy_chosen_logps, *, betta): ...
def _hyperparameter_before_star(policy_chosen_logps, beta): ...
def _var_positional(*tensors, beta): ...


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_misspelt_input, "parameter 'policy_chosen_logp' is not a loss input"),
        (_misspelt_hyperparameter, "keyword-only parameter 'betta' is not a hyper-parameter"),
        (_hyperparameter_before_star, "parameter 'beta' is not a loss input"),
        (_var_positional, r"\*tensors cannot be matched to inputs"),
    ],
)
def test_register_refuses_a_misspelt_parameter_when_the_loss_is_defined(fn, message):
    from prefalign.losses import register

    with pytest.raises(ValueError, match=f"loss 'typo': {message}"):
        register("typo", family="dpo", needs_reference=False, paper="-")(fn)
    assert "typo" not in LOSSES


def test_defaults_of_unused_hyperparameters_are_not_errors():
    """The resolved config written to a run directory sets every field; reading it back must work."""
    config = load_config(method(loss="sigmoid", beta=0.2))
    assert load_config(yaml.safe_load(config.to_yaml())) == config


def test_rpo_alpha_adds_the_sft_term():
    config = load_config(method(loss="sigmoid", rpo_alpha=0.5))
    assert [(spec.name, weight) for spec, weight in config.method.terms()] == [("sigmoid", 1.0), ("sft", 0.5)]


def test_objective_options_apply_to_paired_losses():
    from prefalign.objective import make_objective
    from prefalign.scoring.logps import LogpsOptions

    config = load_config(method(loss="sigmoid", ld_alpha=0.5, use_weighting=True, f_divergence_type="js_divergence"))
    objective = make_objective(config.method)
    # What the objective reads from them: the log-prob reduction (LD-DPO, WPO) and the log-ratio transform.
    assert objective.logps_options == LogpsOptions(ld_alpha=0.5, wpo=True)
    assert objective.f_divergence == ("js_divergence", 0.5) and objective.use_weighting
    assert [spec.name for spec, _ in objective.terms] == ["sigmoid"]  # a loss named explicitly: no RPO term
    with pytest.raises(ConfigError, match="ld_alpha: applies to paired losses only"):
        load_config({**method(loss="kto", ld_alpha=0.5), "data": {"train": "rows.jsonl", "split_pairs": True}})


def test_a_loss_that_needs_a_reference_refuses_mode_none():
    with pytest.raises(ConfigError, match=r"reference\.mode: loss 'sigmoid' needs a reference"):
        load_config({**MINIMAL, "method": {"loss": "sigmoid"}, "reference": {"mode": "none"}})
