"""prefalign's SimPO, CPO and ORPO first logged step equals what TRL 1.16's CPOTrainer and ORPOTrainer compute.

Both train the same tiny random Llama (`tiny_model_dir`, full fine-tuning, float32, CPU) on the same
4 conversational pairs in one batch of 4 (the logged values are means over pairs, so the order either
shuffles them into is moot), on identical token ids (see `test_trl_tokenises_these_rows_so`). No
reference model anywhere: prefalign resolves `reference.mode: auto` to none.

    prefalign                         TRL
    loss: simpo                       CPOTrainer(loss_type="simpo", cpo_alpha=0)
    loss: [simpo, sft]                CPOTrainer(loss_type="simpo", cpo_alpha=1)  (TRL's default: CPO-SimPO)
    loss: cpo                         CPOTrainer(loss_type="sigmoid")
    loss: orpo, orpo_lambda: λ        ORPOTrainer(beta=λ)

Every chosen answer of these pairs is 6 tokens long, so TRL's NLL (one mean over all chosen tokens
of the batch) equals prefalign's (per pair, then the mean over pairs) and CPO's loss and gradient are
comparable; the rejected answers and the prompts differ in length, so SimPO's and ORPO's per-token
averages are exercised.

Compared on the metrics each computes alike. TRL's CPOTrainer (simpo) and ORPOTrainer log per-token
*average* log-probs as `logps/*`; prefalign's `logps/*` are always sums, so there the row "logps/*
(per token)" compares TRL's value with prefalign's rewards/* ÷ β (λ for ORPO), the same mean of averages.
ORPO's NLL is where TRL departs from the paper (see `test_orpo_first_step_matches_trl`): its loss,
NLL and gradient norm are not comparable, its odds-ratio term (loss − nll_loss) is.

Largest relative differences measured (|prefalign − TRL| / |TRL|; CPU, float32, torch 2.13,
transformers 5.23, trl 1.16.0; deterministic from run to run):

    metric               simpo     simpo + sft  cpo       orpo
    loss                 0         0            0         (NLL differs, see below)
    loss − nll_loss      —         —            —         1.4e-05
    rewards/chosen       0         0            0         0
    rewards/rejected     0         0            0         0
    rewards/margins      0         0            0         0
    rewards/accuracies   0         0            0         0
    logps/chosen         0 (p.t.)  0 (p.t.)     0         1.3e-07 (p.t.)
    logps/rejected       0 (p.t.)  0 (p.t.)     0         2.2e-08 (p.t.)
    nll_loss             —         8.8e-08      8.8e-08   (differs, see below)
    log_odds_ratio       —         —            —         0
    log_odds_chosen      —         —            —         1.5e-06
    grad_norm            7.6e-08   0            0         (NLL differs)

(p.t.: per token, as above.) Largest overall: 1.4e-05, ORPO's loss − nll_loss (0.0705967 vs
0.0705976): both sides are the difference of two numbers near 10.8, and the absolute difference,
9.5e-07, is one float32 ulp at that size. The others are one-ulp differences in a sum too (the
per-pair mean against TRL's one mean over the batch's tokens), or none at all.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_config, trl_one_step_args, write_jsonl
from tests.test_trl_agreement import pair_rows as agreement_pair_rows
from tests.test_trl_agreement import prefalign_token_ids, run_prefalign

REL, ABS = 1e-4, 1e-5
SEED, LR, MAX_LENGTH = 0, 1e-6, 64
REWARDS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")

# apple, paris, nile, mars: each chosen answer is 6 tokens, the rejected ones 6 or 7; two prompts are longer.
PICK = (1, 3, 9, 5)


def pair_rows(conversational: bool = True) -> list[dict]:
    return agreement_pair_rows(conversational, PICK)


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")  # prefalign's Accelerator() too, even where a GPU exists


def prefalign_config(model_dir: Path, data: Path, run_dir: Path, method: dict) -> dict:
    config = tiny_config(
        model_dir,
        data,
        run_dir,
        model={"lora": None, "dtype": "float32"},
        data={"max_length": MAX_LENGTH},
        train={"batch_size": 4, "max_steps": 1, "lr": LR, "seed": SEED, "log_every": 1},
        output={"save": []},
    )
    config["method"] = method  # no reference section: auto, which these losses resolve to none
    return config


def trl_trainer(model_dir: Path, rows: list[dict], out_dir: Path, trainer: str, **loss_args):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.cpo import CPOConfig, CPOTrainer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    config_class, trainer_class = {"cpo": (CPOConfig, CPOTrainer), "orpo": (ORPOConfig, ORPOTrainer)}[trainer]
    args = config_class(**trl_one_step_args(out_dir, learning_rate=LR, max_length=MAX_LENGTH, seed=SEED, **loss_args))
    return trainer_class(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )


def trl_rows(ids: list[dict]) -> list[dict]:
    """prefalign's token ids as the tokenised rows CPOTrainer/ORPOTrainer's collator takes."""
    rows = []
    for r in ids:
        prompt = r["prompt_ids"]
        row = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
        for key in ("chosen", "rejected"):
            answer = r[f"{key}_ids"]
            row[f"{key}_input_ids"] = prompt + answer
            row[f"{key}_attention_mask"] = [1] * (len(prompt) + len(answer))
            row[f"{key}_labels"] = [-100] * len(prompt) + answer  # the prompt is not scored
        rows.append(row)
    return rows


def trl_ids(dataset) -> list[dict]:
    """Prompt, chosen and rejected ids of TRL's own tokenisation (its rows hold prompt + answer)."""
    out = []
    for row in dataset:
        n = len(row["prompt_input_ids"])
        assert row["chosen_input_ids"][:n] == row["prompt_input_ids"] == row["rejected_input_ids"][:n]
        out.append(
            {
                "prompt_ids": row["prompt_input_ids"],
                "chosen_ids": row["chosen_input_ids"][n:],
                "rejected_ids": row["rejected_input_ids"][n:],
            }
        )
    return out


