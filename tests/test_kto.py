"""Unpaired data and the unpaired losses (kto, apo_zero_unpaired), end to end.

Readers, rendering and `data.split_pairs`; both losses computed by hand; a short training run that
learns; and the first logged step against TRL 1.16's `KTOTrainer` on the same tiny model, reference and
batch (see `test_first_step_matches_trl`).

Largest relative differences measured against TRL (|prefalign − TRL| / |TRL|; CPU, float32, torch 2.13,
transformers 5.23, trl 1.16.0; deterministic from run to run):

    metric               kto standard   kto conversational   apo_zero_unpaired standard
    loss                 1.9e-07        1.9e-07              1.9e-07
    kl                   4.5e-06        1.2e-04              (not computed)
    rewards/chosen       3.4e-05        0                    3.4e-05
    rewards/rejected     2.5e-05        2.1e-05              2.5e-05
    rewards/margins      5.9e-05        9.3e-06              5.9e-05
    logps/chosen         0              0                    0
    logps/rejected       1.1e-07        0                    1.1e-07
    grad_norm            0              0                    0

Largest overall: 1.2e-04, the conversational kl (0.0154114 vs 0.0154133). Like the rewards, the KL
estimate is a mean of differences of two log-prob sums of about −70 nats, where a float32 ulp is 7.6e-6;
its absolute difference, 1.9e-06, is a quarter of one ulp (one sum off by one ulp, averaged over 4
examples), large only relative to so small an estimate. The test's tolerance is rel 1e-4 or abs 1e-5,
whichever is looser, as in tests/test_trl_agreement.py. Log-probs and the gradient norm agree to the ulp.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import prefalign
from prefalign.config import ConfigError, DataConfig, DataSource, MethodConfig, load_config
from prefalign.data import prepare_data
from prefalign.data.formats import FORMATS, RowError, detect_format
from prefalign.data.layout import padded, sequences_of
from prefalign.data.load import DataError, canonical_rows
from prefalign.data.render import Renderer, RenderSettings
from prefalign.losses import LOSSES
from prefalign.model.load import load_tokenizer
from prefalign.objective import Objective
from prefalign.scoring.logps import SequenceLogps
from prefalign.training.metrics import MetricSums, read_metrics
from tests.conftest import (
    PEERS,
    assistant,
    make_tiny_model,
    system,
    tiny_config,
    toy_rows,
    trl_one_step_args,
    user,
    write_jsonl,
)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def unpaired(pairs: list[dict], answers: list[str]) -> list[dict]:
    """TRL unpaired rows from pairs: row i keeps pair i's `answers[i]` ("chosen": label true, "rejected": false)."""
    return [
        {"prompt": pair["prompt"], "completion": pair[answer], "label": answer == "chosen"}
        for pair, answer in zip(pairs, answers, strict=True)
    ]


