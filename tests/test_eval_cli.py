"""`prefalign eval` and `prefalign runs` on real tiny runs: pair metrics that agree with the run's own held-out
numbers, the reward model's verdict, and clear errors for bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prefalign.cli import app
from prefalign.config import ConfigError
from prefalign.eval.compare import evaluate
from prefalign.eval.prompts import read_prompts
from prefalign.eval.sampling import Sampling
from prefalign.eval.verdict import win_rate
from tests.conftest import toy_rows, write_jsonl


@pytest.fixture(scope="module")
def evaluated(policy_run, reward_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    data = write_jsonl(out / "toy.jsonl", toy_rows())
    result = evaluate(str(policy_run), data, reward_model=str(reward_run), n=4, max_new_tokens=6, out=out / "eval")
    return result, out


def test_pair_metrics_match_the_runs_own_held_out_evaluation(evaluated, policy_run):
    result, _ = evaluated
    # The run held out the same 16 pairs and its reference is the same base model (its adapter switched off).
    after = json.loads((policy_run / "result.json").read_text())["after"]
    for name in ("preference_accuracy", "rewards/accuracies", "rewards/margins", "rewards/chosen"):
        assert result.pairs[name] == pytest.approx(after[name], abs=1e-4), name


def test_reward_model_judges_base_and_aligned_answers(evaluated):
    _, out = evaluated
    lines = [json.loads(x) for x in (out / "eval" / "eval.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and {"prompt", "base", "aligned", "reward_base", "reward_aligned"} <= set(lines[0])
    base, aligned = [x["reward_base"] for x in lines], [x["reward_aligned"] for x in lines]
    wins = sum(a > b for a, b in zip(aligned, base, strict=True))
    ties = sum(a == b for a, b in zip(aligned, base, strict=True))
    summary = json.loads((out / "eval" / "eval.json").read_text())
    assert summary["rewards"]["win_rate"] == pytest.approx(wins / 4)
    assert summary["rewards"]["ties"] == ties
    assert summary["rewards"]["mean_reward_aligned"] == pytest.approx(sum(aligned) / 4)
    assert summary["generation"] == {"mode": "greedy", "max_new_tokens": 6}
    page = (out / "eval" / "eval.html").read_text()
    assert "win rate of aligned over base" in page and lines[0]["prompt"] in page


def test_reward_of_an_answer_is_the_one_training_gave_it(reward_run, tmp_path):
    """eval's reward (the saved model through transformers) equals the run's held-out reward of the same answer."""
    import torch

    from prefalign.data.render import Renderer, RenderSettings
    from prefalign.eval.verdict import load_reward_model_from, reward_scores

    model, tokenizer = load_reward_model_from(str(reward_run), "cpu")
    renderer = Renderer(tokenizer, RenderSettings(None, 64, 512, None))
    rows = toy_rows()
    rewards = json.loads((reward_run / "rewards.json").read_text())["after"]
    prompts = [row["prompt"] for row in rows]
    chosen = reward_scores(model, tokenizer, renderer, prompts, [r["chosen"][0]["content"] for r in rows], "cpu")
    # rewards.json follows the held-out split's order: the same 16 rows in file order.
    assert sorted(chosen) == pytest.approx(sorted(rewards["chosen"]), abs=1e-4)
    assert isinstance(model, torch.nn.Module)


def test_win_rate_counts_ties_apart():
    assert win_rate([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0]) == {
        "mean_reward_base": 1.5, "mean_reward_aligned": 2.0, "win_rate": 0.5, "loss_rate": 0.25, "tie_rate": 0.25,
        "wins": 2, "losses": 1, "ties": 1,
    }  # fmt: skip


def test_bad_input_is_a_clear_error(tmp_path, tiny_model_dir, policy_run):
    from prefalign.eval.verdict import load_reward_model_from

    with pytest.raises(ConfigError, match=r"is not a sequence classifier \(LlamaForCausalLM\)"):
        load_reward_model_from(str(tiny_model_dir), "cpu")
    with pytest.raises(ConfigError, match="is a policy run"):
        load_reward_model_from(str(policy_run), "cpu")
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"question": "no prompt field"}\n')
    with pytest.raises(ConfigError, match=r"prompts.jsonl: row 2: no `prompt`"):
        read_prompts(bad)
    (tmp_path / "p.csv").write_text("x")
    with pytest.raises(ConfigError, match=r"expected \.txt"):
        read_prompts(tmp_path / "p.csv")
    (tmp_path / "p.txt").write_text("first\n\nsecond\n")
    assert read_prompts(tmp_path / "p.txt") == [[{"role": "user", "content": "first"}],
                                                 [{"role": "user", "content": "second"}]]  # fmt: skip
    notrun = tmp_path / "notrun"
    notrun.mkdir()
    (notrun / "config.yaml").write_text("x: 1\n")
    result = CliRunner().invoke(
        app, ["eval", str(notrun), "--data", str(write_jsonl(tmp_path / "d.jsonl", toy_rows()))]
    )
    assert result.exit_code == 2 and "not a prefalign run directory" in result.output


def test_sampled_answers_depend_only_on_the_seed_and_the_prompt(tiny_model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from prefalign.eval.evaluate import generate

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = [tokenizer(text).input_ids for text in ("Name a colour.", "Count to three.", "Say hello.")]
    state = torch.get_rng_state()
    first = generate(model, tokenizer, prompts, 8, Sampling(seed=7, temperature=1.0, top_p=0.95))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left as it was
    assert generate(model, tokenizer, prompts, 8, Sampling(seed=7, top_p=0.95)) == first
    assert generate(model, tokenizer, prompts[1:], 8, Sampling(seed=7, top_p=0.95)) == first[1:]  # not --n or order
    # The random tiny model's next-token distribution is nearly flat: another seed, or greedy, answers otherwise.
    assert generate(model, tokenizer, prompts, 8, Sampling(seed=8, top_p=0.95)) != first
    assert generate(model, tokenizer, prompts, 8) != first


def test_eval_cli_samples_with_a_seed_and_records_it(policy_run, tmp_path):
    data = str(write_jsonl(tmp_path / "toy.jsonl", toy_rows()))
    sample = ["--sample", "--seed", "3", "--temperature", "0.7", "--top-p", "0.9"]
    args = ["eval", str(policy_run), "--data", data, "--n", "3", "--max-new-tokens", "5", *sample]
    for name in ("a", "b"):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert summary["generation"] == {
        "mode": "sampled",
        "seed": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_new_tokens": 5,
    }
    assert (tmp_path / "a" / "eval.jsonl").read_text() == (tmp_path / "b" / "eval.jsonl").read_text()
    assert "sampled: seed 3, temperature 0.7, top-p 0.9" in (tmp_path / "a" / "eval.html").read_text()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--seed", "3"], "--seed set how answers are sampled: add --sample"),
        (["--temperature", "0.5", "--top-p", "0.9"], "--temperature, --top-p set how answers are sampled"),
        (["--sample", "--temperature", "0"], "--temperature: 0.0 must be above 0"),
        (["--sample", "--top-p", "1.5"], "--top-p: 1.5 must be in (0, 1]"),
    ],
)
def test_sampling_options_are_checked_before_anything_loads(options, message, tmp_path):
    data = str(write_jsonl(tmp_path / "toy.jsonl", toy_rows()))
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "no-such-model"), "--data", data, *options])
    assert result.exit_code == 2 and message in result.output, result.output


def test_bad_input_through_the_cli_is_a_message_not_a_traceback(tmp_path, tiny_model_dir, policy_run):
    runner = CliRunner()
    data = str(write_jsonl(tmp_path / "toy.jsonl", toy_rows()))
    base = ["eval", str(policy_run), "--data", data, "--n", "2", "--max-new-tokens", "2", "--out", str(tmp_path / "o")]
    not_a_judge = runner.invoke(app, [*base, "--reward-model", str(tiny_model_dir)])
    assert not_a_judge.exit_code == 2, not_a_judge.output
    assert "is not a sequence classifier (LlamaForCausalLM)" in not_a_judge.output
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "ok"}\n{"prompt": "cut off\n')
    unreadable = runner.invoke(app, [*base, "--prompts", str(prompts)])
    assert unreadable.exit_code == 2 and "prompts.jsonl: not valid JSON" in unreadable.output, unreadable.output
    missing = runner.invoke(app, [*base, "--prompts", str(tmp_path / "none.txt")])
    assert missing.exit_code == 2 and "none.txt: no such file" in missing.output
    for result in (not_a_judge, unreadable, missing):
        assert "Traceback" not in result.output


def test_runs_table_and_compare_page(policy_run, reward_run, tmp_path):
    runner = CliRunner()
    listing = runner.invoke(app, ["runs", str(policy_run.parent.parent)])
    assert listing.exit_code == 0, listing.output
    assert "policy: sigmoid" in listing.output and "reward: bradley_terry" in listing.output
    out = tmp_path / "compare.html"
    compared = runner.invoke(
        app, ["runs", "--compare", str(policy_run), "--compare", str(reward_run), "--out", str(out)]
    )
    assert compared.exit_code == 0, compared.output
    page = out.read_text()
    assert 'id="loss-policy"' in page and 'id="loss-reward"' in page  # both runs' loss on one axes
    missing = runner.invoke(app, ["runs", "--compare", str(tmp_path)])
    assert missing.exit_code == 2 and "not a prefalign run directory" in missing.output
