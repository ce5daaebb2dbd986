"""Reward models (`method.kind: reward`): the bradley_terry loss by hand, where the reward is read, training runs,
saved models that transformers and PEFT load, and agreement with TRL 1.16's `RewardTrainer`.

TRL agreement (`test_first_step_matches_trl_reward_trainer`): both sides train the same tiny random Llama as
`LlamaForSequenceClassification` (full fine-tuning, float32, CPU) from one saved checkpoint whose `score`
head is seeded, on the same 4 TRL-standard pairs in one batch (the whole data set, so shuffling is moot).
TRL tokenises prompt + answer + EOS text in one go, prefalign the prompt and the answer separately and
then appends the EOS id; on these rows that gives the same ids, asserted first. Both pad with
<|im_start|>: with SmolLM2's own pad token (<|im_end|>, its EOS) transformers, and so TRL, would read the
reward at the token *before* the EOS (see `use_reward_pad_token`, which prefalign applies to every reward
run). Compared: the first logged step's loss, accuracy, margin, mean/min/max_reward and the pre-clipping
gradient norm. Largest relative differences measured (|prefalign − TRL| / |TRL|; CPU, float32, torch 2.13,
transformers 5.23, trl 1.16.0; deterministic from run to run):

    metric        plain   margin column + centring (c = 0.05)
    loss          0       0
    accuracy      0       0        (0.5: 2 of 4 pairs ranked right by the seeded head)
    margin        0       0
    mean_reward   0       0
    min_reward    0       0
    max_reward    0       0
    grad_norm     0       0

Bit-identical here: the same operations on the same ids (prefalign applies the head to the 8 end
positions only, TRL to every position and then picks them; a row of a matmul is the same either way).
With another head seed mean_reward differed by 7.7e-08 (TRL averages 8 rewards, prefalign 4 pair
means). TRL takes min/max_reward per micro-batch and averages them over a step; prefalign takes the
extreme over the whole step; with one micro-batch per step, as here, they are the same.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import prefalign
from prefalign.config import ConfigError, MethodConfig, ModelConfig, load_config
from prefalign.data.layout import padded
from prefalign.losses import LOSSES, compute_loss
from prefalign.objective import RewardObjective, make_objective
from prefalign.scoring.logps import SequenceScorer, sequence_logps
from prefalign.scoring.reward_model import RewardScorer, SequenceRewards, sequence_rewards
from prefalign.training.metrics import read_metrics
from tests.conftest import make_tiny_model, tiny_config, toy_rows, trl_one_step_args, write_jsonl

# Three pairs, as training passes them: rewards shaped [B].
R_CHOSEN = [1.0, -0.5, 2.0]
R_REJECTED = [0.0, 0.5, 2.5]
MARGIN = [0.5, 0.0, -1.0]
CHOSEN_LOGPS, CHOSEN_LENGTHS = [-6.0, -3.0, -10.0], [3, 2, 5]


def bt(hyperparams: dict, margin: list[float] | None = None, with_logps: bool = False):
    tensors = {
        "reward_chosen": torch.tensor(R_CHOSEN, requires_grad=True),
        "reward_rejected": torch.tensor(R_REJECTED, requires_grad=True),
        "margin": torch.tensor(margin or [0.0] * 3),
    }
    if with_logps:
        tensors.update(policy_chosen_logps=torch.tensor(CHOSEN_LOGPS), chosen_lengths=torch.tensor(CHOSEN_LENGTHS))
    params = MethodConfig(kind="reward", **hyperparams).hyperparams()
    return compute_loss(LOSSES["bradley_terry"], tensors, params), tensors


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))  # −log σ(d) = log(1 + e^(−d)) = softplus(−d)


def test_registry_entry():
    spec = LOSSES["bradley_terry"]
    assert spec.family == "reward" and spec.paired and not spec.needs_reference
    assert spec.hyperparams == ("center_rewards_coefficient", "lm_coef")
    assert MethodConfig(kind="reward").loss == "bradley_terry"


def test_bradley_terry_by_hand():
    # plain: d = r_w − r_l = [1, −1, −0.5]
    out, _ = bt({})
    expected = [softplus(-1.0), softplus(1.0), softplus(0.5)]  # 0.31326, 1.31326, 0.97408
    torch.testing.assert_close(out.losses, torch.tensor(expected))
    torch.testing.assert_close(out.chosen_rewards, torch.tensor(R_CHOSEN))
    assert out.losses.mean().item() == pytest.approx((0.313262 + 1.313262 + 0.974077) / 3, abs=1e-5)

    # the data's margin column: d = r_w − r_l − m = [0.5, −1, 0.5]
    out, _ = bt({}, margin=MARGIN)
    torch.testing.assert_close(out.losses, torch.tensor([softplus(-0.5), softplus(1.0), softplus(-0.5)]))

    # centring c · (r_w + r_l)² with c = 0.1: (r_w + r_l)² = [1, 0, 20.25]
    out, _ = bt({"center_rewards_coefficient": 0.1}, margin=MARGIN)
    expected = [softplus(-0.5) + 0.1 * 1.0, softplus(1.0) + 0.0, softplus(-0.5) + 0.1 * 20.25]
    torch.testing.assert_close(out.losses, torch.tensor(expected))

    # lm_coef · NLL per token of the chosen answer: −[−6/3, −3/2, −10/5] = [2, 1.5, 2], × 0.5
    out, _ = bt({"center_rewards_coefficient": 0.1, "lm_coef": 0.5}, margin=MARGIN, with_logps=True)
    expected = [e + 0.5 * nll for e, nll in zip(expected, [2.0, 1.5, 2.0], strict=True)]
    torch.testing.assert_close(out.losses, torch.tensor(expected))
    torch.testing.assert_close(out.metrics["nll_loss"], torch.tensor([2.0, 1.5, 2.0]))

    with pytest.raises(ValueError, match="lm_coef > 0 needs"):
        bt({"lm_coef": 0.5})  # the chosen log-probs were not computed


def test_gradient_raises_the_chosen_reward_and_lowers_the_rejected():
    out, tensors = bt({}, margin=MARGIN)
    out.losses.sum().backward()
    # dL/dr_w = −σ(−d) = −(1 − σ(d)), dL/dr_l = +σ(−d); d = [0.5, −1, 0.5]
    sigma = [1 / (1 + math.exp(d)) for d in (0.5, -1.0, 0.5)]
    torch.testing.assert_close(tensors["reward_chosen"].grad, -torch.tensor(sigma))
    torch.testing.assert_close(tensors["reward_rejected"].grad, torch.tensor(sigma))
    assert (tensors["reward_chosen"].grad < 0).all() and (tensors["reward_rejected"].grad > 0).all()

    # centring pulls the pair's sum towards 0: + 2c(r_w + r_l) on both, here 2 · 0.1 · [1, 0, 4.5]
    out, tensors = bt({"center_rewards_coefficient": 0.1}, margin=MARGIN)
    out.losses.sum().backward()
    torch.testing.assert_close(tensors["reward_chosen"].grad, -torch.tensor(sigma) + torch.tensor([0.2, 0.0, 0.9]))


def pair_examples(margins: list[float] | None = None) -> list[dict]:
    """Two pairs of unequal lengths, ending in EOS (id 2), as render gives them."""
    examples = [
        {"prompt_ids": [5, 6], "chosen_ids": [7, 8, 2], "rejected_ids": [9, 2]},
        {"prompt_ids": [5, 6, 10], "chosen_ids": [11, 2], "rejected_ids": [12, 13, 14, 2]},
    ]
    for example, margin in zip(examples, margins or [], strict=False):
        example["margin"] = margin
    return examples


def test_objective_feeds_rewards_and_logs_trl_metrics():
    """RewardObjective on a real Batch: the margin column reaches the loss; metrics carry TRL's names."""
    batch = padded(pair_examples(margins=[0.5, -1.0]), pad_id=1)
    objective = make_objective(MethodConfig(kind="reward"))
    assert isinstance(objective, RewardObjective) and objective.headline == ("accuracy", "margin")
    rewards = SequenceRewards(torch.tensor([1.0, -0.5, 0.0, 0.5]), num_examples=2)  # chosen 1, −0.5; rejected 0, 0.5
    losses, metrics = objective(rewards, None, batch)
    torch.testing.assert_close(losses, torch.tensor([softplus(-0.5), softplus(0.0)]))  # d = [1 − 0.5, −1 + 1]
    assert metrics["accuracy"].tolist() == [1.0, 0.0]
    assert metrics["margin"].tolist() == [1.0, -1.0]
    assert metrics["mean_reward"].tolist() == [0.5, 0.0]
    assert metrics["min_reward"].tolist() == [0.0, -0.5] and metrics["max_reward"].tolist() == [1.0, 0.5]
    assert metrics["rewards/chosen"].tolist() == [1.0, -0.5]

    from prefalign.training.metrics import MetricSums

    sums = MetricSums()
    sums.add(losses, metrics)
    means = sums.means()
    assert means["min_reward"] == -0.5 and means["max_reward"] == 1.0  # extremes over all 4 rewards, as TRL's
    assert means["mean_reward"] == 0.25 and means["accuracy"] == 0.5


