r"""Canonical rows -> token ids: the prompt, and each completion's scored tokens (a pair's two, or one and its label).

The prompt is rendered with `add_generation_prompt=True`; a completion is the rendering of
prompt + completion minus the prompt. Only completion tokens are scored. The end-of-turn token
closes every completion; what a template prints after it (a newline) is not scored, since the
model never generates it.

The chat template is the tokenizer's (`data.template` null or 'tokenizer'), or a built-in one
named by `data.template` (templates.py); 'none' joins the texts as they are. A row's `tools`
(a JSON list of tool definitions, "" when none) reach the template as `tools=`. BOS appears once
at the start: from the template's text, or else from the tokenizer when it adds one.

Every row is checked: the prompt must be what prompt + completion starts with.
1. Its tokens are a prefix of prompt + completion's tokens: the completion is the rest (the usual case).
2. Its text is a prefix, but the tokens merge across the boundary (an answer starting with a newline
   after ChatML's "assistant\n"): the text is split at the prompt's length in characters and the
   completion tokenised alone, so the prompt keeps the tokens it has at inference (as TRL does).
3. The generation prompt opens a reasoning block that the template drops from answers it renders
   (DeepSeek-R1, QwQ: "<think>\n" after the assistant header): the prompt stops before "<think>",
   as TRL documents and does.
Anything else is an error naming the row and showing where the two renderings diverge: the template
rewrites the conversation once the answer follows, and scoring would be misaligned. Templates that
drop reasoning from earlier assistant turns (Qwen3, DeepSeek-R1) drop it from both renderings, so
the check holds; the prompt then shows the model the history exactly as it will see it at inference.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import jinja2

from prefalign.config import DataConfig
from prefalign.data.cache import code_version
from prefalign.data.formats import Message, tool_list
from prefalign.data.load import DataError, DataReport
from prefalign.data.templates import TEMPLATES, end_of_turn_text

log = logging.getLogger(__name__)

# End-of-turn tokens of common chat templates, in addition to the tokenizer's EOS.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>")
# A generation prompt that ends by opening a reasoning block (case 3 above).
_OPENS_THINKING = re.compile(r"<think>\s*$")


@dataclass(frozen=True)
class RenderSettings:
    template: str | None  # None: tokenizer's for messages, none for plain strings; "tokenizer"; "none"; a built-in
    max_length: int
    max_prompt_length: int | None
    max_completion_length: int | None


def render_settings(config: DataConfig) -> RenderSettings:
    """The data section's rendering keys: what training, `data check` and the sampled prompts all render with."""
    return RenderSettings(config.template, config.max_length, config.max_prompt_length, config.max_completion_length)


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in _END_OF_TURN if token in vocab)
    return ids


def _adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


# Text around the probed token: accents, digits, emoji, runs of spaces and newlines on both sides.
_PROBE_BEFORE, _PROBE_AFTER = "Héllo,  wörld 1.5 😀\n ", "assistant\n  Yes: 42 😀\n\nok"


def _split_ids(tokenizer: Any) -> frozenset[int]:
    """Added tokens that cut tokenisation in two: the text before one never changes the tokens from it on.

    Such a token is matched on the raw text wherever it stands (not normalised, not a single word, not
    swallowing the spaces before it), and the tokenizer must not treat the start of a text apart (Metaspace
    prepends its space there only): checked on a probe. Empty for slow tokenizers, which give no offsets.
    """
    if not getattr(tokenizer, "is_fast", False):
        return frozenset()
    tokens = {
        token_id: token.content
        for token_id, token in tokenizer.added_tokens_decoder.items()
        if not (token.normalized or token.lstrip or token.single_word)
    }
    if not tokens:
        return frozenset()
    contents = list(tokens.values())
    texts = [
        _PROBE_BEFORE,
        *(_PROBE_BEFORE + c + _PROBE_AFTER for c in contents),
        *(c + _PROBE_AFTER for c in contents),
    ]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    before, whole, after = ids[0], ids[1 : len(contents) + 1], ids[len(contents) + 1 :]
    return frozenset(
        token_id for token_id, together, apart in zip(tokens, whole, after, strict=True) if together == before + apart
    )


def parse_tools(value: Any) -> list[dict] | None:
    """A row's `tools` column (JSON text, "" when none) as the list apply_chat_template takes, or None."""
    return tool_list(value) or None


