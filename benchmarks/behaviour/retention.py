"""Retention: what a run costs the model outside its task.

Two measures on `general/heldout.jsonl` (everyday chat questions with reference answers, written by the
project for the purpose; see general/generate.py for why not the peer data), engine-neutral like score.py
(plain transformers, float32, the tokenizer's own chat template):

- **general NLL**: the per-token negative log-likelihood of the reference answers given their questions,
  summed over all answer tokens (the end-of-turn token included: a model that no longer knows when to stop
  pays for it) and divided by their count. A row reports it as a relative change from the base model's, so
  +0.05 means 5% more nats per answer token than the base model.
- **general answers**: greedy answers (`max_new_tokens` as score.py) to the same questions, each read by a
  rule simple enough to check by eye (`general_answer_ok`): it answers (two words or more), does not loop
  (rules.is_degenerate), does not reproduce a task's trained template (either task's rule), and names at
  least one of the row's `expect` words. The rate is the share of questions answered that way.

- **peer NLL**: the same per-token NLL on answers nobody on this project wrote, in other voices: the chosen
  answers of LLaMA-Factory's `dpo_en_demo` (`../shared/peers/`, the data that first showed the cost; see
  `peer_rows` for which 40). The project's own general answers share the project's plain voice, which the
  tasks' chosen answers share too, so a run can make them *more* likely while everything else gets less likely
  (measured: −7.4% on the general set, +5.1% on the peer answers, same adapter). The peer change is therefore
  the headline retention figure; the general set stays for its answers rule.

The base model's retention is computed once per (model, settings) and cached; a trained model's is only
compared with a base computed on the same tokenizer (`tokenizer_fingerprint`): `relative_change` refuses
a missing or foreign base rather than compare NLLs over different tokens.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rules import TASKS, is_degenerate

HERE = Path(__file__).resolve().parent
GENERAL_PATH = HERE / "general" / "heldout.jsonl"
PEER_PATH = HERE.parents[2] / "shared" / "peers" / "dpo_en_demo.json"  # next to the project, never copied into it
PEER_ROWS = 40


class RetentionError(ValueError):
    """A retention comparison that would mean nothing (no base score, or one over another tokenizer)."""


@dataclass
class Retention:
    nll: float  # per-token NLL of the reference answers (nats)
    peer_nll: float  # per-token NLL of the peer answers (nats)
    peer_tokens: int
    n_tokens: int  # answer tokens scored
    tokenizer: str  # tokenizer_fingerprint of the tokenizer that produced those tokens
    general_ok: float  # share of greedy answers that pass general_answer_ok
    n_questions: int
    seconds: float
    answers: list[dict] = field(default_factory=list)  # question, answer, and each part of the rule

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "answers"}


def general_rows(path: Path = GENERAL_PATH) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, row in enumerate(rows, 1):
        missing = {"prompt", "answer", "expect"} - set(row)
        if missing:
            raise RetentionError(f"{path}:{i}: missing {', '.join(sorted(missing))}; regenerate with generate.py")
    return rows


def written_probe_rows(path: Path) -> list[dict]:
    """The package's general-text probe (prefalign/data/probe/general.jsonl: prompt and one assistant message
    per row) as general_nll reads rows: {prompt: messages, answer: text}."""
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        completion = record["completion"]
        if len(completion) != 1 or completion[0].get("role") != "assistant":
            raise RetentionError(f"{path}:{i}: completion: one assistant message expected")
        rows.append({"prompt": record["prompt"], "answer": completion[0]["content"]})
    return rows


_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


def peer_rows(path: Path = PEER_PATH, n: int = PEER_ROWS) -> list[dict]:
    """The first `n` rows of LLaMA-Factory's dpo_en_demo whose conversation (up to 1,500 characters) and chosen
    answer (up to 1,200) are short enough to score quickly, as {prompt: messages, answer: chosen text}. Its
    ShareGPT roles map to chat roles; a row with another role is a RetentionError naming it."""
    if not path.is_file():
        raise RetentionError(f"{path}: the peer data is missing (the retention measure reads ../shared/peers)")
    rows = []
    for i, record in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        turns = record["conversations"]
        answer = record["chosen"]["value"]
        if sum(len(t["value"]) for t in turns) > 1500 or len(answer) > 1200:
            continue
        unknown = {t["from"] for t in turns} - set(_ROLES)
        if unknown:
            raise RetentionError(f"{path}: row {i}: unknown role(s) {sorted(unknown)}")
        rows.append({"prompt": [{"role": _ROLES[t["from"]], "content": t["value"]} for t in turns], "answer": answer})
        if len(rows) == n:
            break
    return rows


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of what decides the scored tokens: the vocabulary, the special tokens and the chat template."""
    content = {
        "vocab": sorted(tokenizer.get_vocab().items()),
        "special": sorted(tokenizer.special_tokens_map.items(), key=str),
        "template": tokenizer.chat_template,
    }
    return hashlib.sha256(json.dumps(content, default=str).encode()).hexdigest()[:16]