def toy_unpaired(conversational: bool = True) -> list[dict]:
    """Both answers of every toy pair as unpaired rows: 32 rows, desirable and undesirable in turn."""
    pairs = [pair for pair in toy_rows(conversational) for _ in range(2)]
    return unpaired(pairs, ["chosen", "rejected"] * (len(pairs) // 2))


def read(path: Path, fmt: str = "auto", **kwargs) -> tuple[list[dict], object]:
    rows, report = canonical_rows([DataSource(path=str(path), format=fmt)], "auto", skip_bad_rows=False, **kwargs)
    return [{k: v for k, v in row.items() if k != "origin"} for row in rows.to_list()], report


# --- readers ---------------------------------------------------------------------------------------

STANDARD = {"prompt": "Q: Name a colour.\nA:", "completion": " It is RED.", "label": True}
CONVERSATIONAL = {
    "prompt": [system("Be brief."), user("Name a tree.")],
    "completion": [assistant("oak, maybe")],
    "label": False,
}
MESSAGES = {
    "messages": [user("Hi."), assistant("Hello!"), user("Name a fish."), assistant("TROUT.")],
    "label": True,
}


def test_trl_unpaired_standard_reader():
    fmt = FORMATS["trl_unpaired_standard"]
    assert fmt.kind == "unpaired"
    assert fmt.convert(STANDARD) == {
        "prompt": [user("Q: Name a colour.\nA:")],
        "completion": [assistant(" It is RED.")],
        "label": True,
        "plain": True,
    }


def test_trl_unpaired_conversational_reader():
    fmt = FORMATS["trl_unpaired_conversational"]
    assert fmt.kind == "unpaired"
    assert fmt.convert(CONVERSATIONAL) == {**CONVERSATIONAL, "plain": False}


def test_messages_label_reader_judges_the_last_answer():
    fmt = FORMATS["messages_label"]
    assert fmt.kind == "unpaired"
    assert fmt.convert(MESSAGES) == {
        "prompt": [user("Hi."), assistant("Hello!"), user("Name a fish.")],
        "completion": [assistant("TROUT.")],
        "label": True,
        "plain": False,
    }
    with pytest.raises(RowError, match=r"messages\[0\]: the last message must be the assistant answer"):
        fmt.convert({"messages": [user("Hi.")], "label": True})
    with pytest.raises(RowError, match="messages: no prompt before the judged answer"):
        fmt.convert({"messages": [assistant("Hello!")], "label": True})
    with pytest.raises(RowError, match=r"messages\[1\]: empty completion"):
        fmt.convert({"messages": [user("Hi."), assistant("  ")], "label": True})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, True), (False, False), (1, True), (0, False), ("true", True), ("False", False), (" TRUE ", True)],
)
def test_labels_read_as_bools(raw, expected):
    assert FORMATS["trl_unpaired_standard"].convert({**STANDARD, "label": raw})["label"] is expected


@pytest.mark.parametrize("raw", ["yes", "", 2, 0.5, None, [True]])
def test_other_labels_are_errors(raw):
    with pytest.raises(RowError) as info:
        FORMATS["trl_unpaired_standard"].convert({**STANDARD, "label": raw})
    assert info.value.field == "label"


def test_bad_label_is_named_by_file_row_and_field(tmp_path):
    rows = [STANDARD, {**STANDARD, "label": "maybe"}, STANDARD]
    path = write_jsonl(tmp_path / "kto.jsonl", [{**row, "label": str(row["label"])} for row in rows])
    with pytest.raises(DataError) as info:
        read(path)
    assert f"{path}: row 2: field label: expected a bool" in str(info.value) and "'maybe'" in str(info.value)
    # skipped on request, and counted
    good, report = canonical_rows([DataSource(path=str(path))], "auto", skip_bad_rows=True)
    assert len(good) == 2 and len(report.bad_rows) == 1


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (STANDARD, "trl_unpaired_standard"),
        (CONVERSATIONAL, "trl_unpaired_conversational"),
        (MESSAGES, "messages_label"),
    ],
)
def test_auto_detection(tmp_path, row, expected):
    assert detect_format(row, "x.jsonl").name == expected
    rows, report = read(write_jsonl(tmp_path / "rows.jsonl", [row, row]))
    assert report.formats == {expected: 2}
    assert rows[0]["completion"][-1]["role"] == "assistant" and isinstance(rows[0]["label"], bool)


@pytest.mark.skipif(not (PEERS / "kto_en_demo.json").is_file(), reason="no peer data")
def test_llama_factory_kto_demo_loads_as_is(tokenizer):
    """LLaMA-Factory's KTO demo (`messages` + bool `label`) reads, renders and batches with no mapping."""
    path = PEERS / "kto_en_demo.json"
    raw = json.loads(path.read_text())
    rows, report = read(path)
    assert report.formats == {"messages_label": len(raw)} and not report.bad_rows
    assert [row["label"] for row in rows] == [row["label"] for row in raw]
    for row, source in zip(rows, raw, strict=True):
        assert row["prompt"] + row["completion"] == source["messages"]
    data = prepare_data(DataConfig(train=str(path), max_length=1024), tokenizer, seed=0)
    assert not data.paired and set(data.train.column_names) == {"prompt_ids", "completion_ids", "label", "truncated"}
    assert len(data.train) == len(raw) - sum(data.report.dropped.values())
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    whole = [ids for ids, cut in zip(data.train["completion_ids"], data.train["truncated"], strict=True) if not cut]
    assert len(whole) > len(raw) // 2 and all(ids[-1] == im_end for ids in whole)
    batch = padded(data.train.select(range(4)).to_list(), tokenizer.pad_token_id, kl_completions=True)
    assert batch.num_sequences == 8 and batch.labels.dtype == torch.bool


