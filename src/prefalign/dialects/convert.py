"""`prefalign config convert`: the translated config as a prefalign YAML file to keep, every default written
out, each key that came from the foreign config commented with where it came from; and the import table as
the console shows it."""

from __future__ import annotations

import re
from typing import Any

import yaml

from prefalign.config import RunConfig
from prefalign.dialects.table import SET, ImportTable

_KEY = re.compile(r"^(?P<indent>\s*)(?P<item>- )?(?P<key>[A-Za-z_][\w]*):")


def _sources(table: ImportTable) -> dict[str, list[str]]:
    """prefalign dotted key -> the foreign keys that set it."""
    found: dict[str, list[str]] = {}
    for row in table.rows:
        if row.action != SET:
            continue
        for target in row.target.split(", "):
            target = re.sub(r"\[\d+\]", "", target)
            found.setdefault(target, [])
            if row.key not in found[target]:
                found[target].append(row.key)
    return found


def converted_yaml(config: RunConfig, command: str) -> str:
    """The resolved config as YAML; keys set from the foreign config carry `# from: KEY`."""
    table = config.import_table
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    head = [f"# {command}"]
    if table is not None:
        head.append(f"# Converted from {table.dialect} ({table.source}): every default written out; `# from:` names")
        head.append("# the key each value came from. Keys that were not carried over are listed at the end.")
    if table is None:
        return "\n".join(head) + "\n" + text
    sources = _sources(table)
    out, path = [], []  # path: (indent, key) of the enclosing mappings
    for line in text.splitlines():
        match = _KEY.match(line)
        if match:
            indent = len(match["indent"]) + (2 if match["item"] else 0)
            while path and path[-1][0] >= indent:
                path.pop()
            path.append((indent, match["key"]))
            dotted = ".".join(key for _, key in path)
            came = sources.get(dotted)
            if came:
                line = f"{line}  # from: {', '.join(came)}"
        out.append(line)
    tail = [f"#   {row.key}: {row.outcome}: {row.note}" for row in table.rows if row.action != SET]
    if tail:
        tail.insert(0, "# Not carried over (as in the import table):")
    return "\n".join([*head, *out, *tail]) + "\n"


def table_rows(table: ImportTable) -> list[tuple[str, str, str, str]]:
    """(key, value, became, note) per row, for a console table."""
    rows = []
    for row in table.rows:
        key = f"{row.key} (line {row.line})" if row.line else row.key
        value: Any = row.value
        rows.append((key, "" if value is None else str(value)[:60], row.outcome, row.note))
    return rows