class Renderer:
    """Turns one canonical row into prompt_ids / chosen_ids / rejected_ids."""

    def __init__(self, tokenizer: Any, settings: RenderSettings):
        self.tokenizer = tokenizer
        self.settings = settings
        self.eot_ids = end_of_turn_ids(tokenizer)
        self.adds_bos = _adds_bos(tokenizer)
        self.split_ids = _split_ids(tokenizer)
        self.code_version = code_version()  # hashed with the renderer into the cache key (cache.py)
        # The Jinja source of a built-in template (None: the tokenizer's); part of the tokenisation cache key.
        builtin = TEMPLATES.get(settings.template or "")
        self.chat_template = builtin.jinja if builtin else None
        # A built-in template's end-of-turn text when the tokenizer has no token for it (llama3's <|eot_id|>
        # on another family's tokenizer): completions are cut after that text and closed with EOS instead.
        self.end_of_turn_text: str | None = None
        marker = end_of_turn_text(builtin, tokenizer) if builtin else ""
        if marker and marker in tokenizer.get_vocab():
            self.eot_ids.add(tokenizer.get_vocab()[marker])
        elif marker:
            self.end_of_turn_text = marker
            log.warning(
                "data.template: %s ends turns with %s, which is not a token of this tokenizer: the model learns "
                "it as text, followed by EOS",
                builtin.name,
                marker,
            )

    def _uses_template(self, plain: bool) -> bool:
        template = self.settings.template
        if template == "none":
            return False
        if self.chat_template is not None:
            return True
        if template is None and plain:
            return False
        if self.tokenizer.chat_template is None:
            builtins = ", ".join(TEMPLATES)
            raise DataError(
                f"data.template: the tokenizer has no chat template; name a built-in one ({builtins}) "
                "or use template: none"
            )
        return True

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode_prompt(self, text: str) -> tuple[list[int], list[tuple[int, int]] | None]:
        """The prompt's ids (no BOS added), and where each token starts and ends in `text` (None: not needed)."""
        if not self.split_ids:
            return self._encode(text), None
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return encoding["input_ids"], encoding["offset_mapping"]

    def _encode_after_prompt(self, text: str, prompt_text: str, prompt: tuple[list[int], Any]) -> list[int]:
        """`self._encode(text)` for prompt + answer, without tokenising the prompt's text a second time.

        The ids before the prompt's last splitting token (`_split_ids`: <|im_start|> in ChatML) are the
        prompt's own when `text` repeats the prompt's text up to it; only the rest of `text` is encoded. The
        prompt is then tokenised once per row instead of three times (the most of the work on long prompts).
        """
        ids, offsets = prompt
        if offsets is not None:
            for k in range(len(ids) - 1, -1, -1):
                if ids[k] in self.split_ids:
                    start = offsets[k][0]
                    if text.startswith(prompt_text[:start]):
                        return ids[:k] + self._encode(text[start:])
                    break
        return self._encode(text)

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

    def _chat_text(self, messages: list[Message], tools: list[dict] | None, generation: bool = False) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                messages,
                tools=tools,
                chat_template=self.chat_template,
                add_generation_prompt=generation,
                tokenize=False,
            )
        except jinja2.TemplateError as exc:  # the template's raise_exception, e.g. roles that do not alternate
            raise ValueError(f"the chat template cannot render this conversation: {exc}") from None

    def prompt_text(self, prompt: list[Message], plain: bool, tools: Any = None) -> str:
        """The prompt as the model sees it at inference, before it answers."""
        if self._uses_template(plain):
            return self._chat_text(prompt, parse_tools(tools), generation=True)
        return "".join(m["content"] for m in prompt)

    def prompt_ids(self, prompt: list[Message], plain: bool, tools: Any = None) -> list[int]:
        return self._with_bos(self._encode(self.prompt_text(prompt, plain, tools)))

    def _cut_turn(self, full_text: str, start: int) -> str:
        """The text up to the end-of-turn text that closes the answer (what the template prints after it goes)."""
        end = full_text.rfind(self.end_of_turn_text, start)
        return full_text if end < 0 else full_text[: end + len(self.end_of_turn_text)]

    def _split(
        self, prompt_text: str, prompt_ids: list[int], full_text: str, prompt_encoding: tuple[list[int], Any]
    ) -> list[int]:
        """The completion's tokens: what prompt + completion renders after the prompt (cases 1 and 2 above)."""
        full_ids = self._with_bos(self._encode_after_prompt(full_text, prompt_text, prompt_encoding))
        if full_ids[: len(prompt_ids)] == prompt_ids:
            return full_ids[len(prompt_ids) :]
        if full_text.startswith(prompt_text):
            return self._encode(full_text[len(prompt_text) :])
        raise ValueError(_divergence(prompt_text, full_text))

    def render(self, row: dict) -> dict:
        """Token ids for one row, truncated; `drop` names why a row cannot be used ('' if it can).

        A pair gives chosen_ids and rejected_ids; an unpaired row completion_ids and its label. Every
        completion goes through the same template and the same truncation.
        """
        return self.truncate(row, *self.untruncated(row))

    def untruncated(self, row: dict) -> tuple[list[int], dict[str, list[int]]]:
        """The row's prompt_ids and its completions' ids ({"chosen_ids", "rejected_ids"} or {"completion_ids"})."""
        prompt, plain, names = row["prompt"], row["plain"], _completion_columns(row)
        if self._uses_template(plain):
            tools = parse_tools(row.get("tools"))
            full_texts = {name: self._chat_text(prompt + row[name], tools) for name in names}
            prompt_text = _answer_prompt(self._chat_text(prompt, tools, generation=True), full_texts.values())
            if self.end_of_turn_text is not None:
                full_texts = {name: self._cut_turn(text, len(prompt_text)) for name, text in full_texts.items()}
            prompt_encoding = self._encode_prompt(prompt_text)
            prompt_ids = self._with_bos(prompt_encoding[0])
            completions = {
                f"{name}_ids": self._close(self._split(prompt_text, prompt_ids, text, prompt_encoding))
                for name, text in full_texts.items()
            }
        else:
            # Plain text: each completion tokenised on its own, as the model sees it after the prompt at inference.
            prompt_ids = self._with_bos(self._encode("".join(m["content"] for m in prompt)))
            completions = {
                f"{name}_ids": [*self._encode("".join(m["content"] for m in row[name])), self.tokenizer.eos_token_id]
                for name in names
            }
        return prompt_ids, completions

    def truncate(self, row: dict, prompt_ids: list[int], completions: dict[str, list[int]]) -> dict:
        """`render`'s result from the untruncated ids: the limits applied, and the reason to drop the row, if any."""
        s = self.settings
        extra = {name: row[name] for name in _CARRIED if name in row}
        if (
            completions.keys() == {"chosen_ids", "rejected_ids"}
            and completions["chosen_ids"] == completions["rejected_ids"]
        ):
            # A tie, not a preference: every preference term sees a zero margin and learns nothing from it.
            return _row(prompt_ids, completions, extra, False, drop="identical chosen and rejected")
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
            if len(completions) == 2 and completions["chosen_ids"] == completions["rejected_ids"]:
                return _row(
                    prompt_ids, completions, extra, truncated, drop="chosen and rejected identical once truncated"
                )
        if not prompt_ids:
            return _row(prompt_ids, completions, extra, truncated, drop="empty prompt")
        return _row(prompt_ids, completions, extra, truncated, drop="")