# --- rendering and split_pairs -------------------------------------------------------------------


def test_unpaired_rows_render_like_the_answers_of_a_pair(tokenizer):
    """Same template, same truncation: an unpaired row's completion_ids are the pair's chosen_ids."""
    pair = FORMATS["trl_conversational"].convert(toy_rows()[3])
    row = {"prompt": pair["prompt"], "completion": pair["chosen"], "label": True, "plain": False}
    # (max_length, max_prompt_length, max_completion_length): none binding, prompt and answer cut, answer cut
    for limits in ((4096, None, None), (20, 14, None), (4096, None, 3)):
        renderer = Renderer(tokenizer, RenderSettings(None, *limits))
        ours, theirs = renderer.render(row), renderer.render(pair)
        assert ours["prompt_ids"] == theirs["prompt_ids"] and ours["completion_ids"] == theirs["chosen_ids"]
        assert ours["label"] is True and ours["truncated"] == (theirs["truncated"] and len(ours["completion_ids"]) > 0)
        assert set(ours) == {"prompt_ids", "completion_ids", "label", "truncated", "drop"}


def test_split_pairs_gives_each_answer_its_label(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "pairs.jsonl", toy_rows())
    pairs = prepare_data(DataConfig(train=str(path), max_length=64), tokenizer, seed=0).train
    split = prepare_data(DataConfig(train=str(path), max_length=64, split_pairs=True), tokenizer, seed=0).train
    assert len(split) == 2 * len(pairs) and split["label"] == [True, False] * len(pairs)
    for i, pair in enumerate(pairs):
        assert split[2 * i]["prompt_ids"] == split[2 * i + 1]["prompt_ids"] == pair["prompt_ids"]
        assert split[2 * i]["completion_ids"] == pair["chosen_ids"]
        assert split[2 * i + 1]["completion_ids"] == pair["rejected_ids"]


def test_split_pairs_holds_out_whole_pairs(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "pairs.jsonl", toy_rows())
    config = DataConfig(train=str(path), max_length=64, split_pairs=True, eval_fraction=0.25)
    data = prepare_data(config, tokenizer, seed=0)
    assert (len(data.train), len(data.eval)) == (24, 8)
    # both answers of a held-out pair are held out: no training prompt is also an eval prompt
    assert not {tuple(ids) for ids in data.train["prompt_ids"]} & {tuple(ids) for ids in data.eval["prompt_ids"]}


def test_sources_of_both_kinds_need_split_pairs(tmp_path, tokenizer):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", toy_rows()[:3])
    rows = write_jsonl(tmp_path / "rows.jsonl", toy_unpaired()[:5])
    sources = [DataSource(path=str(pairs)), DataSource(path=str(rows))]
    with pytest.raises(DataError, match=r"mix pairs and unpaired rows: .*pairs.jsonl \(paired\).*data.split_pairs"):
        canonical_rows(sources, "auto", skip_bad_rows=False)
    mixed, _ = canonical_rows(sources, "auto", skip_bad_rows=False, split_pairs=True)
    assert len(mixed) == 2 * 3 + 5 and mixed["label"][:6] == [True, False] * 3
    assert mixed["origin"][1] == f"{pairs}: row 1 (rejected)"


# --- config and data that do not fit the loss ------------------------------------------------------


