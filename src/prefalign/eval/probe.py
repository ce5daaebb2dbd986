"""The general-text probe: the policy's per-token NLL on its own starting answers to everyday questions, scored
at every eval.

A preference run can win its task and cost the model elsewhere: in issue 18 the default recipe raised
the per-token NLL of ordinary chat answers it never trained on by 17.5% (the behaviour benchmark's
retention column measures the same on its tasks, on other people's answers). The probe shows that cost while the
run trains, as `eval/general_nll`. Its questions ship with the package (`prefalign/data/probe/general.jsonl`:
fourteen everyday and technical questions) and are only ever scored, never trained on: they are read here and
nowhere in data loading.

What is scored is not the answers written beside the questions but the policy's own answers, sampled before the
first step (temperature 1, seed 0, up to 128 tokens each; kept in RUN_DIR/probe.json, which a resumed run
reads back). Their NLL under the policy estimates the cross-entropy from the starting model to the policy on
general questions, the starting model's own entropy plus KL(start ‖ policy), so it rises exactly as the policy
drifts from what it would have said. Measured 2026-12-03 on the two adapters the retention sweep had kept
(SmolLM2-135M-Instruct, prefalign's defaults on the benchmark's two tasks; benchmarks/behaviour/probe_check.py):
other people's chat answers (the benchmark's peer NLL) rose 11.8% and 10.1%; the model's own answers as
sampled here +12.1% and +9.8%; its greedy answers +36% and +36% (greedy text is the model's likeliest, so it
moves most); the written answers −4.5% and +1.1%, because a run whose chosen answers share a plain voice makes
plain prose more likely while everything else gets less likely.

The NLL is summed over every answer token of the probe (end-of-turn included) and divided by their count,
through the same renderer (chat template, BOS/EOS handling) and the same scorer as training, so it is the
quantity the training loss's NLL term would report on those answers.
"""

from __future__ import annotations

import json
from importlib import resources

import torch

from prefalign.data.layout import Batch, make_batch
from prefalign.eval.sampling import Sampling
from prefalign.scoring.logps import sequence_logps

PROBE_FILE = "general.jsonl"
OWN_ANSWER_TOKENS = 128  # per answer: a few sentences; all fourteen took 66 s on SmolLM2-135M, CPU shared three ways
PROBE_SEED = 0


def probe_rows(plain: bool = False) -> list[dict]:
    """The probe's canonical unpaired rows (prompt and completion message lists), as the package ships them.

    `plain`: rendered as plain text (question then answer, no chat template), as a run renders plain strings.
    """
    text = resources.files("prefalign").joinpath("data", "probe", PROBE_FILE).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [{"prompt": r["prompt"], "completion": r["completion"], "plain": plain} for r in rows]


def uses_plain_text(renderer) -> bool:
    """A model with no chat template to use (none named, none in its tokenizer: a base model trained on plain
    strings) reads the probe as plain text rather than stopping the run."""
    return renderer.settings.template is None and renderer.tokenizer.chat_template is None


@torch.no_grad()
def own_answer_rows(model: torch.nn.Module, renderer, max_new_tokens: int = OWN_ANSWER_TOKENS) -> list[dict]:
    """The probe's questions with `model`'s own answers in place of the written ones: sampled at temperature 1
    (no top-k or top-p cut) from seed PROBE_SEED, all fourteen as one left-padded batch, each cut at its first
    end-of-sequence token. The caller's random state is left as it was."""
    rows = probe_rows(plain=uses_plain_text(renderer))
    tokenizer = renderer.tokenizer
    prompts = [renderer.untruncated(row)[0] for row in rows]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(ids) for ids in prompts)
    device = next(model.parameters()).device
    input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)
    stops = {tokenizer.eos_token_id, *_ids(getattr(model, "generation_config", None))} - {None}
    sampling = Sampling(seed=PROBE_SEED)  # temperature 1, no top-k or top-p cut, caller's random state kept
    was_training = model.training
    model.eval()
    with sampling.seeded(device), torch.compiler.set_stance("force_eager"):
        out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                             pad_token_id=pad_id, **sampling.generate_options())  # fmt: skip
    model.train(was_training)
    answered = []
    for row, generated in zip(rows, out[:, width:].tolist(), strict=True):
        ends = [i for i, token in enumerate(generated) if token in stops]
        text = tokenizer.decode(generated[: ends[0]] if ends else generated, skip_special_tokens=True).strip()
        completion = [{"role": "assistant", "content": text}]
        answered.append({**row, "completion": completion})
    return answered


def _ids(generation_config) -> list[int]:
    eos = getattr(generation_config, "eos_token_id", None)
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


def probe_batch(renderer, pad_id: int, rows: list[dict] | None = None) -> Batch:
    """The probe (`rows`, by default its written answers) rendered by the run's renderer (its template and
    limits) as one padded batch.

    A row the run's limits would truncate is scored truncated, as the run would see it; a row they would
    drop (the prompt fills max_length) is left out. Plain text where the model has no chat template to use
    (uses_plain_text).
    """
    rows = probe_rows(plain=uses_plain_text(renderer)) if rows is None else rows
    examples = [renderer.render(row) for row in rows]
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
