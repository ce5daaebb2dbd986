"""The import table: what became of every key of a foreign config, and the builder the translators write it with.

Each translator walks the foreign keys and, for each one, records a `KeyRow` through a `Builder`: the prefalign
key it set (`set`), why it was ignored (`ignore`), or why prefalign cannot honour it (`refuse`). No key is left
without a row. Refused keys stop the import unless `lenient`, which keeps them in the table as not honoured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefalign.config import ConfigError, RunConfig
from prefalign.optimizers import ALIASES as OPTIMIZER_ALIASES
from prefalign.optimizers import OPTIMIZERS as OPTIMIZER_SPECS

SET, IGNORED, REFUSED, NEEDS = "set", "ignored", "refused", "needs"

# Keys that other helpers are adding to the schema. A translation that targets one of them sets it when this
# build's schema has it, and otherwise records "needs KEY (not in this build)" and refuses the key unless
# --lenient (`Builder.pending`); so nothing changes here when they land.
PENDING_KEYS = {
    "model.quantization": "the quantised-training issue (QLoRA)",
    "train.optimizer": "the quantised-training issue (8-bit and paged optimizers)",
    "output.report_to": "the trackers issue",
}

# every optimizer name train.optimizer reads (its own and transformers' aliases) -> the value it becomes.
OPTIMIZERS = {**{name: name for name in OPTIMIZER_SPECS}, **OPTIMIZER_ALIASES}


class WrongType(ValueError):
    """A foreign value of the wrong type; the builder adds the key and line."""


@dataclass(frozen=True)
class KeyRow:
    key: str  # the foreign key as the user wrote it: `learning_rate`, `datasets[0].type`, `--lora-r`
    value: Any
    action: str  # set | ignored | refused | needs
    target: str = ""  # the prefalign key(s) it became
    note: str = ""  # how it was translated, or why it was not
    line: int | None = None  # where the key is in the file

    @property
    def outcome(self) -> str:
        if self.action == SET:
            return self.target
        if self.action == NEEDS:
            return f"needs {self.target} (not in this build)"
        return self.action


@dataclass
class ImportTable:
    """The whole translation: the dialect, where it came from, and one row per foreign key."""

    dialect: str
    source: str
    rows: list[KeyRow] = field(default_factory=list)
    lenient: bool = False

    @property
    def not_honoured(self) -> list[KeyRow]:
        return [row for row in self.rows if row.action in (REFUSED, NEEDS)]

    def markdown(self) -> str:
        lines = [
            f"# Imported from {self.dialect}: {self.source}",
            "",
            "Every key of the original config and what prefalign did with it. `config.yaml` beside this file is "
            "the resolved prefalign config; `prefalign config convert` writes it as a file to keep.",
            "",
            "| key | value | became | note |",
            "| --- | --- | --- | --- |",
        ]
        for row in self.rows:
            value, note = _short(row.value).replace("|", "\\|"), row.note.replace("|", "\\|")
            lines.append(f"| `{row.key}` | `{value}` | {row.outcome} | {note} |")
        refused = self.not_honoured
        if refused:
            lines += ["", "Not honoured (trained without them under --lenient):", ""]
            lines += [f"- `{row.key}`: {row.note or row.outcome}" for row in refused]
        return "\n".join(lines) + "\n"


def _short(value: Any, width: int = 60) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def schema_has(dotted: str) -> bool:
    """Whether this build's RunConfig has the dotted key (model.quantization, train.optimizer, ...)."""
    model: Any = RunConfig
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and hasattr(c, "model_fields")), None)
    return True


