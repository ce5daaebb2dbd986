"""The real default model, SmolLM2-135M-Instruct from its GGUF: loads, converts, trains a step, exports."""

import pytest
import torch

import prefalign
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


def test_quickstart_config_runs_a_short_real_training(tmp_path):
    """The quickstart's own config, cut to two steps and four held-out pairs, end to end on the real model."""
    from transformers import AutoModelForCausalLM

    held_out = tmp_path / "eval.jsonl"
    held_out.write_text("".join((REPO / "data/quickstart/eval.jsonl").read_text().splitlines(keepends=True)[:4]))

    result = prefalign.train(
        REPO / "examples" / "quickstart.yaml",
        [
            f"output.dir={tmp_path / 'run'}",
            "train.max_steps=2",
            "train.batch_size=2",
            "train.eval_every=null",
            "eval.max_new_tokens=8",
            "eval.generations=1",
            f"data.train={REPO / 'data/quickstart/train.jsonl'}",
            f"data.eval={held_out}",
        ],
        quiet=True,
    )
    assert result.steps == 2
    assert 0.0 <= result.before["preference_accuracy"] <= 1.0
    assert result.generations[0]["before"] and result.generations[0]["after"]
    merged = AutoModelForCausalLM.from_pretrained(result.saved["merged"])
    assert merged.config.model_type == "llama" and merged.config.num_hidden_layers == 30