def test_pairs_with_an_unpaired_loss_ask_for_split_pairs(tmp_path, tiny_model_dir, tokenizer):
    data = write_jsonl(tmp_path / "pairs.jsonl", toy_rows())
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", method={"loss": "kto"})
    with pytest.raises(ConfigError) as info:
        prefalign.train(config, quiet=True)
    message = str(info.value)
    assert message.startswith("method.loss: kto needs unpaired rows") and "set data.split_pairs: true" in message
    assert "data.train holds pairs" in message


def test_unpaired_rows_with_a_paired_loss(tmp_path, tokenizer):
    data = write_jsonl(tmp_path / "rows.jsonl", toy_unpaired())
    config = load_config({"data": {"train": str(data)}, "method": {"loss": "sigmoid"}})
    with pytest.raises(ConfigError, match=r"method.loss: sigmoid needs pairs .*use an unpaired loss \(.*kto"):
        prepare_data(config.data, tokenizer, seed=0, method=config.method)
    # the held-out source is checked too
    pairs = write_jsonl(tmp_path / "pairs.jsonl", toy_rows())
    config = load_config({"data": {"train": str(data), "eval": str(pairs)}, "method": {"loss": "kto"}})
    with pytest.raises(ConfigError, match=r"data\.eval holds pairs"):
        prepare_data(config.data, tokenizer, seed=0, method=config.method)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"data": {"train": "x", "split_pairs": True}}, "data.split_pairs: splits pairs into unpaired rows, and loss"),
        ({"data": {"train": "x"}, "method": {"loss": "kto"}, "train": {"batch_size": 1}}, "train.batch_size: loss"),
        ({"data": {"train": "x"}, "method": {"loss": "kto"}, "train": {"eval_batch_size": 1}}, "train.eval_batch_size"),
        (
            {"data": {"train": "x"}, "method": {"loss": "sigmoid", "desirable_weight": 2.0}},
            "used by apo_zero_unpaired, kto",
        ),
        ({"data": {"train": "x"}, "method": {"loss": ["kto", "sigmoid"]}}, "mixes paired and unpaired losses"),
    ],
)
def test_config_errors(sections, message):
    with pytest.raises(ConfigError, match=message):
        load_config(sections)


def test_apo_zero_unpaired_needs_no_kl_batch():
    config = load_config({"data": {"train": "x"}, "method": {"loss": "apo_zero_unpaired"}, "train": {"batch_size": 1}})
    assert not Objective(config.method).kl_completions


# --- the losses, by hand ---------------------------------------------------------------------------

BETA, W_D, W_U = 0.1, 1.0, 1.5
LABELS = [True, False, True, False, True]
# Summed log-probs of 5 completions of unequal lengths (tokens: 9, 23, 5, 17, 31), and of the mismatched
# completions of the KL estimate (example i's prompt with example i−1's completion).
POLICY = [-12.0, -30.5, -7.25, -19.75, -40.0]
REF = [-12.5, -29.0, -8.0, -20.0, -39.0]  # log-ratios r = 0.5, −1.5, 0.75, 0.25, −1.0
POLICY_KL = [-14.0, -27.0, -9.5, -22.0, -5.0]
REF_KL = [-14.4, -27.3, -9.2, -22.5, -5.6]  # differences 0.4, 0.3, −0.3, 0.5, 0.6: mean z0 = 1.5 / 5 = 0.3
LENGTHS = [9, 23, 5, 17, 31]


def tensor(values, grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, requires_grad=grad)


def loss_inputs(policy=POLICY, policy_kl=POLICY_KL, ref_kl=REF_KL, grad=False) -> dict[str, torch.Tensor]:
    return {
        "policy_logps": tensor(policy, grad),
        "ref_logps": tensor(REF),
        "policy_kl_logps": tensor(policy_kl, grad),
        "ref_kl_logps": tensor(ref_kl),
        "labels": torch.tensor(LABELS),
    }


