"""prefalign's first logged DPO step equals what TRL 1.16's `DPOTrainer` computes on the same batch.

Both train the same tiny random Llama (`tiny_model_dir`, full fine-tuning, float32, CPU) against the
same *different* tiny Llama as the reference (seed 1, prefalign `reference: {mode: model, path}`,
TRL `ref_model=`), so the first step's loss and rewards are non-trivial numbers rather than log(2)
and 0. Each run gets exactly 4 pairs and a batch of 4, so the first batch is the whole data set
whatever order either shuffles it into (the logged values are means over pairs, so order is moot).

The standard-format comparison runs for every loss of TRL 1.16's DPOTrainer (the `dpo` family of the
registry; `test_the_dpo_family_is_trls_list_of_loss_types` checks the two lists agree), and for
sigmoid with LD-DPO, WPO weighting, each f-divergence, and MPO's [sigmoid, bco_pair] with weights.
label_smoothing is set only where TRL's formula reads it (robust, exo_pair, aot, aot_unpaired).

Largest relative differences measured (|prefalign − TRL| / |TRL|; CPU, float32, torch 2.13,
transformers 5.23, trl 1.16.0; deterministic from run to run). Standard format, per case:

    case                       loss     rewards/*  logps/*  grad_norm
    sigmoid                    8.9e-08  2.7e-05    0        0
    robust (ε = 0.1)           1.8e-07  2.7e-05    0        0
    ipo                        0        2.7e-05    0        0
    hinge                      6.3e-08  2.7e-05    0        0
    exo_pair (ε = 1e-3)        0        2.7e-05    0        0
    nca_pair                   0        2.7e-05    0        7.0e-08
    bco_pair                   0        2.7e-05    0        0
    sppo_hard                  2.5e-07  2.7e-05    0        0
    aot (ε = 0.1)              8.9e-08  2.7e-05    0        8.9e-08
    aot_unpaired (ε = 0.1)     8.9e-08  2.7e-05    0        8.9e-08
    apo_zero                   0        2.7e-05    0        0
    apo_down                   1.8e-07  2.7e-05    0        0
    discopop (τ = 0.1)         7.1e-08  2.7e-05    0        5.6e-06
    sigmoid_norm               0        2.7e-05    0        0
    sigmoid + ld_alpha 0.5     2.7e-07  2.7e-05    0        1.4e-07
    sigmoid + use_weighting    6.3e-07  2.7e-05    0        5.0e-07
    sigmoid + forward_kl       9.0e-08  2.7e-05    0        1.5e-06
    sigmoid + js_divergence    8.8e-08  2.7e-05    0        9.6e-07
    sigmoid + alpha (α = 0.3)  0        2.7e-05    0        1.3e-06
    mpo (sigmoid, bco_pair)    1.5e-07  2.7e-05    0        0

rewards/accuracies agree exactly everywhere. Conversational format, sigmoid, on identical token ids:
loss 1.7e-07, rewards/chosen 0, rewards/rejected 3.8e-05, rewards/margins 1.2e-05, logps/chosen 0,
logps/rejected 1.1e-07, grad_norm 7.6e-08.

Largest overall: 3.8e-05 (conversational rewards/rejected: 0.0050007 vs 0.0050009); the standard
format's 2.7e-05 is rewards/chosen (0.0104775 vs 0.0104773), the same in every case because the
log-probs are. A reward is β × (policy − reference) log-prob sums of about −70 nats, where a float32
ulp is 3.8e-6 to 7.6e-6; the absolute reward differences (≤ 2.9e-07) are one-ulp differences in a
pair's sum, × β, averaged over the 4 pairs. Divided by |reward| ≈ 0.005–0.05 they give the relative
figures above. `grad_norm`, the pre-clipping gradient norm, is compared too: the gradients agree,
not only the forward values.

The `sft` term is not compared: TRL averages it over all chosen tokens of the batch, prefalign per
pair (see `CASES`). Each case trains both for one step: 3-4 s when the 2-core test machine was
otherwise idle, 6-7 s beside other jobs; the whole module (22 tests) took 145 s wall, 97 s CPU there.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from prefalign.losses import LOSSES
from tests.conftest import make_tiny_model, tiny_config, toy_rows, trl_one_step_args, write_jsonl

COMPARED = (
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
    "grad_norm",
)
REL, ABS = 1e-4, 1e-5
BETA, SEED, LR, MAX_LENGTH = 0.1, 0, 1e-6, 64

# Four toy pairs with unequal answer lengths; two get a longer question so the prompts differ in length too.
PICK = (0, 2, 7, 3)
QUESTION_PREFIX = ("", "Answer in one word, please. ", "", "Quick: ")


def pair_rows(conversational: bool, pick: tuple[int, ...] = PICK) -> list[dict]:
    """Four toy pairs (rows `pick`), two of them with a longer question."""
    rows = toy_rows(conversational=conversational)
    picked = []
    for index, prefix in zip(pick, QUESTION_PREFIX, strict=True):
        row = json.loads(json.dumps(rows[index]))  # a deep copy
        if conversational:
            row["prompt"][0]["content"] = prefix + row["prompt"][0]["content"]
        else:
            row["prompt"] = row["prompt"].replace("Q: ", "Q: " + prefix, 1)
        picked.append(row)
    return picked


@pytest.fixture(scope="module")
def ref_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A second tiny Llama (another seed): the reference model for both trainers."""
    path = tmp_path_factory.mktemp("tiny-llama-ref")
    make_tiny_model(tokenizer, seed=1).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")  # prefalign's Accelerator() too, even where a GPU exists


