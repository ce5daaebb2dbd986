"""Readers: each turns one raw row of its format into a canonical row.

Canonical paired row: `prompt`, `chosen`, `rejected` as lists of `{"role", "content"}` messages
(chosen/rejected hold only the diverging turns) and `plain`: True when the text came as plain
strings, which are joined as they are unless a chat template is asked for (as TRL does).
Canonical unpaired row (KTO): `prompt`, `completion` as message lists, `label` (True: the completion
is desirable) and `plain`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Message = dict[str, str]


class RowError(ValueError):
    """A row that cannot be used; `field` names the column at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Format:
    name: str
    kind: str  # "paired" or "unpaired"
    description: str
    matches: Callable[[dict[str, Any]], bool]  # does a sample row look like this format?
    convert: Callable[[dict[str, Any]], dict[str, Any]]  # raw row -> canonical row, or RowError


FORMATS: dict[str, Format] = {}


def _register(fmt: Format) -> None:
    FORMATS[fmt.name] = fmt


def _text(row: dict, field: str) -> str:
    if field not in row or row[field] is None:
        raise RowError(field, "missing")
    value = row[field]
    if not isinstance(value, str):
        raise RowError(field, f"expected a string, got {type(value).__name__}")
    return value


def _messages(row: dict, field: str, *, allow_empty: bool = False) -> list[Message]:
    if field not in row or row[field] is None:
        raise RowError(field, "missing")
    value = row[field]
    if not isinstance(value, list):
        raise RowError(field, f"expected a list of messages, got {type(value).__name__}")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RowError(f"{field}[{i}]", "expected a message with a string 'role'")
        content = message.get("content")
        if not isinstance(content, str):
            raise RowError(f"{field}[{i}].content", f"expected a string, got {type(content).__name__}")
        messages.append({"role": message["role"], "content": content})
    if not messages and not allow_empty:
        raise RowError(field, "empty")
    return messages


def _nonempty_completion(messages: list[Message], field: str) -> list[Message]:
    if not messages:
        raise RowError(field, "empty completion")
    if not any(m["content"].strip() for m in messages):
        raise RowError(field, "empty completion")
    return messages


# --- TRL standard: prompt / chosen / rejected as plain strings -----------------------------------


def _is_trl_standard(row: dict) -> bool:
    return {"chosen", "rejected"} <= row.keys() and isinstance(row.get("chosen"), str) and "prompt" in row


def _convert_trl_standard(row: dict) -> dict:
    prompt = _text(row, "prompt")
    chosen, rejected = _text(row, "chosen"), _text(row, "rejected")
    for field, value in (("chosen", chosen), ("rejected", rejected)):
        if not value.strip():
            raise RowError(field, "empty completion")
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "plain": True,
    }


_register(
    Format(
        "trl_standard",
        "paired",
        "TRL standard: prompt, chosen, rejected as plain strings",
        _is_trl_standard,
        _convert_trl_standard,
    )
)


# --- TRL conversational: message lists, explicit or implicit prompt ------------------------------


def _is_trl_conversational(row: dict) -> bool:
    return {"chosen", "rejected"} <= row.keys() and isinstance(row.get("chosen"), list)