def test_end_index_is_each_sequences_last_token():
    """The reward is read at the last token itself (the EOS), not at the position that predicts it."""
    batch = padded(pair_examples(), pad_id=0)
    # rows: [5 6 7 8 2 · ·], [5 6 10 11 2 · ·], [5 6 9 2 · · ·], [5 6 10 12 13 14 2]; width 7
    assert batch.input_ids.shape == (4, 7)
    assert batch.end_index.tolist() == [0 * 7 + 4, 1 * 7 + 4, 2 * 7 + 3, 3 * 7 + 6]
    assert batch.input_ids.flatten()[batch.end_index].tolist() == [2, 2, 2, 2]
    last_scored = [batch.score_index[batch.score_seq == s].max().item() for s in range(4)]
    assert [e - 1 for e in batch.end_index.tolist()] == last_scored  # that one predicts the EOS, unseen


@pytest.fixture(scope="module")
def reward_model(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    torch.nn.init.normal_(model.score.weight, std=0.3)  # rewards of order 1, so differences show
    return model


def test_rewards_equal_transformers_sequence_classification(reward_model, tokenizer):
    """Values and gradients equal `LlamaForSequenceClassification`'s own forward, alone and padded."""
    examples = pair_examples()
    sequences = [e["prompt_ids"] + e[k] for k in ("chosen_ids", "rejected_ids") for e in examples]
    batch = padded(examples, pad_id=1)
    scorer = RewardScorer(reward_model)
    ours = sequence_rewards(scorer, batch)
    assert ours.rewards.shape == (4,)
    ours.rewards.sum().backward()
    ours_grad = reward_model.score.weight.grad.clone()
    reward_model.zero_grad()

    reward_model.config.pad_token_id = 1  # <|im_start|>: never the last token, as use_reward_pad_token picks
    with torch.no_grad():
        alone = [reward_model(torch.tensor([ids])).logits[0, 0] for ids in sequences]
    torch.testing.assert_close(ours.rewards.detach(), torch.stack(alone), rtol=1e-5, atol=1e-6)
    theirs = reward_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, 0]
    torch.testing.assert_close(ours.rewards.detach(), theirs.detach(), rtol=1e-5, atol=1e-6)
    theirs.sum().backward()
    torch.testing.assert_close(ours_grad, reward_model.score.weight.grad, rtol=1e-5, atol=1e-6)
    reward_model.zero_grad()

    # The trap use_reward_pad_token avoids: with pad = EOS, transformers reads the token before the EOS.
    reward_model.config.pad_token_id = tokenizer.eos_token_id
    with torch.no_grad():
        before_eos = reward_model(torch.tensor([sequences[0]])).logits[0, 0]
        assert before_eos.item() != pytest.approx(ours.rewards[0].item(), abs=1e-3)
        torch.testing.assert_close(before_eos, reward_model(torch.tensor([sequences[0][:-1]])).logits[0, 0])