def put(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def unset(value: Any) -> bool:
    """A value that asks for nothing: empty, null, false, zero-length (Axolotl leaves many keys empty)."""
    return value is None or value is False or value == "" or value == [] or value == {}


class Builder:
    """Collects the prefalign config and the rows while a translator walks the foreign keys."""

    def __init__(self, dialect: str, source: str, lines: dict[str, int] | None = None, *, lenient: bool = False):
        self.config: dict[str, Any] = {}
        self.table = ImportTable(dialect, source, lenient=lenient)
        self.lines = lines or {}

    def _row(self, key: str, value: Any, action: str, target: str = "", note: str = "") -> None:
        top = key.lstrip("-").split("[")[0].split(".")[0]
        self.table.rows.append(KeyRow(key, value, action, target, note, self.lines.get(top)))

    def where(self, key: str) -> str:
        top = key.lstrip("-").split("[")[0].split(".")[0]
        line = self.lines.get(top)
        return f"{self.table.source}: line {line}: {key}" if line else f"{self.table.source}: {key}"

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: {message}")

    def convert(self, key: str, value: Any, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(value)
        except WrongType as exc:
            raise self.error(key, f"{exc} (got {value!r})") from None

    def apply(self, rule: Callable[[Builder, str, Any], None], key: str, value: Any) -> None:
        """Run one key's rule; a value of the wrong type anywhere in it is an error naming the key and line."""
        try:
            rule(self, key, value)
        except WrongType as exc:
            raise self.error(key, f"{exc} (got {value!r})") from None

    def set(self, key: str, value: Any, target: str, new: Any, note: str = "") -> None:
        for dotted in target.split(", "):
            put(self.config, dotted, new)
        self._row(key, value, SET, target, note)

    def record(self, key: str, value: Any, target: str, note: str = "") -> None:
        """A row for a key whose value the translator placed itself (inside a data source, say)."""
        self._row(key, value, SET, target, note)

    def set_many(self, key: str, value: Any, targets: dict[str, Any], note: str = "") -> None:
        for dotted, new in targets.items():
            put(self.config, dotted, new)
        self._row(key, value, SET, ", ".join(targets), note)

    def ignore(self, key: str, value: Any, note: str) -> None:
        self._row(key, value, IGNORED, "", note)

    def refuse(self, key: str, value: Any, note: str) -> None:
        self._row(key, value, REFUSED, "", note)

    def pending(self, key: str, value: Any, target: str, new: Any, note: str = "") -> None:
        """Set `target` if this build's schema has it; otherwise a row saying what it needs (refused unless
        lenient)."""
        if schema_has(target):
            self.set(key, value, target, new, note)
        else:
            detail = f"{target}: {new!r}; {PENDING_KEYS.get(target, 'a later build')} adds it"
            self._row(key, value, NEEDS, target, f"{note}; " + detail if note else detail)

    def finish(self) -> tuple[dict[str, Any], ImportTable]:
        """The prefalign config and the table; a ConfigError listing every refused key unless lenient."""
        refused = self.table.not_honoured
        if refused and not self.table.lenient:
            listed = "\n".join(
                f"  {'line ' + str(row.line) + ': ' if row.line else ''}{row.key}: {row.value!r}: "
                f"{row.note or row.outcome}"
                for row in refused
            )
            raise ConfigError(
                f"{self.table.source} ({self.table.dialect}): {len(refused)} key(s) prefalign cannot honour; "
                f"remove them, or pass --lenient to train without them:\n{listed}"
            )
        return self.config, self.table


# --- value readers: a foreign value to the type prefalign needs, or WrongType -------------------------


def as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise WrongType("expected a number")
    try:
        return float(value)  # YAML 1.1 reads 1e-5 as a string; every tool here reads it as a number
    except (TypeError, ValueError):
        raise WrongType("expected a number") from None


def as_int(value: Any) -> int:
    number = as_float(value)
    if number != int(number):
        raise WrongType("expected a whole number")
    return int(number)


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise WrongType("expected true or false")


def as_str(value: Any) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise WrongType("expected a string")


def as_dict(value: Any) -> dict:
    if not isinstance(value, dict):
        raise WrongType("expected a mapping")
    return value


def as_list(value: Any) -> list:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise WrongType("expected a list (or a comma-separated string)")
    return value


# --- rules: the common ways one key is treated, so the dialect tables read as data --------------------

Rule = Callable[[Builder, str, Any], None]


def to(target: str, fn: Callable[[Any], Any] = lambda v: v, note: str = "") -> Rule:
    """The key becomes `target`, its value read by `fn`; an unset value (null, empty) is left to the default."""

    def rule(b: Builder, key: str, value: Any) -> None:
        if value is None or value == "":
            b.ignore(key, value, "not set")
            return
        b.set(key, value, target, b.convert(key, value, fn), note)

    return rule


def ignored(note: str) -> Rule:
    """No effect in prefalign (or what it does anyway): listed with why; a null value is just not set."""
    return lambda b, key, value: b.ignore(key, value, "not set" if value is None else note)


def only_unset(note: str, *same: Any) -> Rule:
    """A feature prefalign does not have: fine when unset (or one of `same`, values that ask for what prefalign
    does anyway), refused otherwise."""

    def rule(b: Builder, key: str, value: Any) -> None:
        if unset(value):
            b.ignore(key, value, "not set")
        elif any(value == s for s in same):
            b.ignore(key, value, "what prefalign does anyway")
        else:
            b.refuse(key, value, note)

    return rule


def quantization(bits: str) -> Rule:
    """A boolean load-in-N-bits key: model.quantization `bits` when true."""

    def rule(b: Builder, key: str, value: Any) -> None:
        if unset(value) or not b.convert(key, value, as_bool):
            b.ignore(key, value, "not set")
        else:
            b.pending(key, value, "model.quantization", bits)

    return rule


def optimizer(b: Builder, key: str, value: Any) -> None:
    if unset(value):
        b.ignore(key, value, "not set")
        return
    name = b.convert(key, value, as_str)
    if name not in OPTIMIZERS:
        raise b.error(key, f"unknown optimizer {name!r}; prefalign reads: {', '.join(sorted(OPTIMIZERS))}")
    if OPTIMIZERS[name] == "adamw" and not schema_has("train.optimizer"):
        b.ignore(key, value, "AdamW: what prefalign trains with")
        return
    b.pending(key, value, "train.optimizer", OPTIMIZERS[name])


def report_to(b: Builder, key: str, value: Any) -> None:
    names = [] if unset(value) else b.convert(key, value, as_list)
    names = [name for name in names if name not in ("none", "None")]
    if not names:
        b.ignore(key, value, "no tracker: prefalign writes metrics.jsonl")
        return
    b.pending(key, value, "output.report_to", names)


SCHEDULES = {
    "linear": "linear", "cosine": "cosine", "constant": "constant", "constant_with_warmup": "constant",
}  # fmt: skip


def schedule(b: Builder, key: str, value: Any) -> None:
    if unset(value):
        b.ignore(key, value, "not set")
        return
    name = b.convert(key, value, as_str)
    if name not in SCHEDULES:
        b.refuse(key, value, f"schedule {name!r} is not one prefalign has (linear, cosine, constant)")
        return
    note = "warm-up then constant" if name == "constant_with_warmup" else ""
    b.set(key, value, "train.schedule", SCHEDULES[name], note)


def warmup_steps(b: Builder, key: str, value: Any) -> None:
    steps = b.convert(key, value, as_float) if not unset(value) else 0
    if steps == 0:
        b.ignore(key, value, "no warm-up steps; train.warmup_ratio is used")
        return
    if 0 < steps < 1:  # transformers 5 reads a warmup_steps below 1 as a ratio
        b.set(key, value, "train.warmup_ratio", steps, "below 1: a fraction of the steps, as transformers reads it")
        return
    b.set(key, value, "train.warmup_steps", int(steps))
