"""The general-text probe: the policy's per-token NLL on a few everyday chat answers, scored at every eval.

A preference run can win its task and cost the model elsewhere: in issue 18 the default recipe raised
the per-token NLL of ordinary chat answers it never trained on by 17.5% (the behaviour benchmark's
retention column measures the same on its tasks). The probe shows that cost while the run trains, as
`eval/general_nll`. Its text ships with the package (`prefalign/data/probe/general.jsonl`: fourteen
questions with short answers, about 770 answer tokens under SmolLM2's tokenizer; eight everyday answers in
plain prose and six in other voices — a casual coding question, a formal letter, worked algebra, a story,
SQL, bullet points — because a run whose chosen answers share one plain voice can make plain prose *more*
likely while everything else gets less likely) and is only ever scored,
never trained on: it is read here and nowhere in data loading.

The NLL is summed over every answer token of the probe (end-of-turn included) and divided by their count,
through the same renderer (chat template, BOS/EOS handling) and the same scorer as training, so it is the
quantity the training loss's NLL term would report on those answers.
"""

from __future__ import annotations

import json
from importlib import resources

import torch

from prefalign.data.layout import Batch, make_batch
from prefalign.scoring.logps import sequence_logps

PROBE_FILE = "general.jsonl"


def probe_rows(plain: bool = False) -> list[dict]:
    """The probe's canonical unpaired rows (prompt and completion message lists), as the package ships them.

    `plain`: rendered as plain text (question then answer, no chat template), as a run renders plain strings.
    """
    text = resources.files("prefalign").joinpath("data", "probe", PROBE_FILE).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [{"prompt": r["prompt"], "completion": r["completion"], "plain": plain} for r in rows]


def probe_batch(renderer, pad_id: int) -> Batch:
    """The probe rendered by the run's renderer (its template and limits) as one padded batch.

    A row the run's limits would truncate is scored truncated, as the run would see it; a row they would
    drop (the prompt fills max_length) is left out. A model with no chat template to use (none named, none
    in its tokenizer: a base model trained on plain strings) reads the probe as plain text rather than
    stopping the run.
    """
    no_template = renderer.settings.template is None and renderer.tokenizer.chat_template is None
    examples = [renderer.render(row) for row in probe_rows(plain=no_template)]
    examples = [ex for ex in examples if not ex["drop"]]
    if not examples:
        raise ValueError("data.max_length leaves no room for any probe answer: the general-text probe is empty")
    return make_batch(examples, pad_id, "padded")


@torch.no_grad()
def general_nll(scorer: torch.nn.Module, probe_batch: Batch) -> float:
    """Per-token NLL of the probe's answers under the policy: −Σ log π(y_t) / (number of answer tokens)."""
    was_training = scorer.training
    scorer.eval()
    device = next(scorer.parameters()).device
    out = sequence_logps(scorer, probe_batch.to(device))
    scorer.train(was_training)
    return float(-out.logps.sum() / out.lengths.sum().clamp(min=1))
