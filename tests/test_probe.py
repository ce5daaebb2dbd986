"""eval.probe: the general-text probe's NLL, computed by hand through full logits, and what ships with it."""

from __future__ import annotations

import pytest
import torch

from prefalign.data.render import Renderer, RenderSettings
from prefalign.eval.probe import general_nll, own_answer_rows, probe_batch, probe_rows
from prefalign.scoring.logps import SequenceScorer
from tests.conftest import REPO, make_tiny_model


def test_probe_ships_as_package_data():
    rows = probe_rows()
    assert len(rows) == 14
    assert all(r["prompt"][0]["role"] == "user" and r["completion"][0]["role"] == "assistant" for r in rows)
    # Without this an installed wheel lacks the probe (tomllib is 3.11+, and the package supports 3.10).
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "[tool.setuptools.package-data]\n" in pyproject and 'prefalign = ["data/probe/*.jsonl"]' in pyproject


def test_probe_is_a_few_hundred_answer_tokens(tokenizer):
    batch = probe_batch(Renderer(tokenizer, RenderSettings(None, 1024, None, None)), tokenizer.pad_token_id)
    assert batch.num_sequences == 14 and 500 <= batch.num_scored_tokens <= 1000


def test_general_nll_is_the_mean_negative_log_prob_of_the_answer_tokens(tokenizer):
    renderer = Renderer(tokenizer, RenderSettings(None, 1024, None, None))
    model = make_tiny_model(tokenizer)
    scorer = SequenceScorer(model).train()
    batch = probe_batch(renderer, tokenizer.pad_token_id)

    # By hand: each row alone through the full logits; position t-1 predicts answer token t.
    total, count = 0.0, 0
    with torch.no_grad():
        for row in probe_rows():
            ex = renderer.render(row)
            ids = ex["prompt_ids"] + ex["completion_ids"]
            logps = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
            start = len(ex["prompt_ids"])
            for t in range(start, len(ids)):
                total -= float(logps[t - 1, ids[t]])
                count += 1
    assert count == batch.num_scored_tokens
    assert general_nll(scorer, batch) == pytest.approx(total / count, rel=1e-5)
    assert scorer.training  # scoring leaves the mode as it found it


def test_probe_batch_follows_the_runs_limits(tokenizer):
    short = probe_batch(Renderer(tokenizer, RenderSettings(None, 1024, None, 10)), tokenizer.pad_token_id)
    assert short.num_scored_tokens == 14 * 10  # every answer cut to max_completion_length, as the run sees it
    with pytest.raises(ValueError, match="no room for any probe answer"):
        probe_batch(Renderer(tokenizer, RenderSettings(None, 8, None, None)), tokenizer.pad_token_id)


def test_own_answers_are_seeded_samples_that_leave_the_callers_random_state_alone(tokenizer):
    renderer = Renderer(tokenizer, RenderSettings(None, 1024, None, None))
    model = make_tiny_model(tokenizer).train()
    torch.manual_seed(123)
    first = own_answer_rows(model, renderer, max_new_tokens=12)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))  # the caller's generator is where it was
    assert model.training  # and the model's mode
    again = own_answer_rows(model, renderer, max_new_tokens=12)
    assert first == again  # seeded: the same model answers the same
    written = probe_rows()
    assert [r["prompt"] for r in first] == [r["prompt"] for r in written]  # the shipped questions, in order
    answers = [r["completion"][0]["content"] for r in first]
    assert answers != [r["completion"][0]["content"] for r in written] and len(set(answers)) > 1
    # Sampled at temperature 1, not greedy: the first answer is not the model's greedy continuation.
    prompt = torch.tensor([renderer.untruncated(written[0])[0]])
    greedy = model.generate(input_ids=prompt, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert answers[0] != tokenizer.decode(greedy[0, prompt.shape[1] :], skip_special_tokens=True).strip()


def test_a_run_with_held_out_data_logs_general_nll_and_watches_it(tiny_model_dir, toy_data, tmp_path):
    """Before training and at every eval the probe is scored as general_nll; the watch reads the eval records."""
    import json

    import prefalign
    from prefalign.training.watch import GeneralNllWatch
    from tests.conftest import tiny_config

    config = tiny_config(
        tiny_model_dir, toy_data, tmp_path / "run",
        data={"eval": str(toy_data), "max_length": 64},
        train={"max_steps": 2, "eval_every": 1, "lr": 5e-2, "mixed_precision": "no"},
        eval={"before": True, "generations": 0},
    )  # fmt: skip
    result = prefalign.train(prefalign.load_config(config), quiet=True)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [1, 2] and all(r["general_nll"] > 0 for r in evals)
    before = result.before["general_nll"]
    # Step 1 runs at lr 0 (the warm-up starts there), so its eval equals the before; step 2 moves the probe.
    assert evals[0]["general_nll"] == pytest.approx(before) and evals[1]["general_nll"] != before
    # What is scored is the starting policy's own answers, kept in the run directory: scored again here on the
    # untrained model, they give the run's value before training.
    saved = json.loads((result.run_dir / "probe.json").read_text())
    assert saved["seed"] == 0 and len(saved["rows"]) == 14
    assert [r["prompt"] for r in saved["rows"]] == [r["prompt"] for r in probe_rows()]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefalign.data.render import render_settings

    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    renderer = Renderer(tokenizer, render_settings(prefalign.load_config(config).data))
    rescored = general_nll(SequenceScorer(start), probe_batch(renderer, tokenizer.pad_token_id, saved["rows"]))
    assert rescored == pytest.approx(before, rel=1e-4)
    # The run's watch gave a finding exactly when a GeneralNllWatch on the same records does.
    replay = GeneralNllWatch(before)
    expected = [str(f) for r in evals for f in replay.update(r)]
    assert [w for w in result.warnings if "general-text probe" in w] == expected


def test_a_tokenizer_without_a_chat_template_reads_the_probe_as_plain_text(smollm_dir):
    from transformers import AutoTokenizer

    plain_tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    plain_tokenizer.chat_template = None  # a base model's tokenizer, trained on plain strings
    renderer = Renderer(plain_tokenizer, RenderSettings(None, 1024, None, None))
    batch = probe_batch(renderer, plain_tokenizer.pad_token_id)
    row = probe_rows()[0]
    expected = plain_tokenizer(row["completion"][0]["content"], add_special_tokens=False).input_ids
    first = batch.score_labels[batch.score_seq == 0].tolist()
    assert first == [*expected, plain_tokenizer.eos_token_id]  # the answer as text, then EOS: no template tokens
