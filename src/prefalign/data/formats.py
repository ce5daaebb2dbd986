"""Readers: each turns one raw row of its format into a canonical row.

Canonical paired row: `prompt`, `chosen`, `rejected` as lists of `{"role", "content"}` messages
(chosen/rejected hold only the diverging turns) and `plain`: True when the text came as plain
strings, which are joined as they are unless a chat template is asked for (as TRL does).
Canonical unpaired row (KTO): `prompt`, `completion` as message lists, `label` (True: the completion
is desirable) and `plain`.
Both may hold `tools`: the tool (function) schemas the prompt offers, as a JSON string of a list in
the form chat templates take (`{"type": "function", "function": {...}}`); a reader leaves it out when
the row offers none, and loading fills in "" (`load.CANONICAL_COLUMNS`). A system prompt is the
prompt's leading `system` message.

A reader is called with the row's `DataSource`, whose mapping options (`columns`, `tags`,
`field_messages`, ...) rename the columns and roles it reads; `Format.options` lists the ones it
reads, and any other is an error naming the key (`check_options`). Columns a reader does not read
are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefalign.config import DataSource

Message = dict[str, str]

# The DataSource fields that tell a reader where its columns and roles are (see Format.options).
MAPPING_OPTIONS = (
    "columns", "tags", "field_messages", "field_chosen", "field_rejected", "message_property_mappings", "roles",
)  # fmt: skip
_NO_SOURCE = DataSource(path="<row>")


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
    read: Callable[[dict[str, Any], DataSource], dict[str, Any]]  # raw row -> canonical row, or RowError
    required: Callable[[DataSource], tuple[str, ...]]  # the columns it needs, under the source's mapping
    # Why a sample row that has the required columns is still not this format (wrong types); None if it is.
    mismatch: Callable[[dict[str, Any], DataSource], str | None]
    # The mapping options it reads; for a mapping option, the keys it accepts (None: any value).
    options: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)

    def convert(self, row: dict[str, Any], source: DataSource | None = None) -> dict[str, Any]:
        """The canonical row of `row`, read with the mapping options of `source` (defaults when None)."""
        return self.read(row, source or _NO_SOURCE)

    def why_not(self, row: dict[str, Any], source: DataSource | None = None) -> str | None:
        """Why a sample row is not this format (the columns it lacks, or their types); None when it is."""
        source = source or _NO_SOURCE
        missing = [name for name in self.required(source) if name not in row]
        if missing:
            return f"lacks {', '.join(missing)}"
        return self.mismatch(row, source)

    def matches(self, row: dict[str, Any], source: DataSource | None = None) -> bool:
        return self.why_not(row, source) is None


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


def _optional_text(row: dict, field: str) -> str:
    """A string column that may be absent or null ("" then)."""
    return "" if row.get(field) is None else _text(row, field)


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


def _answer(text: str, field: str) -> list[Message]:
    """A completion given as one string: a single assistant turn."""
    if not text.strip():
        raise RowError(field, "empty completion")
    return [{"role": "assistant", "content": text}]


def _with_system(prompt: list[Message], row: dict, field: str) -> list[Message]:
    """The prompt with the `field` column's system text (if any) as its leading system message."""
    system = _optional_text(row, field)
    if not system:
        return prompt
    if prompt and prompt[0]["role"] == "system":
        if prompt[0]["content"] == system:  # the column repeats the prompt's own system message
            return prompt
        raise RowError(field, "the prompt already starts with another system message; give the system prompt once")
    return [{"role": "system", "content": system}, *prompt]


def _drop_nulls(value: Any) -> Any:
    # Arrow gives every struct in a column the union of their keys, filling the missing ones with null:
    # a schema read from a JSON list of objects gains `"x": null` for the properties of other rows' tools.
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def tool_list(value: Any, field: str = "tools") -> list[dict]:
    """Tool schemas as a list ([] for none) from a list of schemas, one schema, or a JSON string of either:
    what a source row and a canonical row's `tools` column hold."""
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(field, f"not valid JSON: {exc}") from None
    if value is None or value == []:
        return []
    tools = [value] if isinstance(value, dict) else value
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise RowError(field, "expected a list of tool schemas (objects), or a JSON string of one")
    return tools