def run_trl(trainer, ids: list[dict]) -> dict:
    """TRL's first logged step on prefalign's token ids (its own tokenisation differs; see below)."""
    import datasets

    trainer.train_dataset = datasets.Dataset.from_list(trl_rows(ids))
    trainer.train()
    first = trainer.state.log_history[0]
    assert first["step"] == 1
    return first


def assert_agree(rows: list[tuple[str, float, float]]) -> dict[str, float]:
    """(metric, prefalign, TRL) rows within rel 1e-4 (abs 1e-5 near 0); returns the relative differences."""
    report = [f"{'metric':<26}{'prefalign':>22}{'TRL':>22}{'rel. diff':>11}"]
    diffs = {}
    for name, a, b in rows:
        diffs[name] = abs(a - b) / abs(b) if b else abs(a - b)
        report.append(f"{name:<26}{a!r:>22}{b!r:>22}{diffs[name]:>11.1e}")
    table = "\n".join(report)
    print(table)
    for name, a, b in rows:
        assert a == pytest.approx(b, rel=REL, abs=ABS), f"{name} differs:\n{table}"
    return diffs


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, tiny_model_dir) -> tuple[Path, list[dict]]:
    """The 4 pairs' data file and prefalign's token ids of them, in file order."""
    root = tmp_path_factory.mktemp("reference-free-pairs")
    data = write_jsonl(root / "pairs.jsonl", pair_rows())
    ids = prefalign_token_ids(prefalign_config(tiny_model_dir, data, root / "unused", {"loss": "simpo"}))
    assert len({len(r["chosen_ids"]) for r in ids}) == 1  # equal chosen lengths: TRL's batch NLL = per-pair mean
    assert len({len(r["rejected_ids"]) for r in ids}) > 1 and len({len(r["prompt_ids"]) for r in ids}) > 1
    return data, ids


