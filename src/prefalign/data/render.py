"""Canonical rows -> token ids: the prompt, and each completion's scored tokens (a pair's two, or one and its label).

The prompt is rendered with `add_generation_prompt=True`; a completion is the rendering of
prompt + completion minus the prompt's tokens. Only completion tokens are scored. The
end-of-turn token closes every completion; what a template prints after it (a newline) is not
scored, since the model never generates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import datasets

from prefalign.data.formats import Message
from prefalign.data.load import DataError, DataReport

# End-of-turn tokens of common chat templates, in addition to the tokenizer's EOS.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>")


@dataclass(frozen=True)
class RenderSettings:
    template: str | None  # None: tokenizer's for messages, none for plain strings; "tokenizer"; "none"
    max_length: int
    max_prompt_length: int | None
    max_completion_length: int | None


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in _END_OF_TURN if token in vocab)
    return ids


def _adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


class Renderer:
    """Turns one canonical row into prompt_ids / chosen_ids / rejected_ids."""

    def __init__(self, tokenizer: Any, settings: RenderSettings):
        self.tokenizer = tokenizer
        self.settings = settings
        self.eot_ids = end_of_turn_ids(tokenizer)
        self.adds_bos = _adds_bos(tokenizer)

    def _uses_template(self, plain: bool) -> bool:
        template = self.settings.template
        if template == "none":
            return False
        if template is None:
            return not plain
        if self.tokenizer.chat_template is None:
            raise DataError("data.template: the tokenizer has no chat template; use template: none")
        return True

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _with_bos(self, ids: list[int]) -> list[int]:
        # Exactly one BOS: the template may already print it; the tokenizer must not add another.
        bos = self.tokenizer.bos_token_id
        if self.adds_bos and ids[:1] != [bos]:
            return [bos, *ids]
        return ids

    def _close(self, ids: list[int]) -> list[int]:
        """Cut what follows the last end-of-turn token, or append EOS when there is none."""
        for i in range(len(ids) - 1, -1, -1):
            if ids[i] in self.eot_ids:
                return ids[: i + 1]
        return [*ids, self.tokenizer.eos_token_id]

    def prompt_ids(self, prompt: list[Message], plain: bool) -> list[int]:
        if self._uses_template(plain):
            text = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        else:
            text = "".join(m["content"] for m in prompt)
        return self._with_bos(self._encode(text))

    def completion_ids(
        self, prompt: list[Message], completion: list[Message], plain: bool, prompt_ids: list[int]
    ) -> list[int]:
        if not self._uses_template(plain):
            # Plain text: tokenised on its own, as the model sees it after the prompt at inference.
            return [*self._encode("".join(m["content"] for m in completion)), self.tokenizer.eos_token_id]
        text = self.tokenizer.apply_chat_template(prompt + completion, tokenize=False)
        full_ids = self._with_bos(self._encode(text))
        if full_ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError(
                "the chat template renders the prompt differently once the answer follows it "
                "(the prompt's tokens are not a prefix of prompt + answer)"
            )
        return self._close(full_ids[len(prompt_ids) :])

    def render(self, row: dict) -> dict:
        """Token ids for one row, truncated; `drop` names why a row cannot be used ('' if it can).

        A pair gives chosen_ids and rejected_ids; an unpaired row completion_ids and its label. Every
        completion goes through the same template and the same truncation.
        """
        s = self.settings
        prompt_ids = self.prompt_ids(row["prompt"], row["plain"])
        completions = {
            f"{name}_ids": self.completion_ids(row["prompt"], row[name], row["plain"], prompt_ids)
            for name in _completion_columns(row)
        }
        extra = {name: row[name] for name in _CARRIED if name in row}
        truncated = False
        if s.max_prompt_length is not None and len(prompt_ids) > s.max_prompt_length:
            prompt_ids, truncated = prompt_ids[-s.max_prompt_length :], True  # keep the end: the question
        limit = s.max_length - len(prompt_ids)
        if s.max_completion_length is not None:
            limit = min(limit, s.max_completion_length)
        if limit <= 0:
            empty = {name: [] for name in completions}
            return _row(prompt_ids, empty, extra, truncated, drop="prompt fills max_length")
        if max(len(ids) for ids in completions.values()) > limit:
            completions, truncated = {name: ids[:limit] for name, ids in completions.items()}, True
        if not prompt_ids:
            return _row(prompt_ids, completions, extra, truncated, drop="empty prompt")
        return _row(prompt_ids, completions, extra, truncated, drop="")


# Canonical columns that pass through to the tokenised rows as they are: KTO's label, a pair's margin.
_CARRIED = ("label", "margin")


def _completion_columns(row: dict) -> tuple[str, ...]:
    """The canonical columns holding completions: an unpaired row's one, or a pair's two."""
    return ("completion",) if "completion" in row else ("chosen", "rejected")


def _row(prompt_ids: list[int], completions: dict, extra: dict, truncated: bool, drop: str) -> dict:
    return {"prompt_ids": prompt_ids, **completions, **extra, "truncated": truncated, "drop": drop}


def _render_batch(batch: dict, *, renderer: Renderer) -> dict:
    completions, carried = _completion_columns(batch), [name for name in _CARRIED if name in batch]
    columns = ("prompt", *completions, *carried, "plain")
    outputs = ("prompt_ids", *(f"{name}_ids" for name in completions), *carried, "truncated", "drop")
    out: dict[str, list] = {name: [] for name in outputs}
    for i, origin in enumerate(batch["origin"]):
        row = {name: batch[name][i] for name in columns}
        try:
            rendered = renderer.render(row)
        except ValueError as exc:
            raise DataError(f"{origin}: {exc}") from None
        for name, value in rendered.items():
            out[name].append(value)
    return out


def tokenize_rows(
    rows: datasets.Dataset, tokenizer: Any, settings: RenderSettings, *, num_proc: int | None = None
) -> tuple[datasets.Dataset, DataReport]:
    """Render every canonical row; cached by the `datasets` fingerprint of rows, tokenizer and settings."""
    renderer = Renderer(tokenizer, settings)
    tokenized = rows.map(
        _render_batch,
        batched=True,
        fn_kwargs={"renderer": renderer},
        remove_columns=rows.column_names,
        num_proc=num_proc,
        desc="Tokenizing",
    )
    # Count only the rows that are kept: a row whose prompt was cut and then still filled max_length is
    # dropped, and counting it as truncated too would report it twice.
    kept_truncated = zip(tokenized["truncated"], tokenized["drop"], strict=True)
    report = DataReport(truncated=sum(1 for truncated, drop in kept_truncated if truncated and not drop))
    for reason in tokenized["drop"]:
        if reason:
            report.dropped[reason] = report.dropped.get(reason, 0) + 1
    if report.dropped:
        tokenized = tokenized.filter(lambda drop: not drop, input_columns="drop")
    return tokenized.remove_columns(["drop"]), report