def _tools(row: dict, field: str) -> str:
    """The row's tool schemas as canonical JSON ("" for none).

    A bare function schema (`{"name", "description", "parameters"}`, as LLaMA-Factory stores them) is wrapped
    as `{"type": "function", "function": ...}`, the form `apply_chat_template(tools=...)` documents (and the
    one LLaMA-Factory's Qwen template prints).
    """
    tools = [_drop_nulls(tool) for tool in tool_list(row.get(field), field)]
    if not tools:
        return ""
    tools = [
        tool if "function" in tool or "name" not in tool else {"type": "function", "function": tool} for tool in tools
    ]
    return json.dumps(tools, ensure_ascii=False)


def _with_tools(canonical: dict, row: dict, field: str) -> dict:
    tools = _tools(row, field)
    return {**canonical, "tools": tools} if tools else canonical


def _columns(*names: str) -> Callable[[DataSource], tuple[str, ...]]:
    return lambda source: names


def _type_is(field: str, kind: type | tuple[type, ...], what: str) -> Callable[[dict, DataSource], str | None]:
    return lambda row, source: None if isinstance(row[field], kind) else f"{field} is not {what}"


# --- TRL standard: prompt / chosen / rejected as plain strings -----------------------------------
# Optional `system` (a string: the prompt's leading system message; with plain text and no chat template
# it is printed as it is right before the prompt, like every plain string) and `tools`.


_TRL_COLUMNS = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected", "system": "system", "tools": "tools"}
_TRL_UNPAIRED_COLUMNS = {
    "prompt": "prompt",
    "completion": "completion",
    "label": "label",
    "system": "system",
    "tools": "tools",
}


def _trl_columns(source: DataSource, defaults: dict[str, str]) -> dict[str, str]:
    """The TRL formats' column names under the source's `columns` renaming (AutoTrain's column flags,
    Axolotl's chatml.intel `question`, ...)."""
    return _mapping(defaults, source.columns)


def _renamed(defaults: dict[str, str], *keys: str) -> Callable[[DataSource], tuple[str, ...]]:
    return lambda source: tuple(_trl_columns(source, defaults)[key] for key in keys)


def _renamed_type_is(
    defaults: dict[str, str], key: str, kind: type, what: str
) -> Callable[[dict, DataSource], str | None]:
    def mismatch(row: dict, source: DataSource) -> str | None:
        name = _trl_columns(source, defaults)[key]
        return None if isinstance(row[name], kind) else f"{name} is not {what}"

    return mismatch


def _convert_trl_standard(row: dict, source: DataSource) -> dict:
    c = _trl_columns(source, _TRL_COLUMNS)
    prompt = _with_system([{"role": "user", "content": _text(row, c["prompt"])}], row, c["system"])
    canonical = {
        "prompt": prompt,
        "chosen": _answer(_text(row, c["chosen"]), c["chosen"]),
        "rejected": _answer(_text(row, c["rejected"]), c["rejected"]),
        "plain": True,
    }
    return _with_tools(canonical, row, c["tools"])


_register(
    Format(
        "trl_standard",
        "paired",
        "TRL standard: prompt, chosen, rejected as plain strings; optional system, tools; renamed by `columns`",
        _convert_trl_standard,
        _renamed(_TRL_COLUMNS, "prompt", "chosen", "rejected"),
        _renamed_type_is(_TRL_COLUMNS, "chosen", str, "a string"),
        {"columns": tuple(_TRL_COLUMNS)},
    )
)


# --- TRL conversational: message lists, explicit or implicit prompt ------------------------------