def _common_prefix(a: list[Message], b: list[Message]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _convert_trl_conversational(row: dict) -> dict:
    chosen, rejected = _messages(row, "chosen"), _messages(row, "rejected")
    if row.get("prompt") is not None:
        prompt = _messages(row, "prompt")
    else:
        # Implicit prompt: the longest common prefix of the two conversations, cut before the
        # last shared assistant turn so that both answers start with the assistant speaking.
        n = _common_prefix(chosen, rejected)
        while n > 0 and chosen[n - 1]["role"] == "assistant" and n == min(len(chosen), len(rejected)):
            n -= 1
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
        if not prompt:
            raise RowError("chosen", "no prompt column and the conversations share no prefix")
    return {
        "prompt": prompt,
        "chosen": _nonempty_completion(chosen, "chosen"),
        "rejected": _nonempty_completion(rejected, "rejected"),
        "plain": False,
    }


_register(
    Format(
        "trl_conversational",
        "paired",
        "TRL conversational: chosen/rejected message lists, prompt explicit or their common prefix",
        _is_trl_conversational,
        _convert_trl_conversational,
    )
)


# --- Unpaired (KTO): one completion per row and a label saying whether it is desirable ------------
# Canonical unpaired row: `prompt`, `completion` (message lists), `label` (True: desirable), `plain`.

_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _label(row: dict) -> bool:
    """The desirability label: a bool, 0/1, or the strings "true"/"false" (any case)."""
    if "label" not in row or row["label"] is None:
        raise RowError("label", "missing")
    value = row["label"]
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise RowError("label", f"expected a bool (true/false, or 1/0), got {value!r}")


def _is_trl_unpaired(row: dict, completion_type: type) -> bool:
    return {"prompt", "completion", "label"} <= row.keys() and isinstance(row.get("completion"), completion_type)


def _convert_trl_unpaired_standard(row: dict) -> dict:
    completion = _text(row, "completion")
    if not completion.strip():
        raise RowError("completion", "empty completion")
    return {
        "prompt": [{"role": "user", "content": _text(row, "prompt")}],
        "completion": [{"role": "assistant", "content": completion}],
        "label": _label(row),
        "plain": True,
    }


_register(
    Format(
        "trl_unpaired_standard",
        "unpaired",
        "TRL unpaired: prompt, completion as plain strings, label (true: desirable)",
        lambda row: _is_trl_unpaired(row, str),
        _convert_trl_unpaired_standard,
    )
)


def _convert_trl_unpaired_conversational(row: dict) -> dict:
    return {
        "prompt": _messages(row, "prompt"),
        "completion": _nonempty_completion(_messages(row, "completion"), "completion"),
        "label": _label(row),
        "plain": False,
    }


_register(
    Format(
        "trl_unpaired_conversational",
        "unpaired",
        "TRL unpaired conversational: prompt, completion as message lists, label",
        lambda row: _is_trl_unpaired(row, list),
        _convert_trl_unpaired_conversational,
    )
)


def _is_messages_label(row: dict) -> bool:
    return {"messages", "label"} <= row.keys() and not {"prompt", "completion", "chosen", "rejected"} & row.keys()


def _convert_messages_label(row: dict) -> dict:
    messages = _messages(row, "messages")
    if messages[-1]["role"] != "assistant":
        raise RowError(f"messages[{len(messages) - 1}]", "the last message must be the assistant answer being judged")
    if len(messages) < 2:
        raise RowError("messages", "no prompt before the judged answer")
    return {
        "prompt": messages[:-1],
        "completion": _nonempty_completion(messages[-1:], f"messages[{len(messages) - 1}]"),
        "label": _label(row),
        "plain": False,
    }


_register(
    Format(
        "messages_label",
        "unpaired",
        "Conversation + label (LLaMA-Factory KTO): messages, the last one the judged assistant answer; label",
        _is_messages_label,
        _convert_messages_label,
    )
)


def detect_format(row: dict[str, Any], origin: str) -> Format:
    """The format whose reader accepts `row` (the source's first row)."""
    found = [fmt for fmt in FORMATS.values() if fmt.matches(row)]
    if len(found) == 1:
        return found[0]
    columns = ", ".join(sorted(row)) or "(none)"
    if not found:
        known = "; ".join(f"{f.name} ({f.description})" for f in FORMATS.values())
        raise ValueError(f"{origin}: cannot tell the data format from the columns [{columns}]. Known: {known}")
    names = ", ".join(f.name for f in found)
    raise ValueError(f"{origin}: columns [{columns}] fit several formats ({names}); set data.format")