def test_trl_tokenises_these_rows_so(tmp_path, tiny_model_dir, pairs):
    """CPOTrainer and ORPOTrainer tokenise as TRL's old DPO did; what differs from prefalign, asserted exactly.

    Conversational rows: the same prompt ids; each answer gets the "\\n" that SmolLM2's template
    prints after <|im_end|> (the model never generates it), and then TRL's `add_eos_token_if_needed`
    appends another <|im_end|>, because the answer no longer ends in EOS. Plain-string rows: the same
    answers, but TRL prepends BOS (here <|im_start|>) to every prompt that does not start with it.
    The comparisons below therefore hand TRL prefalign's ids (`trl_rows`), for TRL's own collator,
    forward, loss and metrics.
    """
    _, ours = pairs
    trainer = trl_trainer(tiny_model_dir, pair_rows(), tmp_path / "trl", "cpo")
    tok = trainer.processing_class
    newline, end = tok("\n", add_special_tokens=False)["input_ids"], [tok.eos_token_id]
    assert tok.eos_token == "<|im_end|>" and len(newline) == 1
    theirs = trl_ids(trainer.train_dataset)
    for ours_row, trl_row in zip(ours, theirs, strict=True):
        assert trl_row["prompt_ids"] == ours_row["prompt_ids"]
        for key in ("chosen_ids", "rejected_ids"):
            assert ours_row[key][-1] == tok.eos_token_id
            assert trl_row[key] == ours_row[key] + newline + end, tok.decode(trl_row[key])
    orpo = trl_trainer(tiny_model_dir, pair_rows(), tmp_path / "trl-orpo", "orpo")
    assert trl_ids(orpo.train_dataset) == theirs  # ORPOTrainer tokenises alike

    plain = pair_rows(conversational=False)
    config = prefalign_config(
        tiny_model_dir, write_jsonl(tmp_path / "plain.jsonl", plain), tmp_path / "run", {"loss": "cpo"}
    )
    ours_plain = prefalign_token_ids(config)
    theirs_plain = trl_ids(trl_trainer(tiny_model_dir, plain, tmp_path / "trl-plain", "cpo").train_dataset)
    for ours_row, trl_row in zip(ours_plain, theirs_plain, strict=True):
        assert trl_row["prompt_ids"] == [tok.bos_token_id] + ours_row["prompt_ids"]
        assert ours_row["prompt_ids"][0] != tok.bos_token_id
        assert (trl_row["chosen_ids"], trl_row["rejected_ids"]) == (ours_row["chosen_ids"], ours_row["rejected_ids"])
    assert trl_ids(trl_rows(ours)) == ours  # and trl_rows hands TRL prefalign's ids unchanged


@pytest.mark.parametrize(
    ("method", "trl_args"),
    [
        (
            {"loss": "simpo", "beta": 2.0, "gamma": 0.5},
            {"loss_type": "simpo", "beta": 2.0, "simpo_gamma": 0.5, "cpo_alpha": 0.0},
        ),
        (
            {"loss": ["simpo", "sft"], "beta": 2.0, "gamma": 0.5},
            {"loss_type": "simpo", "beta": 2.0, "simpo_gamma": 0.5, "cpo_alpha": 1.0},
        ),
    ],
    ids=["simpo", "simpo+sft"],
)
def test_simpo_first_step_matches_trl(tmp_path, tiny_model_dir, pairs, method, trl_args):
    """SimPO (and CPO-SimPO, TRL's default for loss_type simpo) on TRL's CPOTrainer."""
    data, ids = pairs
    theirs = run_trl(trl_trainer(tiny_model_dir, pair_rows(), tmp_path / "trl", "cpo", **trl_args), ids)
    ours = run_prefalign(prefalign_config(tiny_model_dir, data, tmp_path / "prefalign", method))
    beta = method["beta"]
    rows = [(name, ours[name], theirs[name]) for name in ("loss", *REWARDS, "grad_norm")]
    rows += [
        (f"logps/{side} (per token)", ours[f"rewards/{side}"] / beta, theirs[f"logps/{side}"])
        for side in ("chosen", "rejected")
    ]
    if "sft" in method["loss"]:
        rows.append(("nll_loss", ours["nll_loss"], theirs["nll_loss"]))
    assert_agree(rows)
    assert abs(theirs["rewards/margins"]) > 1e-2  # non-trivial margins and NLL
    assert theirs["nll_loss"] == (
        0.0 if trl_args["cpo_alpha"] == 0 else pytest.approx(-theirs["logps/chosen"], rel=1e-4)
    )