def prefalign_config(model_dir: Path, ref_dir: Path, data: Path, run_dir: Path, method: dict | None = None) -> dict:
    return tiny_config(
        model_dir,
        data,
        run_dir,
        model={"lora": None, "dtype": "float32"},
        reference={"mode": "model", "path": str(ref_dir)},
        data={"max_length": MAX_LENGTH},
        method={"loss": "sigmoid", "beta": BETA, **(method or {})},
        train={"batch_size": 4, "max_steps": 1, "lr": LR, "seed": SEED, "log_every": 1},
        output={"save": []},
    )


def prefalign_token_ids(config: dict) -> list[dict]:
    """The rows exactly as prefalign's training run tokenises them, in file order."""
    from prefalign.config import load_config
    from prefalign.data import prepare_data
    from prefalign.model.load import load_tokenizer

    cfg = load_config(config)
    data = prepare_data(cfg.data, load_tokenizer(cfg.model), cfg.train.seed)
    return token_ids(data.train)


def run_prefalign(config: dict) -> dict:
    from prefalign.run import train

    train(config, quiet=True)
    lines = (Path(config["output"]["dir"]) / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    first = next(r for r in records if r["split"] == "train")
    assert first["step"] == 1
    assert first["epoch"] == 1.0  # one step is the whole epoch: all 4 pairs are in it
    return first


def trl_trainer(model_dir: Path, ref_dir: Path, rows: list[dict], out_dir: Path, method: dict | None = None):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(
        **trl_one_step_args(
            out_dir, learning_rate=LR, beta=BETA, max_length=MAX_LENGTH, seed=SEED, **trl_method(method or {})
        )
    )
    return DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        ref_model=AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32),
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )


def token_ids(dataset) -> list[dict]:
    return [{key: row[key] for key in ("prompt_ids", "chosen_ids", "rejected_ids")} for row in dataset]


def run_trl(trainer) -> dict:
    trainer.train()
    first = trainer.state.log_history[0]
    assert first["step"] == 1
    return first


def batch_tokens(ids: list[dict]) -> int:
    """Non-padding tokens in the [chosen rows; rejected rows] batch of all pairs."""
    return sum(2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in ids)


def trl_method(method: dict) -> dict:
    """The DPOConfig arguments for a prefalign `method` section (the names are TRL's but for loss)."""
    loss = method.get("loss", "sigmoid")
    args = {"loss_type": [loss] if isinstance(loss, str) else list(loss)}
    return args | {key: value for key, value in method.items() if key != "loss"}


def assert_agree(ours: dict, theirs: dict, loss_is_sigmoid: bool = True) -> dict[str, float]:
    """Every compared metric within rel 1e-4 (abs 1e-5 near 0); returns the relative differences."""
    report = [f"{'metric':<20}{'prefalign':>22}{'TRL':>22}{'rel. diff':>11}"]
    diffs = {}
    for name in COMPARED:
        a, b = ours[name], theirs[name]
        diffs[name] = abs(a - b) / abs(b) if b else abs(a - b)
        report.append(f"{name:<20}{a!r:>22}{b!r:>22}{diffs[name]:>11.1e}")
    table = "\n".join(report)
    print(table)
    for name in COMPARED:
        assert ours[name] == pytest.approx(theirs[name], rel=REL, abs=ABS), f"{name} differs:\n{table}"
    # Non-trivial: a policy equal to its reference would give log(2), zero rewards and a pass for free.
    if loss_is_sigmoid:
        assert abs(theirs["loss"] - math.log(2)) > 1e-3, table
    assert abs(theirs["rewards/margins"]) > 1e-3, table
    return diffs


