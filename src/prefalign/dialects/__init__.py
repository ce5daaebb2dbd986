"""Configs written for other tools — Axolotl, LLaMA-Factory, TRL, AutoTrain — read as they are.

`import_config` recognises the dialect from its keys (or is told it), applies the overrides that name the
foreign keys (`dataset_dir=...`), and translates: a pure function per dialect, foreign dict -> prefalign dict
plus an `ImportTable` with one row per foreign key. `config.load_config` calls it before validation, so the
CLI and `prefalign.train(path)` both read foreign configs; prefalign's own dotted overrides then apply on top.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from prefalign.config import ConfigError, RunConfig, parse_override
from prefalign.dialects import autotrain, axolotl, llamafactory, trl
from prefalign.dialects.hf_args import TRAINING_ARGUMENTS
from prefalign.dialects.table import Builder, ImportTable, KeyRow

__all__ = ["DIALECTS", "ImportTable", "KeyRow", "detect", "import_config", "key_lines"]

DIALECTS = ("axolotl", "llamafactory", "trl", "autotrain")
NAMES = {"axolotl": "Axolotl", "llamafactory": "LLaMA-Factory", "trl": "TRL", "autotrain": "AutoTrain"}

# Keys only one tool writes, by which its configs are recognised.
_MARKERS = {
    "axolotl": ("rl", "reward_model"),
    "llamafactory": ("stage",),
    "autotrain": ("trainer",),
}
_SECTIONS = tuple(RunConfig.model_fields)  # model, reference, data, method, train, eval, output


def key_lines(text: str) -> dict[str, int]:
    """The 1-based line of each top-level key of a YAML mapping (for errors that name the line)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value}


def _where(keys: list[str], lines: dict[str, int]) -> str:
    return ", ".join(f"{key} (line {lines[key]})" if key in lines else key for key in keys)


def detect(raw: dict[str, Any], source: str, lines: dict[str, int] | None = None) -> str | None:
    """The dialect of `raw`, or None for prefalign's own config. Two dialects in one file is an error."""
    lines = lines or {}
    if "task" in raw and "params" in raw:  # AutoTrain's config YAML (it has a `data:` section of its own)
        return "autotrain"
    found = {name: [k for k in keys if k in raw] for name, keys in _MARKERS.items()}
    found = {name: keys for name, keys in found.items() if keys}
    sections = [key for key in _SECTIONS if isinstance(raw.get(key), dict | list)]
    if len(found) > 1:
        listed = "; ".join(f"{NAMES[name]}: {_where(keys, lines)}" for name, keys in found.items())
        raise ConfigError(f"{source}: mixes the keys of two tools ({listed}); a config is written for one")
    if found and sections:
        name, keys = next(iter(found.items()))
        raise ConfigError(
            f"{source}: mixes prefalign sections ({_where(sections, lines)}) with {NAMES[name]} keys "
            f"({_where(keys, lines)}); write one or the other (prefalign config convert turns the second into "
            "the first)"
        )
    if found:
        return next(iter(found))
    if sections:
        return None
    trl_keys = TRAINING_ARGUMENTS.keys() | trl.TRL_FIELDS.keys() | {"beta", "loss_type"}
    if raw and any(key in trl_keys for key in raw):
        return "trl"
    return None


def _split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(foreign-key overrides, prefalign overrides): a key that starts with a prefalign section is prefalign's."""
    foreign, own = [], []
    for text in overrides:
        (own if text.partition("=")[0].strip().split(".")[0] in _SECTIONS else foreign).append(text)
    return foreign, own


def import_config(
    raw: dict[str, Any],
    *,
    source: str,
    dialect: str | None = None,
    lenient: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    lines: dict[str, int] | None = None,
) -> tuple[dict[str, Any], ImportTable | None, list[str]]:
    """Translate a foreign config: (prefalign dict, its import table, the overrides left to apply on top).

    A prefalign config comes back as it is, with no table. `dialect` names the tool (`trl:orpo` also names
    TRL's trainer); otherwise it is recognised from the keys. Overrides whose key is not a prefalign section
    (`dataset_dir=../data`) change the foreign config before it is translated.
    """
    trainer = None
    if dialect is not None:
        dialect, _, trainer = dialect.partition(":")
        if dialect not in DIALECTS:
            raise ConfigError(f"--from {dialect}: unknown; prefalign reads {', '.join(DIALECTS)}")
        if trainer and (dialect != "trl" or trainer not in trl.TRAINERS):
            raise ConfigError(f"--from {dialect}:{trainer}: only trl takes a trainer ({', '.join(trl.TRAINERS)})")
    else:
        dialect = detect(raw, source, lines)
    if dialect is None:
        return raw, None, list(overrides)
    foreign, own = _split_overrides(list(overrides))
    raw = dict(raw)
    overridden = []
    for text in foreign:
        keys, value = parse_override(text)
        node = raw
        for part in keys[:-1]:
            node = node.setdefault(part, {})
        node[keys[-1]] = value
        overridden.append(keys[0])
    builder = Builder(NAMES[dialect], source, lines, lenient=lenient)
    if dialect == "axolotl":
        axolotl.translate(raw, builder)
    elif dialect == "llamafactory":
        llamafactory.translate(raw, builder)
    elif dialect == "trl":
        trl.translate(raw, builder, trainer or None)
    else:
        autotrain.translate(raw, builder)
    config, table = builder.finish()
    if overridden:
        said = "set on the command line"
        table.rows = [
            replace(row, note=f"{row.note}; {said}" if row.note else said)
            if row.key.split("[")[0].split(":")[0].strip("()") in overridden
            else row
            for row in table.rows
        ]
    return config, table, own