def answer_ids(tokenizer: Any, prompt: list[dict], answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids): the template's rendering split where the answer starts, cut after the first
    end-of-turn token (what the template prints after it, a newline, is not the model's to predict)."""
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": answer}], tokenize=False, add_generation_prompt=False
    )
    if not full_text.startswith(prompt_text):
        raise RetentionError("the chat template renders the question differently once an answer follows it")
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False).input_ids
    rest = tokenizer(full_text[len(prompt_text) :], add_special_tokens=False).input_ids
    if tokenizer.eos_token_id in rest:
        rest = rest[: rest.index(tokenizer.eos_token_id) + 1]
    return prompt_ids, rest


def token_nlls(model: Any, tokenizer: Any, rows: list[dict]) -> list[list[float]]:
    """Each row's answer tokens' negative log-likelihoods given its question, one sequence at a time (no
    padding)."""
    import torch

    device = next(model.parameters()).device
    result = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for row in rows:
            prompt_ids, ids = answer_ids(tokenizer, row["prompt"], row["answer"])
            input_ids = torch.tensor([prompt_ids + ids], device=device)
            logits = model(input_ids=input_ids).logits[0, len(prompt_ids) - 1 : -1].float()
            logps = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(ids, device=device)[:, None])
            result.append((-logps[:, 0]).tolist())
    model.train(was_training)
    return result


def general_nll(model: Any, tokenizer: Any, rows: list[dict]) -> tuple[float, int]:
    """(per-token NLL over all rows' answer tokens, number of tokens)."""
    nlls = [nll for row in token_nlls(model, tokenizer, rows) for nll in row]
    return sum(nlls) / max(len(nlls), 1), len(nlls)


_WORD = re.compile(r"\w+")


def general_answer_ok(answer: str, expect: list[str]) -> dict[str, bool]:
    """Each part of the rule for one greedy answer, and `ok` when all hold."""
    parts = {
        "answers": len(_WORD.findall(answer)) >= 2,
        "not_degenerate": not is_degenerate(answer),
        "no_template": not any(task.rule(answer) for task in TASKS.values()),
        "on_topic": any(word.lower() in answer.lower() for word in expect),
    }
    return {**parts, "ok": all(parts.values())}


def retention(
    model: Any, tokenizer: Any, *, max_new_tokens: int = 48, batch_size: int = 8, path: Path = GENERAL_PATH
) -> Retention:
    """Both retention measures of a loaded model (float32, eval mode: score.load gives one)."""
    from score import generate

    rows = general_rows(path)
    started = time.perf_counter()
    nll, n_tokens = general_nll(model, tokenizer, rows)
    peer, peer_tokens = general_nll(model, tokenizer, peer_rows())
    replies = generate(model, tokenizer, [row["prompt"] for row in rows], max_new_tokens, batch_size)
    records = [
        {"prompt": row["prompt"][-1]["content"], "answer": reply, **general_answer_ok(reply, row["expect"])}
        for row, reply in zip(rows, replies, strict=True)
    ]
    return Retention(
        nll=nll,
        peer_nll=peer,
        peer_tokens=peer_tokens,
        n_tokens=n_tokens,
        tokenizer=tokenizer_fingerprint(tokenizer),
        general_ok=sum(r["ok"] for r in records) / max(len(records), 1),
        n_questions=len(records),
        seconds=time.perf_counter() - started,
        answers=records,
    )


def relative_change(after: dict | None, base: dict | None, key: str = "nll") -> float:
    """(NLL after − NLL base) / NLL base of one measure (`nll` or `peer_nll`), refused when there is nothing fair
    to compare with."""
    if after is None or after.get(key) is None:
        raise RetentionError("the row has no retention score of its own")
    if base is None or base.get(key) is None:
        raise RetentionError("the base model's retention score is missing: score the base model first")
    if base.get("tokenizer") != after.get("tokenizer"):
        raise RetentionError(
            f"the base model's retention was scored with another tokenizer ({base.get('tokenizer')} vs "
            f"{after.get('tokenizer')}): NLLs over different tokens do not compare; rescore the base model"
        )
    return (after[key] - base[key]) / base[key]