KTO_LOSSES = [
    W_D * (1 - sigmoid(BETA * (0.5 - 0.3))),  # desirable: λ_D (1 − σ(β(r − z0)))
    W_U * (1 - sigmoid(BETA * (0.3 - -1.5))),  # undesirable: λ_U (1 − σ(β(z0 − r)))
    W_D * (1 - sigmoid(BETA * (0.75 - 0.3))),
    W_U * (1 - sigmoid(BETA * (0.3 - 0.25))),
    W_D * (1 - sigmoid(BETA * (-1.0 - 0.3))),
]
APO_LOSSES = [
    W_D * (1 - sigmoid(BETA * 0.5)),  # desirable: λ_D (1 − σ(β r))
    W_U * sigmoid(BETA * -1.5),  # undesirable: λ_U σ(β r)
    W_D * (1 - sigmoid(BETA * 0.75)),
    W_U * sigmoid(BETA * 0.25),
    W_D * (1 - sigmoid(BETA * -1.0)),
]
REWARDS = [BETA * 0.5, BETA * -1.5, BETA * 0.75, BETA * 0.25, BETA * -1.0]


def call(name: str, tensors: dict) -> object:
    from prefalign.losses import compute_loss

    return compute_loss(LOSSES[name], tensors, {"beta": BETA, "desirable_weight": W_D, "undesirable_weight": W_U})


@pytest.mark.parametrize(("name", "expected"), [("kto", KTO_LOSSES), ("apo_zero_unpaired", APO_LOSSES)])
def test_losses_by_hand(name, expected):
    out = call(name, loss_inputs())
    assert out.losses.shape == (5,)
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx(REWARDS, rel=1e-6)
    assert out.rejected_rewards is None
    if name == "kto":
        assert out.metrics["kl"].tolist() == pytest.approx([0.3] * 5, rel=1e-6)


def test_kto_kl_is_clamped_at_zero():
    # mismatched completions the policy finds less likely than the reference: mean difference −0.5, so z0 = 0
    out = call("kto", loss_inputs(policy_kl=[-15.0, -27.5, -10.0, -23.0, -6.1]))
    assert out.metrics["kl"].tolist() == [0.0] * 5
    by_hand = [
        W_D * (1 - sigmoid(BETA * 0.5)),
        W_U * (1 - sigmoid(BETA * 1.5)),
        W_D * (1 - sigmoid(BETA * 0.75)),
        W_U * (1 - sigmoid(BETA * -0.25)),
        W_D * (1 - sigmoid(BETA * -1.0)),
    ]
    assert out.losses.tolist() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize("name", ["kto", "apo_zero_unpaired"])
def test_gradient_raises_desirable_and_lowers_undesirable_answers(name):
    tensors = loss_inputs(grad=True)
    call(name, tensors).losses.sum().backward()
    grad = tensors["policy_logps"].grad
    assert all((g < 0) if label else (g > 0) for g, label in zip(grad.tolist(), LABELS, strict=True))
    # the reference point carries no gradient
    assert tensors["policy_kl_logps"].grad is None
    # by hand for the first (desirable) example: d/dr λ_D (1 − σ(β(r − z0))) = −λ_D β σ(x)(1 − σ(x))
    x = BETA * (0.5 - (0.3 if name == "kto" else 0.0))
    assert grad[0].item() == pytest.approx(-W_D * BETA * sigmoid(x) * (1 - sigmoid(x)), rel=1e-5)