# The DPO family is TRL's list of DPOTrainer loss types but `sft`, whose average differs (see MPO below).
DPO_FAMILY = [name for name, spec in LOSSES.items() if spec.family == "dpo"]
# label_smoothing only where TRL's formula reads it (TRL 1.16's sigmoid ignores it); a non-default tau for discopop.
LOSS_OPTIONS = {
    "robust": {"label_smoothing": 0.1},
    "exo_pair": {"label_smoothing": 1e-3},
    "aot": {"label_smoothing": 0.1},
    "aot_unpaired": {"label_smoothing": 0.1},
    "discopop": {"discopop_tau": 0.1},
}
CASES = {name: {"loss": name, **LOSS_OPTIONS.get(name, {})} for name in DPO_FAMILY} | {
    "sigmoid+ld_alpha": {"ld_alpha": 0.5},
    "sigmoid+use_weighting": {"use_weighting": True},
    "sigmoid+forward_kl": {"f_divergence_type": "forward_kl"},
    "sigmoid+js_divergence": {"f_divergence_type": "js_divergence"},
    "sigmoid+alpha_divergence": {"f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.3},
    # MPO without its sft term: TRL averages sft over all chosen tokens of the batch, prefalign per pair
    # (a per-pair term, so that the loss of a pair does not depend on which pairs share its batch).
    # With unequal chosen lengths the two differ by design; the sft term has its own hand-computed test.
    "mpo": {"loss": ["sigmoid", "bco_pair"], "loss_weights": [0.8, 0.2]},
}


def test_the_dpo_family_is_trls_list_of_loss_types():
    from trl import DPOConfig

    trl_types = re.findall(r"`'(\w+)'`", DPOConfig.__dataclass_fields__["loss_type"].metadata["help"])
    assert sorted(DPO_FAMILY) == sorted(set(trl_types) - {"sft"})


@pytest.fixture(scope="module")
def standard_data(tmp_path_factory, tiny_model_dir, ref_model_dir) -> tuple[list[dict], Path, list[dict]]:
    """TRL standard rows (plain strings), their file, and the token ids prefalign trains on."""
    rows = pair_rows(conversational=False)
    data = write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", rows)
    ids = prefalign_token_ids(prefalign_config(tiny_model_dir, ref_model_dir, data, tmp_path_factory.mktemp("run")))
    assert len({len(r["prompt_ids"]) for r in ids}) > 1  # unequal prompt lengths
    assert len({len(r["chosen_ids"]) for r in ids} | {len(r["rejected_ids"]) for r in ids}) > 1
    return rows, data, ids


@pytest.mark.parametrize("case", list(CASES))
def test_standard_format_first_step_matches_trl(case, standard_data, tmp_path, tiny_model_dir, ref_model_dir):
    """TRL standard rows (plain strings): same token ids, same loss, rewards, log-probs and gradient norm.

    TRL tokenises prompt + answer + EOS text in one go; prefalign the prompt and the answer
    separately, then appends the EOS id. On these rows that gives the same ids, asserted first.
    """
    rows, data, ours_ids = standard_data
    method = CASES[case]
    config = prefalign_config(tiny_model_dir, ref_model_dir, data, tmp_path / "prefalign", method)
    trainer = trl_trainer(tiny_model_dir, ref_model_dir, rows, tmp_path / "trl", method)
    assert token_ids(trainer.train_dataset) == ours_ids

    theirs = run_trl(trainer)
    assert theirs["num_tokens"] == batch_tokens(ours_ids)  # TRL's first batch is all 4 pairs
    ours = run_prefalign(config)
    print(f"case {case}")
    assert_agree(ours, theirs, loss_is_sigmoid=method.get("loss", "sigmoid") == "sigmoid")


def test_conversational_first_step_matches_trl_on_identical_ids(tmp_path, tiny_model_dir, ref_model_dir):
    """TRL conversational rows: the only difference is the newline after <|im_end|>, which TRL scores.

    SmolLM2's template prints `<|im_end|>` + "\\n" after every turn. TRL's completion is the
    rendering of prompt + answer minus the prompt, so it scores that trailing "\\n" as a final
    answer token; prefalign cuts what follows the end-of-turn token (the model stops at <|im_end|>
    and never generates it). Asserted exactly: same prompt ids, and TRL's chosen/rejected ids are
    prefalign's plus the one "\\n" token. Left as is, that extra token changes every metric
    (measured on these rows: TRL loss 0.69943, logps/chosen −81.434, logps/rejected −78.476 against
    prefalign's 0.70117, −70.659, −67.731; the random model gives each "\\n" about −10.8 nats). So
    the end-to-end comparison strips it from TRL's tokenised data set, then runs TRL's own collator,
    loss and metrics on the same token ids as prefalign.
    """
    rows = pair_rows(conversational=True)
    config = prefalign_config(
        tiny_model_dir, ref_model_dir, write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / "prefalign"
    )
    ours_ids = prefalign_token_ids(config)
    trainer = trl_trainer(tiny_model_dir, ref_model_dir, rows, tmp_path / "trl")
    tok = trainer.processing_class
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    assert len(newline) == 1
    for ours_row, trl_row in zip(ours_ids, token_ids(trainer.train_dataset), strict=True):
        assert trl_row["prompt_ids"] == ours_row["prompt_ids"]
        for key in ("chosen_ids", "rejected_ids"):
            assert ours_row[key][-1] == tok.convert_tokens_to_ids("<|im_end|>")
            assert trl_row[key] == ours_row[key] + newline, tok.decode(trl_row[key])
    assert len({len(r["prompt_ids"]) for r in ours_ids}) > 1

    trainer.train_dataset = trainer.train_dataset.map(
        lambda row: {"chosen_ids": row["chosen_ids"][:-1], "rejected_ids": row["rejected_ids"][:-1]}
    )
    assert token_ids(trainer.train_dataset) == ours_ids
    theirs = run_trl(trainer)
    assert theirs["num_tokens"] == batch_tokens(ours_ids)
    ours = run_prefalign(config)
    assert_agree(ours, theirs)