def _common_prefix(a: list[Message], b: list[Message]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _convert_trl_conversational(row: dict, source: DataSource) -> dict:
    c = _trl_columns(source, _TRL_COLUMNS)
    chosen, rejected = _messages(row, c["chosen"]), _messages(row, c["rejected"])
    if row.get(c["prompt"]) is not None:
        prompt = _messages(row, c["prompt"])
    else:
        # Implicit prompt: the longest common prefix of the two conversations, cut before the
        # last shared assistant turn so that both answers start with the assistant speaking.
        n = _common_prefix(chosen, rejected)
        while n > 0 and chosen[n - 1]["role"] == "assistant" and n == min(len(chosen), len(rejected)):
            n -= 1
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
        if not prompt:
            raise RowError(c["chosen"], "no prompt column and the conversations share no prefix")
    canonical = {
        "prompt": _with_system(prompt, row, c["system"]),
        "chosen": _nonempty_completion(chosen, c["chosen"]),
        "rejected": _nonempty_completion(rejected, c["rejected"]),
        "plain": False,
    }
    return _with_tools(canonical, row, c["tools"])


_register(
    Format(
        "trl_conversational",
        "paired",
        "TRL conversational: chosen/rejected message lists, prompt explicit or their common prefix; "
        "optional system, tools; renamed by `columns`",
        _convert_trl_conversational,
        _renamed(_TRL_COLUMNS, "chosen", "rejected"),
        _renamed_type_is(_TRL_COLUMNS, "chosen", list, "a list of messages"),
        {"columns": tuple(_TRL_COLUMNS)},
    )
)


# --- Unpaired (KTO): one completion per row and a label saying whether it is desirable ------------
# Canonical unpaired row: `prompt`, `completion` (message lists), `label` (True: desirable), `plain`.

_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _label(row: dict, field: str = "label") -> bool:
    """The desirability label: a bool, 0/1, or the strings "true"/"false" (any case)."""
    if field not in row or row[field] is None:
        raise RowError(field, "missing")
    value = row[field]
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise RowError(field, f"expected a bool (true/false, or 1/0), got {value!r}")


def _convert_trl_unpaired_standard(row: dict, source: DataSource) -> dict:
    c = _trl_columns(source, _TRL_UNPAIRED_COLUMNS)
    canonical = {
        "prompt": _with_system([{"role": "user", "content": _text(row, c["prompt"])}], row, c["system"]),
        "completion": _answer(_text(row, c["completion"]), c["completion"]),
        "label": _label(row, c["label"]),
        "plain": True,
    }
    return _with_tools(canonical, row, c["tools"])


_register(
    Format(
        "trl_unpaired_standard",
        "unpaired",
        "TRL unpaired: prompt, completion as plain strings, label (true: desirable); optional system, tools; "
        "renamed by `columns`",
        _convert_trl_unpaired_standard,
        _renamed(_TRL_UNPAIRED_COLUMNS, "prompt", "completion", "label"),
        _renamed_type_is(_TRL_UNPAIRED_COLUMNS, "completion", str, "a string"),
        {"columns": tuple(_TRL_UNPAIRED_COLUMNS)},
    )
)


def _convert_trl_unpaired_conversational(row: dict, source: DataSource) -> dict:
    c = _trl_columns(source, _TRL_UNPAIRED_COLUMNS)
    canonical = {
        "prompt": _with_system(_messages(row, c["prompt"]), row, c["system"]),
        "completion": _nonempty_completion(_messages(row, c["completion"]), c["completion"]),
        "label": _label(row, c["label"]),
        "plain": False,
    }
    return _with_tools(canonical, row, c["tools"])


_register(
    Format(
        "trl_unpaired_conversational",
        "unpaired",
        "TRL unpaired conversational: prompt, completion as message lists, label; optional system, tools; "
        "renamed by `columns`",
        _convert_trl_unpaired_conversational,
        _renamed(_TRL_UNPAIRED_COLUMNS, "prompt", "completion", "label"),
        _renamed_type_is(_TRL_UNPAIRED_COLUMNS, "completion", list, "a list of messages"),
        {"columns": tuple(_TRL_UNPAIRED_COLUMNS)},
    )
)


def _messages_label_mismatch(row: dict, source: DataSource) -> str | None:
    extra = sorted({"prompt", "completion", "chosen", "rejected"} & row.keys())
    return f"also has {', '.join(extra)}" if extra else None


def _convert_messages_label(row: dict, source: DataSource) -> dict:
    messages = _messages(row, "messages")
    if messages[-1]["role"] != "assistant":
        raise RowError(f"messages[{len(messages) - 1}]", "the last message must be the assistant answer being judged")
    if len(messages) < 2:
        raise RowError("messages", "no prompt before the judged answer")
    canonical = {
        "prompt": messages[:-1],
        "completion": _nonempty_completion(messages[-1:], f"messages[{len(messages) - 1}]"),
        "label": _label(row),
        "plain": False,
    }
    return _with_tools(canonical, row, "tools")


_register(
    Format(
        "messages_label",
        "unpaired",
        "Conversation + label (LLaMA-Factory KTO): messages, the last one the judged assistant answer; label",
        _convert_messages_label,
        _columns("messages", "label"),
        _messages_label_mismatch,
    )
)


# --- Mapping options (LLaMA-Factory's `columns`/`tags`, Axolotl's `field_*`/`roles`) -------------


def _mapping(defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """The source's mapping over the defaults: keys it leaves out keep their default."""
    return {**defaults, **(given or {})}


def _object_field(value: Any, key: str, field: str) -> str:
    """The string under `key` of one turn object (a role or a content)."""
    if value is None:
        raise RowError(field, "missing")
    if not isinstance(value, dict):
        raise RowError(field, f"expected an object with {key!r}, got {type(value).__name__}")
    if value.get(key) is None:
        raise RowError(f"{field}.{key}", "missing")
    if not isinstance(value[key], str):
        raise RowError(f"{field}.{key}", f"expected a string, got {type(value[key]).__name__}")
    return value[key]


def _first_turn_has(row: dict, field: str, key: str) -> str | None:
    """Detection: `field` holds a list whose first turn is an object with `key`."""
    turns = row[field]
    if not isinstance(turns, list) or not turns:
        return f"{field} is not a list of turns"
    if not isinstance(turns[0], dict) or turns[0].get(key) is None:
        return f"{field}[0] has no {key!r} key"
    return None


# --- Alpaca preference (LLaMA-Factory): instruction, input, chosen, rejected, system, history ------

_ALPACA_COLUMNS = {
    "prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected",
    "system": "system", "history": "history", "tools": "tools",
}  # fmt: skip


def _history(row: dict, field: str) -> list[Message]:
    """Earlier turns as [user, assistant] pairs of strings."""
    pairs = row.get(field)
    if pairs is None:
        return []
    if not isinstance(pairs, list):
        raise RowError(field, f"expected a list of [user, assistant] pairs, got {type(pairs).__name__}")
    turns = []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise RowError(f"{field}[{i}]", "expected a [user, assistant] pair of strings")
        turns += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return turns


def _convert_alpaca(row: dict, source: DataSource) -> dict:
    columns = _mapping(_ALPACA_COLUMNS, source.columns)
    # The question is the instruction, then the input on a new line when there is one (as LLaMA-Factory does).
    question = "\n".join(
        part for part in (_text(row, columns["prompt"]), _optional_text(row, columns["query"])) if part
    )
    if not question.strip():
        raise RowError(columns["prompt"], "empty prompt (instruction and input are both empty)")
    prompt = [*_history(row, columns["history"]), {"role": "user", "content": question}]
    canonical = {
        "prompt": _with_system(prompt, row, columns["system"]),
        "chosen": _answer(_text(row, columns["chosen"]), columns["chosen"]),
        "rejected": _answer(_text(row, columns["rejected"]), columns["rejected"]),
        "plain": False,
    }
    return _with_tools(canonical, row, columns["tools"])


def _alpaca_mismatch(row: dict, source: DataSource) -> str | None:
    chosen = _mapping(_ALPACA_COLUMNS, source.columns)["chosen"]
    return None if isinstance(row[chosen], str) else f"{chosen} is not a string"


_register(
    Format(
        "alpaca",
        "paired",
        "Alpaca preference (LLaMA-Factory): instruction, input, chosen, rejected as strings; optional system, "
        "history ([user, assistant] pairs), tools; renamed by `columns`",
        _convert_alpaca,
        lambda source: tuple(_mapping(_ALPACA_COLUMNS, source.columns)[k] for k in ("prompt", "chosen", "rejected")),
        _alpaca_mismatch,
        {"columns": tuple(_ALPACA_COLUMNS)},
    )
)


# --- ShareGPT preference and KTO (LLaMA-Factory) -------------------------------------------------
# `conversations`: {from, value} turns; an optional leading system turn, then human (or observation)
# and gpt (or function_call) turns in turn, as LLaMA-Factory requires. Roles map to those chat
# templates know: human -> user, gpt -> assistant, system -> system; function_call (the model calling a
# tool; its value is the call as the file writes it, usually JSON) -> assistant; observation (the tool's
# result) -> tool, the role transformers' chat templates give tool results (LLaMA-Factory's own templates
# print observations in each model's tool-result slot, e.g. Qwen's <tool_response> user turn).

_SHAREGPT_COLUMNS = {
    "messages": "conversations", "chosen": "chosen", "rejected": "rejected", "system": "system", "tools": "tools",
}  # fmt: skip
_SHAREGPT_KTO_COLUMNS = {"messages": "conversations", "kto_tag": "label", "system": "system", "tools": "tools"}
_SHAREGPT_TAGS = {
    "role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
    "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system",
}  # fmt: skip


def _sharegpt_roles(tags: dict[str, str]) -> dict[str, str]:
    return {
        tags["user_tag"]: "user",
        tags["observation_tag"]: "tool",
        tags["assistant_tag"]: "assistant",
        tags["function_tag"]: "assistant",
    }


def _sharegpt_turn(turn: Any, field: str, tags: dict[str, str], allowed: tuple[str, ...]) -> Message:
    tag = _object_field(turn, tags["role_tag"], field)
    if tag not in allowed:
        raise RowError(f"{field}.{tags['role_tag']}", f"expected {' or '.join(map(repr, allowed))}, got {tag!r}")
    return {"role": _sharegpt_roles(tags)[tag], "content": _object_field(turn, tags["content_tag"], field)}


def _sharegpt_conversation(row: dict, columns: dict[str, str], tags: dict[str, str]) -> list[Message]:
    """The system turn (or system column) and the alternating turns, as messages."""
    field = columns["messages"]
    turns = row.get(field)
    if turns is None:
        raise RowError(field, "missing")
    if not isinstance(turns, list):
        raise RowError(field, f"expected a list of turns, got {type(turns).__name__}")
    numbered = list(enumerate(turns))
    system: list[Message] = []
    if numbered and isinstance(turns[0], dict) and turns[0].get(tags["role_tag"]) == tags["system_tag"]:
        # A leading system turn wins over the system column, as in LLaMA-Factory.
        system = [{"role": "system", "content": _object_field(turns[0], tags["content_tag"], f"{field}[0]")}]
        numbered = numbered[1:]
    asks, answers = (tags["user_tag"], tags["observation_tag"]), (tags["assistant_tag"], tags["function_tag"])
    messages = [
        _sharegpt_turn(turn, f"{field}[{i}]", tags, (asks, answers)[n % 2]) for n, (i, turn) in enumerate(numbered)
    ]
    if not system:
        return _with_system(messages, row, columns["system"])
    return system + messages


def _convert_sharegpt(row: dict, source: DataSource) -> dict:
    columns, tags = _mapping(_SHAREGPT_COLUMNS, source.columns), _mapping(_SHAREGPT_TAGS, source.tags)
    prompt = _sharegpt_conversation(row, columns, tags)
    if not prompt or prompt[-1]["role"] not in ("user", "tool"):
        raise RowError(columns["messages"], f"must end with a {tags['user_tag']!r} turn, the one the answers reply to")
    answers = {}
    for name in ("chosen", "rejected"):
        turn = _sharegpt_turn(
            row.get(columns[name]), columns[name], tags, (tags["assistant_tag"], tags["function_tag"])
        )
        answers[name] = _answer(turn["content"], columns[name])
    canonical = {"prompt": prompt, **answers, "plain": False}
    return _with_tools(canonical, row, columns["tools"])


def _sharegpt_mismatch(row: dict, source: DataSource) -> str | None:
    columns, tags = _mapping(_SHAREGPT_COLUMNS, source.columns), _mapping(_SHAREGPT_TAGS, source.tags)
    if not isinstance(row[columns["chosen"]], dict):
        return f"{columns['chosen']} is not one turn object"
    return _first_turn_has(row, columns["messages"], tags["role_tag"])


_register(
    Format(
        "sharegpt",
        "paired",
        "ShareGPT preference (LLaMA-Factory): conversations of {from, value} turns, chosen/rejected one turn "
        "each; optional system, tools; renamed by `columns` and `tags`",
        _convert_sharegpt,
        lambda source: tuple(
            _mapping(_SHAREGPT_COLUMNS, source.columns)[k] for k in ("messages", "chosen", "rejected")
        ),
        _sharegpt_mismatch,
        {"columns": tuple(_SHAREGPT_COLUMNS), "tags": tuple(_SHAREGPT_TAGS)},
    )
)


def _convert_sharegpt_kto(row: dict, source: DataSource) -> dict:
    columns, tags = _mapping(_SHAREGPT_KTO_COLUMNS, source.columns), _mapping(_SHAREGPT_TAGS, source.tags)
    messages = _sharegpt_conversation(row, columns, tags)
    # The turns alternate from a user turn, so one ending with an answer has a prompt before it.
    if not messages or messages[-1]["role"] != "assistant":
        raise RowError(columns["messages"], f"must end with the judged {tags['assistant_tag']!r} turn")
    field = f"{columns['messages']}[{len(row[columns['messages']]) - 1}]"
    canonical = {
        "prompt": messages[:-1],
        "completion": _answer(messages[-1]["content"], field),
        "label": _label(row, columns["kto_tag"]),
        "plain": False,
    }
    return _with_tools(canonical, row, columns["tools"])


_register(
    Format(
        "sharegpt_kto",
        "unpaired",
        "ShareGPT KTO (LLaMA-Factory): conversations of {from, value} turns, the last the judged answer, and a "
        "label column (columns.kto_tag, default label); renamed by `columns` and `tags`",
        _convert_sharegpt_kto,
        lambda source: tuple(_mapping(_SHAREGPT_KTO_COLUMNS, source.columns)[k] for k in ("messages", "kto_tag")),
        lambda row, source: _first_turn_has(
            row,
            _mapping(_SHAREGPT_KTO_COLUMNS, source.columns)["messages"],
            _mapping(_SHAREGPT_TAGS, source.tags)["role_tag"],
        ),
        {"columns": tuple(_SHAREGPT_KTO_COLUMNS), "tags": tuple(_SHAREGPT_TAGS)},
    )
)


# --- Axolotl chat_template.default DPO: messages + chosen/rejected messages ----------------------
# As Axolotl's `dpo/chat_template.py` reads them: `messages` may be one string (a user turn); chosen and
# rejected may be a message, a string (an assistant turn) or a list (its last message). One difference:
# `roles` given here extend the defaults instead of replacing them, which reads every file Axolotl reads
# the same way and also the ones whose roles it would not know.

_AXOLOTL_PROPERTIES = {"role": "role", "content": "content"}
_AXOLOTL_ROLES = {"user": ["user"], "assistant": ["assistant"], "system": ["system"], "tool": ["tool"]}


def _axolotl_fields(source: DataSource) -> tuple[str, str, str]:
    return (
        source.field_messages or "messages",
        source.field_chosen or "chosen",
        source.field_rejected or "rejected",
    )


def _axolotl_message(value: Any, field: str, properties: dict[str, str], roles: dict[str, str]) -> Message:
    role = _object_field(value, properties["role"], field)
    if role not in roles:
        known = ", ".join(sorted(roles))
        raise RowError(
            f"{field}.{properties['role']}", f"role {role!r} is not one of the roles ({known}); map it with roles"
        )
    return {"role": roles[role], "content": _object_field(value, properties["content"], field)}


def _axolotl_answer(row: dict, field: str, properties: dict[str, str], roles: dict[str, str]) -> list[Message]:
    value = row.get(field)
    if value is None:
        raise RowError(field, "missing")
    if isinstance(value, str):
        return _answer(value, field)
    if isinstance(value, list):
        if not value:
            raise RowError(field, "empty")
        value, field = value[-1], f"{field}[{len(value) - 1}]"
    message = _axolotl_message(value, field, properties, roles)
    return _nonempty_completion([message], field)


def _convert_axolotl(row: dict, source: DataSource) -> dict:
    messages_field, chosen_field, rejected_field = _axolotl_fields(source)
    properties = _mapping(_AXOLOTL_PROPERTIES, source.message_property_mappings)
    # The file's role names -> chat roles: the defaults, then the source's (which win for a name in both).
    roles = {
        name: target
        for mapping in (_AXOLOTL_ROLES, source.roles or {})
        for target, names in mapping.items()
        for name in names
    }
    value = row.get(messages_field)
    if value is None:
        raise RowError(messages_field, "missing")
    if isinstance(value, str):
        prompt = [{"role": "user", "content": value}]
    elif isinstance(value, list):
        prompt = [_axolotl_message(m, f"{messages_field}[{i}]", properties, roles) for i, m in enumerate(value)]
    else:
        raise RowError(messages_field, f"expected a list of messages or a string, got {type(value).__name__}")
    if not prompt:
        raise RowError(messages_field, "empty")
    return {
        "prompt": prompt,
        "chosen": _axolotl_answer(row, chosen_field, properties, roles),
        "rejected": _axolotl_answer(row, rejected_field, properties, roles),
        "plain": False,
    }


def _axolotl_mismatch(row: dict, source: DataSource) -> str | None:
    messages_field, chosen_field, _ = _axolotl_fields(source)
    if not isinstance(row[chosen_field], dict | str | list):
        return f"{chosen_field} is not a message"
    if isinstance(row[messages_field], str):
        return None
    role = _mapping(_AXOLOTL_PROPERTIES, source.message_property_mappings)["role"]
    return _first_turn_has(row, messages_field, role)


_register(
    Format(
        "axolotl_chat_template",
        "paired",
        "Axolotl chat_template.default DPO: messages, and chosen/rejected messages; renamed by field_messages, "
        "field_chosen, field_rejected, message_property_mappings, roles",
        _convert_axolotl,
        _axolotl_fields,
        _axolotl_mismatch,
        {
            "field_messages": None,
            "field_chosen": None,
            "field_rejected": None,
            "message_property_mappings": tuple(_AXOLOTL_PROPERTIES),
            "roles": None,
        },
    )
)


# --- Anthropic HH: chosen / rejected full transcripts with Human: / Assistant: turns ---------------

_HH_MARKER = re.compile(r"(?:^|\n\n)(Human|Assistant):")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def _hh_turns(text: str, field: str) -> list[Message]:
    parts = _HH_MARKER.split(text)
    if parts[0].strip():
        raise RowError(field, "text before the first '\\n\\nHuman:' marker")
    return [
        {"role": _HH_ROLES[speaker], "content": said.strip()}
        for speaker, said in zip(parts[1::2], parts[2::2], strict=True)
    ]


def _convert_hh(row: dict, source: DataSource) -> dict:
    # The prompt is every turn before the last '\n\nAssistant:'; earlier turns stay separate messages.
    transcripts = {name: _hh_turns(_text(row, name), name) for name in ("chosen", "rejected")}
    for name, turns in transcripts.items():
        if not turns or turns[-1]["role"] != "assistant":
            raise RowError(name, "the transcript must end with an '\\n\\nAssistant:' answer")
        if len(turns) < 2:
            raise RowError(name, "no '\\n\\nHuman:' turn before the answer")
    prompt = transcripts["chosen"][:-1]
    if transcripts["rejected"][:-1] != prompt:
        raise RowError("rejected", "its turns before the last '\\n\\nAssistant:' differ from chosen's (the prompt)")
    return {
        "prompt": prompt,
        "chosen": _nonempty_completion(transcripts["chosen"][-1:], "chosen"),
        "rejected": _nonempty_completion(transcripts["rejected"][-1:], "rejected"),
        "plain": False,
    }


def _hh_mismatch(row: dict, source: DataSource) -> str | None:
    chosen = row["chosen"]
    if not isinstance(chosen, str) or "Human:" not in chosen or "\n\nAssistant:" not in chosen:
        return "chosen is not a transcript with '\\n\\nHuman:' and '\\n\\nAssistant:' turns"
    return None


_register(
    Format(
        "hh_rlhf",
        "paired",
        "Anthropic HH: chosen and rejected full transcripts of '\\n\\nHuman:' / '\\n\\nAssistant:' turns; "
        "the prompt is everything before the last assistant turn",
        _convert_hh,
        _columns("chosen", "rejected"),
        _hh_mismatch,
    )
)


def given_options(source: DataSource) -> list[str]:
    """The mapping options the source sets."""
    return [name for name in MAPPING_OPTIONS if getattr(source, name) is not None]


def check_options(fmt: Format, source: DataSource) -> None:
    """A ValueError naming the option (or the option's key) that `fmt` does not read."""
    for name in given_options(source):
        if name not in fmt.options:
            readers = ", ".join(f.name for f in FORMATS.values() if name in f.options)
            reads = ", ".join(fmt.options) or "none"
            raise ValueError(
                f"{source.path}: option {name} is not read by format {fmt.name} (its options: {reads}); "
                f"{name} is read by {readers}"
            )
        keys, value = fmt.options[name], getattr(source, name)
        if keys is not None:
            for key in value:
                if key not in keys:
                    raise ValueError(
                        f"{source.path}: {name}.{key} is not a key format {fmt.name} reads; known: {', '.join(keys)}"
                    )


def _reads_options(fmt: Format, source: DataSource, options: list[str]) -> bool:
    """Whether `fmt` reads every key of the options the source sets (`columns.query` is alpaca's, not
    trl_standard's, though both read `columns`)."""
    for name in options:
        keys = fmt.options[name]
        if keys is not None and not set(getattr(source, name)) <= set(keys):
            return False
    return True


def detect_format(row: dict[str, Any], origin: str, source: DataSource | None = None) -> Format:
    """The one format whose reader accepts `row` (the source's first row), among those reading its options.

    An unknown layout, or one that fits several formats, is an error listing the columns found and the
    formats that came close (those that find at least half of the columns they need).
    """
    source = source or _NO_SOURCE
    options = given_options(source)
    candidates = [fmt for fmt in FORMATS.values() if set(options) <= fmt.options.keys()]
    found = [fmt for fmt in candidates if fmt.matches(row, source)]
    if len(found) > 1:  # several read these options; keep those that read every key given
        found = [fmt for fmt in found if _reads_options(fmt, source, options)] or found
    if len(found) == 1:
        return found[0]
    columns = ", ".join(sorted(row)) or "(none)"
    if found:
        names = ", ".join(f.name for f in found)
        raise ValueError(f"{origin}: columns [{columns}] fit several formats ({names}); set format to one of them")
    close = []
    for fmt in candidates:
        required = fmt.required(source)
        if 2 * sum(name in row for name in required) >= len(required):
            close.append(f"{fmt.name} ({fmt.why_not(row, source)})")
    among = f" among the formats that read {', '.join(options)}" if options else ""
    hint = f"; closest: {'; '.join(close)}" if close else ""
    known = ", ".join(f.name for f in candidates)
    raise ValueError(
        f"{origin}: cannot tell the data format from the columns [{columns}]{among}{hint}. "
        f"Set format to one of: {known}"
    )
