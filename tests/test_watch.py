"""training.watch: warnings when the pairs are learned by pushing the rejected answers down."""

from __future__ import annotations

from prefalign.training.watch import LikelihoodWatch

# Logged (rewards/accuracies, rewards/chosen, rewards/rejected) of two real runs of the behaviour benchmark
# (benchmarks/behaviour, task tldr, SmolLM2-135M-Instruct, LoRA, lr 5e-4, beta 0.1): plain DPO, which learned
# the pairs and left held-out answers unchanged (0% -> 0%), and DPO + NLL on chosen (rpo_alpha 1), which moved
# them (0% -> 71%). Steps 1-16 of each.
PLAIN_DPO = [
    (0.00, 0.00, 0.00), (0.00, 0.00, 0.00), (0.88, 0.01, -0.06), (1.00, 0.01, -0.22),
    (1.00, 0.02, -0.65), (0.88, 0.11, -1.09), (1.00, 0.03, -2.15), (1.00, -0.00, -2.90),
    (1.00, 0.32, -3.65), (1.00, -0.14, -6.01), (1.00, -1.28, -7.85), (1.00, -1.47, -7.38),
    (1.00, -2.27, -9.61), (1.00, -3.02, -11.06), (1.00, -3.43, -10.58), (1.00, -4.69, -13.43),
]  # fmt: skip
RPO = [
    (0.00, 0.00, 0.00), (0.00, 0.00, 0.00), (0.75, 0.03, -0.00), (1.00, 0.20, 0.02),
    (1.00, 0.59, 0.08), (0.88, 0.79, 0.13), (1.00, 1.07, 0.08), (1.00, 1.10, -0.41),
    (1.00, 1.40, -0.54), (1.00, 1.45, -1.03), (1.00, 1.64, -0.97), (0.88, 1.30, -1.44),
    (1.00, 1.93, -1.41), (1.00, 2.01, -1.46), (1.00, 2.37, -1.60), (1.00, 2.79, -1.56),
]  # fmt: skip


def records(rows):
    return [
        {"step": step, "rewards/accuracies": acc, "rewards/chosen": c, "rewards/rejected": r, "rewards/margins": c - r}
        for step, (acc, c, r) in enumerate(rows, 1)
    ]


def run(rows, **kwargs):
    watch = LikelihoodWatch(**kwargs)
    return [(record["step"], finding.kind) for record in records(rows) for finding in watch.update(record)]


def test_plain_dpo_run_gets_both_warnings_once():
    # Steps 7-11: chosen mean (0.03 + 0 + 0.32 - 0.14 - 1.28) / 5 = -0.214 <= 0, margin mean 4.30 >= 0.5 and above
    # steps 2-6's 0.44. Steps 8-12: chosen -0.514 < -0.1 x margin 5.05 and below steps 3-7's 0.036, accuracy 1.0.
    assert run(PLAIN_DPO) == [(11, "rejected_only"), (12, "chosen_falling")]


def test_rpo_run_gets_none():
    assert run(RPO) == []


def test_messages_name_the_figures_and_the_remedy():
    watch = LikelihoodWatch()
    findings = [f for record in records(PLAIN_DPO) for f in watch.update(record)]
    text = str(findings[1])
    assert text.startswith("step 12: reward accuracy is 1.00")
    assert "rewards/chosen fell from 0.04 to -0.51" in text and "rpo_alpha" in text


def test_noise_around_zero_is_not_a_finding():
    # Accuracy 1, the chosen reward slightly negative and falling, but by far less than a tenth of the margin.
    rows = [(1.0, -0.01 * i, -0.5 - 0.4 * i) for i in range(12)]
    assert "chosen_falling" not in [kind for _, kind in run(rows)]


def test_unpaired_steps_without_a_margin_are_skipped():
    watch = LikelihoodWatch("label_accuracy")
    assert watch.update({"step": 1, "rewards/chosen": -1.0}) == []
    assert watch.records == []


def eval_records(values, every=10):
    return [{"step": every * i, "split": "eval", "loss": 0.5, "general_nll": v} for i, v in enumerate(values, 1)]


def test_general_nll_watch_fires_once_past_the_threshold():
    from prefalign.training.watch import GENERAL_REMEDY, GeneralNllWatch

    watch = GeneralNllWatch(base=2.0, threshold=0.05)
    # +2.5%, +4.5%, +6%, +10%: the finding comes at the third eval, and only there.
    found = [f for r in eval_records([2.05, 2.09, 2.12, 2.20]) for f in watch.update(r)]
    assert [(f.kind, f.step) for f in found] == [("general_nll_rising", 30)]
    assert "6.0%" in str(found[0]) and "2.000 -> 2.120" in str(found[0]) and str(found[0]).endswith(GENERAL_REMEDY)


def test_general_nll_watch_without_a_base_takes_the_first_eval():
    from prefalign.training.watch import GeneralNllWatch

    watch = GeneralNllWatch()
    assert watch.update({"step": 5, "split": "eval", "loss": 0.3}) == []  # no probe score in this record
    assert watch.update(eval_records([1.8])[0]) == [] and watch.base == 1.8
    assert watch.update({"step": 20, "general_nll": 1.88}) == []  # +4.4%
    assert [f.step for f in watch.update({"step": 30, "general_nll": 1.90})] == [30]  # +5.6%


def test_general_nll_watch_refuses_a_base_that_is_not_an_nll():
    import pytest

    from prefalign.training.watch import GeneralNllWatch

    with pytest.raises(ValueError, match="base NLL must be positive"):
        GeneralNllWatch(base=0.0)