def test_objective_metrics_match_trl_names_and_means(tokenizer):
    """Through the objective, on a real padded batch: TRL's metric names, means over the examples they apply to."""
    objective = Objective(MethodConfig(loss="kto", beta=BETA, undesirable_weight=W_U))
    assert objective.kl_completions and not objective.paired
    examples = [
        {"prompt_ids": [1, 2, 3][: 1 + i % 3], "completion_ids": [7] * n, "label": label}
        for i, (n, label) in enumerate(zip(LENGTHS, LABELS, strict=True))
    ]
    batch = padded(examples, tokenizer.pad_token_id, kl_completions=True)
    assert batch.num_sequences == 10 and batch.labels.tolist() == LABELS
    # sequence 5 + i pairs prompt i with completion i − 1 (cycled)
    assert sequences_of(examples, kl_completions=True)[5:] == [
        (ex["prompt_ids"], examples[i - 1]["completion_ids"]) for i, ex in enumerate(examples)
    ]
    lengths = torch.tensor(LENGTHS + LENGTHS[-1:] + LENGTHS[:-1])
    policy = SequenceLogps(tensor(POLICY + POLICY_KL), lengths, 5)
    ref = SequenceLogps(tensor(REF + REF_KL), lengths, 5)
    losses, metrics = objective(policy, ref, batch)
    assert losses.tolist() == pytest.approx(KTO_LOSSES, rel=1e-6)
    sums = MetricSums()
    sums.add(losses, metrics)
    means = sums.means()
    chosen, rejected = (0.05 + 0.075 - 0.1) / 3, (-0.15 + 0.025) / 2  # rewards β·r of each label's examples
    expected = {
        "loss": sum(KTO_LOSSES) / 5,
        "kl": 0.3,
        "rewards/chosen": chosen,
        "rewards/rejected": rejected,
        "rewards/margins": chosen - rejected,  # TRL: mean(chosen rewards) − mean(rejected rewards)
        "logps/chosen": (-12.0 - 7.25 - 40.0) / 3,
        "logps/rejected": (-30.5 - 19.75) / 2,
        "label_accuracy": 3
        / 5,  # rewards 0.05 (+, desirable) −0.15 (−, undesirable) 0.075 (+) 0.025 (+, wrong) −0.1 (−, wrong)
    }
    assert means.keys() == expected.keys()
    for key, value in expected.items():
        assert means[key] == pytest.approx(value, rel=1e-5), key


def test_one_label_only_has_no_margin():
    sums = MetricSums()
    sums.add(
        torch.zeros(2), {"rewards/chosen": torch.tensor([0.1, 0.3]), "rewards/rejected": torch.full((2,), math.nan)}
    )
    assert "rewards/margins" not in sums.means() and sums.means()["rewards/chosen"] == pytest.approx(0.2)


# --- a run ---------------------------------------------------------------------------------------


def test_kto_run_learns_and_reports(tmp_path, tiny_model_dir):
    """A LoRA kto run on the toy rows (capitalised answers desirable): held-out loss falls, the reward margin rises."""
    from rich.console import Console

    from prefalign.run import print_summary

    data = write_jsonl(tmp_path / "rows.jsonl", toy_unpaired())
    run_dir = tmp_path / "run"
    config = tiny_config(
        tiny_model_dir, data, run_dir,
        data={"eval": str(data)},
        method={"loss": "kto", "beta": 0.1},
        train={"batch_size": 8, "max_steps": 8, "lr": 1e-2, "warmup_ratio": 0.0},
        eval={"generations": 2, "max_new_tokens": 4, "before": True},
    )  # fmt: skip
    result = prefalign.train(config, quiet=True)
    before, after = result.before, result.after
    assert after["loss"] < before["loss"] - 0.01
    assert after["rewards/margins"] > 0.05 and after["label_accuracy"] > 0.5
    assert before["rewards/margins"] == 0.0 and before["kl"] == 0.0  # the adapter starts as a no-op
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]
    assert len(records) == 8
    trl_names = {
        "loss",
        "kl",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    }
    assert trl_names | {"label_accuracy", "grad_norm", "examples_per_s"} <= records[0].keys()
    # before/after answers to two distinct held-out prompts (each prompt appears twice in the rows)
    assert len(result.generations) == 2 and result.generations[0]["prompt"] != result.generations[1]["prompt"]
    card = (run_dir / "README.md").read_text()
    assert "**kto**" in card and "| kl |" in card and "desirable / undesirable weight | 1.0 / 1.0" in card
    console = Console(record=True, width=200)
    print_summary(console, load_config(config), result)
    text = console.export_text()
    assert "label accuracy" in text and "reward margin" in text and "preference accuracy" not in text