def _answer_prompt(prompt_text: str, full_texts: Any) -> str:
    """The prompt text that prompt + answer renderings start with: the prompt, or case 3 above."""
    full_texts = list(full_texts)
    if all(text.startswith(prompt_text) for text in full_texts):
        return prompt_text
    opened = _OPENS_THINKING.search(prompt_text)
    if opened and all(text.startswith(prompt_text[: opened.start()]) for text in full_texts):
        return prompt_text[: opened.start()]
    return prompt_text  # the split names the divergence


def _divergence(prompt_text: str, full_text: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(prompt_text, full_text, strict=False)) if a != b), len(prompt_text))
    return (
        "the chat template renders the prompt differently once the answer follows it (the prompt is not a prefix "
        f"of prompt + answer): after {prompt_text[max(0, at - 40) : at]!r} the prompt has "
        f"{prompt_text[at : at + 40]!r} where prompt + answer has {full_text[at : at + 40]!r}"
    )


# Canonical columns that pass through to the tokenised rows as they are: KTO's label, a pair's margin.
_CARRIED = ("label", "margin")


def _completion_columns(row: dict) -> tuple[str, ...]:
    """The canonical columns holding completions: an unpaired row's one, or a pair's two."""
    return ("completion",) if "completion" in row else ("chosen", "rejected")


def _row(prompt_ids: list[int], completions: dict, extra: dict, truncated: bool, drop: str) -> dict:
    return {"prompt_ids": prompt_ids, **completions, **extra, "truncated": truncated, "drop": drop}


def _render_batch(batch: dict, *, renderer: Renderer) -> dict:
    completions, carried = _completion_columns(batch), [name for name in _CARRIED if name in batch]
    columns = ("prompt", *completions, *carried, "plain", *(["tools"] if "tools" in batch else []))
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


def render_report(truncated: Sequence[bool], drops: Sequence[str]) -> DataReport:
    """The rows rendering cut and those it dropped (by reason), from each row's `truncated` and `drop` ("": kept)."""
    # Count only the rows that are kept: a row whose prompt was cut and then still filled max_length is
    # dropped, and counting it as truncated too would report it twice.
    report = DataReport(truncated=sum(1 for cut, drop in zip(truncated, drops, strict=True) if cut and not drop))
    for reason in drops:
        if reason:
            report.dropped[str(reason)] = report.dropped.get(str(reason), 0) + 1
    return report


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
    report = render_report(tokenized["truncated"], tokenized["drop"])
    if report.dropped:
        tokenized = tokenized.filter(lambda drop: not drop, input_columns="drop")
    return tokenized.remove_columns(["drop"]), report