def test_reward_pad_token_never_ends_an_answer(smollm_dir):
    from transformers import AutoTokenizer

    from prefalign.data.render import end_of_turn_ids
    from prefalign.model.load import use_reward_pad_token

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # SmolLM2 pads with <|im_end|>, its end of turn
    pad_id = use_reward_pad_token(tokenizer)
    assert pad_id == tokenizer.pad_token_id == tokenizer.bos_token_id  # <|endoftext|> is an end-of-turn token too
    assert pad_id not in end_of_turn_ids(tokenizer)


def test_lm_coef_scores_the_chosen_answers_through_the_lm_head(tiny_model_dir, tmp_path, tokenizer):
    """The chosen log-probs of the reward scorer equal the causal LM's, tied (embeddings) or untied (loaded)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaForCausalLM

    from prefalign.model.load import load_output_embeddings

    batch = padded(pair_examples(), pad_id=1)
    untied = tmp_path / "untied"
    config = make_tiny_model(tokenizer).config
    config.tie_word_embeddings = False
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(untied)
    for path, tied in ((tiny_model_dir, True), (untied, False)):
        expected = sequence_logps(SequenceScorer(AutoModelForCausalLM.from_pretrained(path)), batch)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        lm_head = None if tied else load_output_embeddings(ModelConfig(path=str(path), lora=None))
        if not tied:
            with pytest.raises(ValueError, match="not tied"):
                sequence_rewards(RewardScorer(model), batch, with_chosen_logps=True)
        ours = sequence_rewards(RewardScorer(model, chunk_size=3, lm_head=lm_head), batch, with_chosen_logps=True)
        torch.testing.assert_close(ours.chosen_logps, expected.chosen_logps, rtol=1e-5, atol=1e-5)
        assert ours.chosen_lengths.tolist() == [3, 2]


def test_margin_column_reaches_the_batch(tmp_path, tokenizer):
    from prefalign.data import prepare_data

    rows = toy_rows()[:3]
    for row, margin in zip(rows, (0.5, None, 2), strict=True):
        row["margin"] = margin
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    config = load_config({"data": {"train": str(path)}, "method": {"kind": "reward"}})
    data = prepare_data(config.data, tokenizer, seed=0)
    assert data.train["margin"] == [0.5, 0.0, 2.0]
    assert padded(list(data.train), tokenizer.pad_token_id).margin.tolist() == [0.5, 0.0, 2.0]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"reference": {"mode": "model"}}, "reference: a reward model is trained without a reference"),
        ({"reference": {"mode": "none"}}, "reference: a reward model is trained without a reference"),
        ({"method": {"kind": "reward", "beta": 0.2}}, "method.beta: loss bradley_terry does not use it"),
        ({"method": {"kind": "reward", "loss": "sigmoid"}}, "kind: reward trains a reward model with bradley_terry"),
        ({"method": {"loss": "bradley_terry"}}, "set kind: reward"),
        ({"method": {"lm_coef": 0.5}}, "method.lm_coef: loss sigmoid does not use it; it is used by bradley_terry"),
        ({"model": {"adapter": "sft"}}, "a reward model starts from a full checkpoint"),
    ],
)
def test_reward_config_errors(section, message):
    raw = {"data": {"train": "pairs.jsonl"}, "method": {"kind": "reward"}, **section}
    with pytest.raises(ConfigError) as error:
        load_config(raw)
    assert message in str(error.value)


def held_out_rewards(model, data, pad_id: int) -> torch.Tensor:
    """[chosen..., rejected...] rewards of the held-out pairs from a transformers model, one right-padded batch."""
    sequences = [r["prompt_ids"] + r[k] for k in ("chosen_ids", "rejected_ids") for r in data]
    width = max(len(s) for s in sequences)
    ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in sequences])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
    with torch.no_grad():
        rewards = model(input_ids=ids, attention_mask=mask).logits[:, 0]
        alone = torch.stack([model(torch.tensor([s])).logits[0, 0] for s in sequences])
    torch.testing.assert_close(rewards, alone, rtol=1e-5, atol=1e-5)
    return rewards


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_training_learns_the_toy_preference_and_saved_models_give_its_rewards(tiny_model_dir, toy_data, tmp_path, lora):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from prefalign.data import prepare_data

    run_dir = tmp_path / "run"
    config = tiny_config(
        tiny_model_dir, toy_data, run_dir,
        model={} if lora else {"lora": None},
        data={"eval_fraction": 0.25},
        train={"max_steps": 8, "lr": 1e-3, "eval_every": 4},
        eval={"before": True, "generations": 2},
        output={"save": ["adapter", "merged"] if lora else ["merged"]},
    )  # fmt: skip
    config["method"] = {"kind": "reward"}
    result = prefalign.train(config, quiet=True)

    records = read_metrics(run_dir / "metrics.jsonl")
    train = [r for r in records if r["split"] == "train"]
    trl_names = {"loss", "accuracy", "margin", "mean_reward", "min_reward", "max_reward"}
    assert all(trl_names | {"rewards/chosen", "rewards/rejected"} <= r.keys() for r in records)
    assert train[-1]["loss"] < train[0]["loss"]
    assert result.after["accuracy"] == 1.0 > result.before["accuracy"]  # 4 held-out pairs
    assert result.after["loss"] < result.before["loss"] and result.after["margin"] > result.before["margin"]
    assert result.generations == [] and not (run_dir / "generations.json").exists()  # a reward model does not generate

    # The merged model loads with transformers and gives the rewards the run's last evaluation saw.
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "merged")
    merged = AutoModelForSequenceClassification.from_pretrained(run_dir / "merged").eval()
    assert merged.config.pad_token_id == tokenizer.pad_token_id == tokenizer.bos_token_id != tokenizer.eos_token_id
    held_out = prepare_data(load_config(config).data, tokenizer, seed=0).eval
    rewards = held_out_rewards(merged, held_out, tokenizer.pad_token_id)
    chosen, rejected = rewards.chunk(2)
    final = records[-1]
    assert final["split"] == "eval" and final["step"] == 8
    assert chosen.mean().item() == pytest.approx(final["rewards/chosen"], abs=1e-5)
    assert rejected.mean().item() == pytest.approx(final["rewards/rejected"], abs=1e-5)
    assert rewards.min().item() == pytest.approx(final["min_reward"], abs=1e-5)
    assert rewards.max().item() == pytest.approx(final["max_reward"], abs=1e-5)
    assert (chosen > rejected).float().mean().item() == final["accuracy"]

    card = (run_dir / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["pipeline_tag"] == "text-classification" and "reward-model" in front["tags"]
    assert "A **reward model**" in card and "AutoModelForSequenceClassification" in card

    if lora:  # the adapter holds the trained head; the base needs the run's pad token (its own is the EOS)
        assert "base_model.model.score.weight" in load_file(run_dir / "adapter" / "adapter_model.safetensors")
        base = AutoModelForSequenceClassification.from_pretrained(
            tiny_model_dir, num_labels=1, pad_token_id=tokenizer.pad_token_id
        )
        adapter = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
        torch.testing.assert_close(held_out_rewards(adapter, held_out, tokenizer.pad_token_id), rewards)
        assert AutoTokenizer.from_pretrained(run_dir / "adapter").pad_token_id == tokenizer.pad_token_id


def test_accumulation_gives_the_same_reward_steps(tiny_model_dir, toy_data, tmp_path):
    """batch 8 × accum 1 and 4 × 2 log the same loss, reward statistics (extremes included) and gradient norm."""
    runs = []
    for batch_size, accum in ((8, 1), (4, 2)):
        run_dir = tmp_path / f"b{batch_size}a{accum}"
        config = tiny_config(
            tiny_model_dir, toy_data, run_dir, train={"batch_size": batch_size, "grad_accum": accum, "max_steps": 3}
        )
        config["method"] = {"kind": "reward", "center_rewards_coefficient": 0.01}
        prefalign.train(config, quiet=True)
        runs.append(read_metrics(run_dir / "metrics.jsonl"))
    for a, b in zip(*runs, strict=True):
        for key in ("loss", "accuracy", "margin", "mean_reward", "min_reward", "max_reward", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["step"], key)
    assert runs[0][-1]["loss"] < runs[0][0]["loss"]


def test_lm_coef_and_centring_run(tiny_model_dir, tmp_path):
    rows = toy_rows()[:8]
    for i, row in enumerate(rows):
        row["margin"] = 0.25 * i
    data = write_jsonl(tmp_path / "margins.jsonl", rows)
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", train={"max_steps": 2}, output={"save": ["adapter"]})
    config["method"] = {"kind": "reward", "lm_coef": 0.1, "center_rewards_coefficient": 0.01}
    prefalign.train(config, quiet=True)
    first = read_metrics(tmp_path / "run" / "metrics.jsonl")[0]
    assert first["nll_loss"] > 5  # a random model: about log(vocab) nats per token
    assert first["loss"] > 0.1 * first["nll_loss"]


# --- TRL 1.16 RewardTrainer -------------------------------------------------------------------------------

TRL_COMPARED = ("loss", "accuracy", "margin", "mean_reward", "min_reward", "max_reward", "grad_norm")
PICK = (0, 2, 7, 3)
QUESTION_PREFIX = ("", "Answer in one word, please. ", "", "Quick: ")


def trl_rows(margins: bool) -> list[dict]:
    """Four TRL-standard pairs with unequal prompt and answer lengths (and margins where asked)."""
    rows = toy_rows(conversational=False)
    picked = []
    for i, (index, prefix) in enumerate(zip(PICK, QUESTION_PREFIX, strict=True)):
        row = dict(rows[index])
        row["prompt"] = row["prompt"].replace("Q: ", "Q: " + prefix, 1)
        if margins:
            row["margin"] = [0.5, -0.25, 1.0, 0.0][i]
        picked.append(row)
    return picked


@pytest.fixture(scope="module")
def seeded_reward_dir(tmp_path_factory, tiny_model_dir, smollm_dir) -> Path:
    """One sequence-classification checkpoint with a seeded head, and a tokenizer padding with <|im_start|>."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tmp_path_factory.mktemp("tiny-reward")
    torch.manual_seed(2)  # a head under which 2 of the 4 pairs are ranked right: accuracy 0.5, not a trivial 0 or 1
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    torch.nn.init.normal_(model.score.weight, std=0.3)
    model.config.pad_token_id = 1
    model.save_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    tokenizer.pad_token = "<|im_start|>"
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("variant", ["plain", "margin_centring"])
def test_first_step_matches_trl_reward_trainer(tmp_path, seeded_reward_dir, monkeypatch, variant):
    import datasets
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from prefalign.data import prepare_data

    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    center = 0.05 if variant == "margin_centring" else None
    rows = trl_rows(margins=center is not None)
    config = tiny_config(
        seeded_reward_dir, write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / "prefalign",
        model={"lora": None, "dtype": "float32"},
        train={"batch_size": 4, "max_steps": 1, "lr": 1e-6, "seed": 0},
        output={"save": []},
    )  # fmt: skip
    config["method"] = {"kind": "reward", "center_rewards_coefficient": center}
    tokenizer = AutoTokenizer.from_pretrained(seeded_reward_dir)
    ours_ids = prepare_data(load_config(config).data, tokenizer, seed=0).train

    args = RewardConfig(
        **trl_one_step_args(
            tmp_path / "trl", learning_rate=1e-6, max_length=64, center_rewards_coefficient=center, seed=0
        )
    )
    trainer = RewardTrainer(
        model=str(seeded_reward_dir),
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trl_ids = list(trainer.train_dataset)
    assert [r["chosen_ids"] for r in trl_ids] == [r["prompt_ids"] + r["chosen_ids"] for r in ours_ids]
    assert [r["rejected_ids"] for r in trl_ids] == [r["prompt_ids"] + r["rejected_ids"] for r in ours_ids]
    assert trainer.model.config.pad_token_id == 1
    trainer.train()
    theirs = trainer.state.log_history[0]
    assert theirs["num_tokens"] == sum(len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in trl_ids)

    prefalign.train(config, quiet=True)
    ours = read_metrics(tmp_path / "prefalign" / "metrics.jsonl")[0]
    assert ours["step"] == 1 and ours["epoch"] == 1.0  # one step is all 4 pairs

    lines = [f"{'metric':<14}{'prefalign':>22}{'TRL':>22}{'rel. diff':>11}"]
    for name in TRL_COMPARED:
        diff = abs(ours[name] - theirs[name]) / abs(theirs[name]) if theirs[name] else abs(ours[name])
        lines.append(f"{name:<14}{ours[name]!r:>22}{theirs[name]!r:>22}{diff:>11.1e}")
    table = "\n".join(lines)
    print(table)
    for name in TRL_COMPARED:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-4, abs=1e-6), f"{name} differs:\n{table}"
    assert abs(theirs["loss"] - math.log(2)) > 1e-2 and abs(theirs["margin"]) > 1e-2, table  # non-trivial
    assert 0 < theirs["accuracy"] < 1, table