def test_apo_zero_unpaired_on_split_pairs_learns(tmp_path, tiny_model_dir):
    """Paired data trains an unpaired loss through data.split_pairs; APO-zero has no KL term to log."""
    data = write_jsonl(tmp_path / "pairs.jsonl", toy_rows())
    config = tiny_config(
        tiny_model_dir, data, tmp_path / "run",
        data={"split_pairs": True, "eval": str(data)},
        method={"loss": "apo_zero_unpaired"},
        train={"batch_size": 8, "max_steps": 8, "lr": 1e-2, "warmup_ratio": 0.0},
        eval={"before": True},
    )  # fmt: skip
    result = prefalign.train(config, quiet=True)
    before, after = result.before, result.after
    assert after["loss"] < before["loss"] - 0.01 and after["rewards/margins"] > 0.05
    assert "kl" not in after and after.keys() >= {"rewards/chosen", "rewards/rejected", "label_accuracy"}


# --- agreement with TRL 1.16 -----------------------------------------------------------------------

COMPARED = (
    "loss",
    "kl",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
    "grad_norm",
)
REL, ABS = 1e-4, 1e-5
SEED, LR, MAX_LENGTH = 0, 1e-6, 64
PICK = (0, 2, 7, 3)
ANSWERS = ("chosen", "rejected", "chosen", "rejected")
QUESTION_PREFIX = ("", "Answer in one word, please. ", "", "Quick: ")


def agreement_rows(conversational: bool) -> list[dict]:
    """Four toy rows, two desirable and two not, with unequal prompt and completion lengths (file order)."""
    pairs = []
    for index, prefix in zip(PICK, QUESTION_PREFIX, strict=True):
        pair = json.loads(json.dumps(toy_rows(conversational)[index]))
        if conversational:
            pair["prompt"][0]["content"] = prefix + pair["prompt"][0]["content"]
        else:
            pair["prompt"] = pair["prompt"].replace("Q: ", "Q: " + prefix, 1)
        pairs.append(pair)
    return unpaired(pairs, list(ANSWERS))


@pytest.fixture(scope="module")
def policy_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A second tiny Llama (seed 1): the policy both trainers start from; `tiny_model_dir` (seed 0) is the reference.

    This way round (tests/test_trl_agreement.py has them the other way) the mismatched completions are
    likelier under the policy than under the reference (mean log-ratio +0.21 standard, +0.015 conversational),
    so KTO's KL estimate is above 0 and not clamped away: the comparison covers the reference point.
    """
    path = tmp_path_factory.mktemp("tiny-llama-policy")
    make_tiny_model(tokenizer, seed=1).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def first_batch_order() -> list[int]:
    """The file rows in the order prefalign's first step batches them (its seeded permutation)."""
    from prefalign.training.loop import step_examples

    return step_examples(4, SEED, epoch=0, step_in_epoch=0, global_batch=4)


def run_prefalign(config: dict) -> dict:
    prefalign.train(config, quiet=True)
    first = next(r for r in read_metrics(Path(config["output"]["dir"]) / "metrics.jsonl") if r["split"] == "train")
    assert first["step"] == 1 and first["epoch"] == 1.0  # one step is the whole epoch: all 4 rows are in it
    return first


def trl_trainer(model_dir: Path, ref_dir: Path, rows: list[dict], out_dir: Path, loss: str):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import KTOConfig, KTOTrainer

    args = KTOConfig(
        **trl_one_step_args(
            out_dir,
            learning_rate=LR,
            beta=BETA,
            loss_type=loss,
            desirable_weight=W_D,
            undesirable_weight=W_U,
            max_length=MAX_LENGTH,
            seed=SEED,
        )
    )
    assert args.train_sampling_strategy == "sequential"  # batches in dataset order: the KL pairs are fixed by it
    return KTOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        ref_model=AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32),
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )


