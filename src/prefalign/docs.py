"""README tables generated from the schema and the loss registry, so the docs cannot drift from the code.

`python -m prefalign.docs` rewrites the marked sections of README.md; a test checks they are current.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from prefalign.config import RunConfig
from prefalign.data.formats import FORMATS
from prefalign.losses import LOSSES


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    text = text or str(annotation).replace("typing.", "")
    text = re.sub(r"prefalign\.config\.(\w+)", r"\1", text)
    return text.replace("NoneType", "null").replace("|", "\\|")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{value!r}`" if value is not None else "`null`"


def config_reference() -> str:
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            nested = [
                a for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ]  # fmt: skip
            if nested and model is RunConfig:
                walk(nested[0], f"{key}.")
                continue
            if nested:  # a sub-section such as model.lora, or a list of data sources: list its fields too
                kind = "path, source or list of them" if "list" in str(field.annotation) else "section or null"
                rows.append(f"| `{key}` | {kind} | {_default(field)} | {field.description} |")
                walk(nested[0], f"{key}.")
                continue
            rows.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {field.description} |")

    walk(RunConfig, "")
    return "\n".join(rows)


def methods_table() -> str:
    rows = ["| loss | family | reference | hyper-parameters | paper |", "| --- | --- | --- | --- | --- |"]
    for spec in LOSSES.values():
        params = ", ".join(f"`{p}`" for p in spec.hyperparams) or "—"
        reference = "needed" if spec.needs_reference else "none"
        rows.append(f"| `{spec.name}` | {spec.family} | {reference} | {params} | {spec.paper} |")
    return "\n".join(rows)


def formats_table() -> str:
    rows = ["| format | kind | what it reads |", "| --- | --- | --- |"]
    rows += [f"| `{f.name}` | {f.kind} | {f.description} |" for f in FORMATS.values()]
    return "\n".join(rows)


SECTIONS = {"config-reference": config_reference, "methods": methods_table, "formats": formats_table}


def render(readme: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        readme = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), readme)
    return readme


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(render(path.read_text()))


if __name__ == "__main__":
    main()
