"""Warnings for a run that wins the training loss without making the chosen answers more likely.

DPO-style losses only ask that the chosen answer gain on the rejected one relative to the reference. They
are met as well by pushing both down, the rejected faster, and then the pairs are learned (reward accuracy
1.0, a growing margin) while the model answers new prompts as before (see benchmarks/behaviour). The
rewards a reference-based loss logs show it directly: `rewards/chosen` is β·log π(chosen)/π_ref(chosen),
the chosen answers' log-prob against where training started, averaged over the step's own examples (so,
unlike the raw `logps/chosen`, it does not jump with the lengths of the answers drawn).

The watch compares the mean of the last `window` logged steps with the mean of the `window` before them:

- **chosen falling**: reward accuracy ≥ 0.9, the chosen reward below zero, lower than in the window
  before, and fallen by at least a tenth of the margin (so noise around zero does not count);
- **margin from the rejected side only**: the margin has grown to at least `min_margin` and above the
  window before, while the chosen reward is at or below zero: all of the margin came from pushing the
  rejected answers down.

Each warning is given once per run. Losses without a reference (SimPO, CPO, ORPO) log no such relative
reward, so the watch is off for them.

`GeneralNllWatch` reads eval records instead: when the run has held-out data, each eval also scores the
general-text probe (prefalign.eval.probe, `general_nll`), and the watch gives **general_nll_rising** once
the probe's NLL has risen past `threshold` (relative) above the policy's before training — the run is
making ordinary answers it never trained on less likely, the cost users notice as "the model got dumber".
"""

from __future__ import annotations

from dataclasses import dataclass

REMEDY = "Add an NLL term on the chosen answers (method.rpo_alpha), lower train.lr, or raise method.beta."
GENERAL_REMEDY = "Lower train.lr or train.epochs, or raise method.beta, to keep the model closer to where it started."

# The relative rise of the probe's NLL that gives general_nll_rising. See GeneralNllWatch for the measurements.
GENERAL_NLL_THRESHOLD = 0.05


@dataclass(frozen=True)
class Finding:
    kind: str  # chosen_falling | rejected_only | general_nll_rising
    step: int
    message: str
    remedy: str = REMEDY

    def __str__(self) -> str:
        return f"step {self.step}: {self.message} {self.remedy}"


class LikelihoodWatch:
    def __init__(self, accuracy: str = "rewards/accuracies", window: int = 5, min_margin: float = 0.5):
        self.accuracy = accuracy
        self.window = window
        self.min_margin = min_margin
        self.records: list[dict[str, float]] = []
        self.given: set[str] = set()

    def update(self, record: dict[str, float]) -> list[Finding]:
        """Take one logged train step's metrics; return the warnings that this step gives for the first time."""
        names = (self.accuracy, "rewards/chosen", "rewards/margins")
        if not all(name in record for name in names):  # a step of unpaired rows with one label only
            return []
        self.records.append({name: record[name] for name in names} | {"step": record["step"]})
        w = self.window
        if len(self.records) < 2 * w:
            return []
        now, before = self._mean(self.records[-w:]), self._mean(self.records[-2 * w : -w])
        chosen, margin, accuracy = now["rewards/chosen"], now["rewards/margins"], now[self.accuracy]
        first, last = self.records[-w]["step"], self.records[-1]["step"]
        found = []
        if accuracy >= 0.9 and chosen < 0 and chosen < before["rewards/chosen"] and chosen <= -0.1 * abs(margin):
            found.append(
                Finding(
                    "chosen_falling",
                    int(last),
                    f"reward accuracy is {accuracy:.2f} but the chosen answers are getting less likely: "
                    f"rewards/chosen fell from {before['rewards/chosen']:.2f} to {chosen:.2f} "
                    f"(mean of steps {int(first)}–{int(last)}).",
                )
            )
        if margin >= self.min_margin and margin > before["rewards/margins"] and chosen <= 0:
            found.append(
                Finding(
                    "rejected_only",
                    int(last),
                    f"the reward margin grew to {margin:.2f} only by pushing the rejected answers down "
                    f"(rewards/chosen {chosen:.2f}, steps {int(first)}–{int(last)}): the model learns what "
                    "not to say, not what to say.",
                )
            )
        new = [warning for warning in found if warning.kind not in self.given]
        self.given.update(warning.kind for warning in new)
        return new

    @staticmethod
    def _mean(records: list[dict[str, float]]) -> dict[str, float]:
        return {name: sum(r[name] for r in records) / len(records) for name in records[0]}


class GeneralNllWatch:
    """A finding when the general-text probe's NLL rises more than `threshold` above its value before training.

    `base` is the policy's probe NLL before the first step (score it then: with `general_nll` on the untrained
    policy). Without it the first eval record that has `general_nll` serves, which understates a rise already
    under way by then. The finding is given once per run, at the first eval past the threshold.

    Why 5%: it is issue 18's target for a recipe's retention cost, and the behaviour benchmark's retention sweep
    (benchmarks/behaviour/README.md, "Retention results") puts it below every recipe that moved the harder
    task's held-out behaviour on SmolLM2-135M-Instruct (+6.5-7.0% at the defaults' lr 3e-4, +10.5-12.5% at 5e-4, in
    the NLL of general chat answers never trained on), and above most of those that left it unmoved (+3.7-6.6%).
    So a run that changes behaviour as those did is told what it costs, with the measured rise.
    The probe scores the starting policy's own sampled answers (eval/probe.py), which tracked that measure within
    half a point on the two adapters checked (+12.1% and +9.8% where other people's answers rose 11.8% and
    10.1%; benchmarks/behaviour/probe_check.py --own), so the same threshold applies to it.
    """

    def __init__(self, base: float | None = None, threshold: float = GENERAL_NLL_THRESHOLD, key: str = "general_nll"):
        if base is not None and base <= 0:
            raise ValueError(f"GeneralNllWatch: base NLL must be positive, got {base}")
        self.base = base
        self.threshold = threshold
        self.key = key
        self.given = False

    def update(self, record: dict[str, float]) -> list[Finding]:
        """Take one eval record; return [the finding] the first time the probe's NLL is past the threshold."""
        if self.key not in record or self.given:
            return []
        nll = float(record[self.key])
        if self.base is None:
            self.base = nll
            return []
        rise = (nll - self.base) / self.base
        if rise <= self.threshold:
            return []
        self.given = True
        message = (
            f"the NLL of ordinary chat answers the run never trains on (the general-text probe) rose {100 * rise:.1f}% "
            f"above where training started ({self.base:.3f} -> {nll:.3f} nats per token), past the "
            f"{100 * self.threshold:.0f}% threshold: the model is getting worse outside its task."
        )
        return [Finding("general_nll_rising", int(record["step"]), message, GENERAL_REMEDY)]