def test_cpo_first_step_matches_trl(tmp_path, tiny_model_dir, pairs):
    """CPO = CPOTrainer's sigmoid loss type; a non-default cpo_alpha and label smoothing, as TRL applies both."""
    data, ids = pairs
    trl_args = {"loss_type": "sigmoid", "beta": 0.1, "cpo_alpha": 0.5, "label_smoothing": 0.1}
    theirs = run_trl(trl_trainer(tiny_model_dir, pair_rows(), tmp_path / "trl", "cpo", **trl_args), ids)
    method = {"loss": "cpo", "beta": 0.1, "cpo_alpha": 0.5, "label_smoothing": 0.1}
    ours = run_prefalign(prefalign_config(tiny_model_dir, data, tmp_path / "prefalign", method))
    names = ("loss", *REWARDS, "logps/chosen", "logps/rejected", "nll_loss", "grad_norm")
    assert_agree([(name, ours[name], theirs[name]) for name in names])
    assert abs(theirs["rewards/margins"]) > 1e-2


def test_orpo_first_step_matches_trl(tmp_path, tiny_model_dir, pairs):
    """ORPO: the odds-ratio term, rewards and log odds agree; the NLL is where TRL departs from the paper.

    The paper's L_SFT is the NLL of the chosen answer. TRL's ORPOTrainer (following the authors'
    code) takes one cross-entropy over every non-padding token of the chosen rows, prompt included,
    averaged over the batch's tokens. Both are recomputed here from the untrained model's log-probs,
    so the difference is shown to be exactly that; the loss and gradient norm differ by it, and
    loss − nll_loss (λ · L_OR, averaged) is compared instead.
    """
    from transformers import AutoModelForCausalLM

    data, ids = pairs
    lam = 0.1
    theirs = run_trl(trl_trainer(tiny_model_dir, pair_rows(), tmp_path / "trl", "orpo", beta=lam), ids)
    ours = run_prefalign(
        prefalign_config(tiny_model_dir, data, tmp_path / "prefalign", {"loss": "orpo", "lambda": lam})
    )
    rows = [(name, ours[name], theirs[name]) for name in (*REWARDS, "log_odds_ratio", "log_odds_chosen")]
    rows.append(("loss - nll_loss", ours["loss"] - ours["nll_loss"], theirs["loss"] - theirs["nll_loss"]))
    rows += [
        (f"logps/{side} (per token)", ours[f"rewards/{side}"] / lam, theirs[f"logps/{side}"])
        for side in ("chosen", "rejected")
    ]
    assert_agree(rows)
    assert abs(theirs["log_odds_chosen"]) > 1e-2

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    answer_nll, sequence_logps, sequence_tokens = [], 0.0, 0
    with torch.no_grad():
        for r in ids:
            sequence = torch.tensor([r["prompt_ids"] + r["chosen_ids"]])
            token_logps = torch.log_softmax(model(sequence).logits[0, :-1].float(), -1)
            token_logps = token_logps.gather(-1, sequence[0, 1:, None])[:, 0]
            answer_nll.append(-token_logps[-len(r["chosen_ids"]) :].mean().item())
            sequence_logps += token_logps.sum().item()
            sequence_tokens += len(token_logps)
    assert ours["nll_loss"] == pytest.approx(sum(answer_nll) / len(answer_nll), rel=1e-5)  # the paper's
    assert theirs["nll_loss"] == pytest.approx(-sequence_logps / sequence_tokens, rel=1e-5)  # prompt included
    assert abs(ours["nll_loss"] - theirs["nll_loss"]) > 1e-3 * abs(theirs["nll_loss"])
    assert math.isfinite(ours["grad_norm"]) and ours["grad_norm"] != pytest.approx(theirs["grad_norm"], rel=1e-3)