@pytest.mark.parametrize(("loss", "conversational"), [("kto", False), ("kto", True), ("apo_zero_unpaired", False)])
def test_first_step_matches_trl(tmp_path, policy_model_dir, tiny_model_dir, monkeypatch, loss, conversational):
    """The first logged step equals TRL's: same tiny random Llamas as policy and reference, one batch of all 4 rows.

    The KL estimate depends on the batch's order: example i's prompt is scored with example i−1's
    completion, cycled, in both. TRL fixes the mismatched completions when it tokenises (by dataset
    order, `train_sampling_strategy="sequential"`), prefalign when it batches (in its seeded permutation's
    order). So TRL gets the rows in the order prefalign's first step draws them, and the test asserts that
    both score the same (prompt, mismatched completion) token ids before comparing anything.

    Conversational rows: TRL scores the "\\n" SmolLM2's template prints after <|im_end|>; prefalign does
    not (see tests/test_trl_agreement.py). That token is stripped from TRL's tokenised completions and
    KL completions, so both run on the same ids.
    """
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    rows = agreement_rows(conversational)
    config = tiny_config(
        policy_model_dir, write_jsonl(tmp_path / "rows.jsonl", rows), tmp_path / "prefalign",
        model={"lora": None, "dtype": "float32"},
        reference={"mode": "model", "path": str(tiny_model_dir)},
        data={"max_length": MAX_LENGTH},
        method={"loss": loss, "beta": BETA, "undesirable_weight": W_U},
        train={"batch_size": 4, "max_steps": 1, "lr": LR, "seed": SEED, "log_every": 1},
        output={"save": []},
    )  # fmt: skip
    cfg = load_config(config)
    ours_ids = prepare_data(cfg.data, load_tokenizer(cfg.model), SEED, method=cfg.method).train
    order = first_batch_order()
    batch = [ours_ids[i] for i in order]

    trainer = trl_trainer(policy_model_dir, tiny_model_dir, [rows[i] for i in order], tmp_path / "trl", loss)
    if conversational:
        newline = trainer.processing_class("\n", add_special_tokens=False)["input_ids"]
        assert all(ids[-len(newline) :] == newline for ids in trainer.train_dataset["completion_ids"])
        trainer.train_dataset = trainer.train_dataset.map(
            lambda row: {key: row[key][:-1] for key in row if key.endswith("completion_ids")}
        )
    theirs_rows = trainer.train_dataset.to_list()
    assert [(r["prompt_ids"], r["completion_ids"], r["label"]) for r in theirs_rows] == [
        (r["prompt_ids"], r["completion_ids"], r["label"]) for r in batch
    ]
    if loss == "kto":
        kl_sequences = sequences_of(batch, kl_completions=True)[4:]
        assert [(r["prompt_ids"], r["KL_completion_ids"]) for r in theirs_rows] == kl_sequences
    assert len({len(r["prompt_ids"]) for r in batch}) > 1 and len({len(r["completion_ids"]) for r in batch}) > 1

    trainer.train()
    theirs = trainer.state.log_history[0]
    assert theirs["step"] == 1
    assert theirs["num_tokens"] == sum(len(r["prompt_ids"]) + len(r["completion_ids"]) for r in batch)
    ours = run_prefalign(config)

    compared = [name for name in COMPARED if name != "kl" or loss == "kto"]
    report = [f"{'metric':<18}{'prefalign':>24}{'TRL':>24}{'rel. diff':>11}"]
    for name in compared:
        a, b = ours[name], theirs[name]
        report.append(f"{name:<18}{a!r:>24}{b!r:>24}{abs(a - b) / abs(b) if b else abs(a - b):>11.1e}")
    table = "\n".join(report)
    print(table)
    for name in compared:
        assert ours[name] == pytest.approx(theirs[name], rel=REL, abs=ABS), f"{name} differs:\n{table}"
    # Non-trivial: a reference point above 0 (not clamped away) and rewards that differ by label.
    if loss == "kto":
        assert theirs["kl"] > 1e-3, table
    assert abs(theirs["rewards/margins"]) > 1e-3, table
