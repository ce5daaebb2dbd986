"""The real default model, SmolLM2-135M-Instruct from its GGUF: loads, converts, trains a step, exports."""

import pytest
import torch
import yaml

import prefalign
from prefalign.config import load_config
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_builtin_model_converts_and_matches_the_gguf(smollm_dir):
    from transformers import AutoModelForCausalLM

    from prefalign.model.builtin import builtin_gguf

    gguf = builtin_gguf("smollm2-135m-instruct")
    from_gguf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    converted = AutoModelForCausalLM.from_pretrained(smollm_dir)
    assert getattr(converted.config, "quantization_config", None) is None  # save_pretrained works on it
    ids = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 2]])
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, from_gguf(ids).logits)


def preference_accuracy_by_hand(config, precision: str) -> float:
    """The share of held-out pairs whose chosen answer the base model finds likelier per token, through full
    logits in the run's precision: what the run's `before` evaluation must report."""
    from transformers import AutoModelForCausalLM

    from prefalign.data import prepare_data
    from prefalign.data.layout import padded
    from prefalign.model.load import load_tokenizer, resolve_path
    from prefalign.scoring.logps import naive_sequence_logps

    tokenizer = load_tokenizer(config.model)
    pairs = prepare_data(config.data, tokenizer, config.train.seed).eval.to_list()
    model = AutoModelForCausalLM.from_pretrained(resolve_path(config.model.path))
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        logps = naive_sequence_logps(model, padded(pairs, tokenizer.pad_token_id))
    chosen = logps.chosen_logps / logps.chosen_lengths
    rejected = logps.rejected_logps / logps.rejected_lengths
    return (chosen > rejected).float().mean().item()


def test_quickstart_config_runs_a_short_real_training(tmp_path):
    """The quickstart's own config, cut to two steps and four held-out pairs, end to end on the real model."""
    from transformers import AutoModelForCausalLM

    held_out = tmp_path / "eval.jsonl"
    held_out.write_text("".join((REPO / "data/quickstart/eval.jsonl").read_text().splitlines(keepends=True)[:4]))

    overrides = [
        f"output.dir={tmp_path / 'run'}",
        "train.max_steps=2",
        "train.batch_size=2",
        "train.eval_every=null",
        "eval.max_new_tokens=8",
        "eval.generations=1",
        f"data.train={REPO / 'data/quickstart/train.jsonl'}",
        f"data.eval={held_out}",
    ]
    result = prefalign.train(REPO / "examples" / "quickstart.yaml", overrides, quiet=True)
    assert result.steps == 2
    precision = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["mixed_precision"]
    expected = preference_accuracy_by_hand(load_config(REPO / "examples" / "quickstart.yaml", overrides), precision)
    assert result.before["preference_accuracy"] == pytest.approx(expected)
    assert result.generations[0]["before"] and result.generations[0]["after"]
    merged = AutoModelForCausalLM.from_pretrained(result.saved["merged"])
    assert merged.config.model_type == "llama" and merged.config.num_hidden_layers == 30
