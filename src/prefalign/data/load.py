"""Read data sources through `datasets` and turn them into canonical rows."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from prefalign.config import DataSource
from prefalign.data.cache import code_version
from prefalign.data.formats import FORMATS, RowError, check_options, detect_format

log = logging.getLogger(__name__)

_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}
# The columns of canonical rows of each kind (formats.Format.kind), and what a row that failed to convert holds.
# `tools` is the JSON of the tool schemas the prompt offers ("" for none), for `apply_chat_template(tools=...)`.
CANONICAL_COLUMNS = {
    "paired": ("prompt", "chosen", "rejected", "plain", "tools", "origin"),
    "unpaired": ("prompt", "completion", "label", "plain", "tools", "origin"),
}
_EMPTY = {
    "paired": {"prompt": [], "chosen": [], "rejected": [], "plain": False, "tools": ""},
    "unpaired": {"prompt": [], "completion": [], "label": False, "plain": False, "tools": ""},
}


class DataError(ValueError):
    """Data that cannot be used; the message names the file, row and field."""


@dataclass
class DataReport:
    """What reading and rendering did to the rows, for the summary and `data validate`."""

    rows_read: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # each source's path: the format it was read as
    bad_rows: list[str] = field(default_factory=list)  # "path: row N: field F: problem", one per unusable row
    dropped: dict[str, int] = field(default_factory=dict)  # reason: rows that rendering dropped
    truncated: int = 0
    errors: list[str] = field(default_factory=list)  # what stops a run beyond single rows: a source unread, …

    def merge(self, other: DataReport) -> None:
        self.rows_read += other.rows_read
        for name, count in other.formats.items():
            self.formats[name] = self.formats.get(name, 0) + count
        self.sources.update(other.sources)
        self.bad_rows += other.bad_rows
        for reason, count in other.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        self.truncated += other.truncated
        self.errors += other.errors

    @property
    def bad_row_kinds(self) -> dict[str, int]:
        """The bad rows counted by what is wrong with them (`bad_row_kind`)."""
        counts: dict[str, int] = {}
        for message in self.bad_rows:
            kind = bad_row_kind(message)
            counts[kind] = counts.get(kind, 0) + 1
        return counts


def bad_row_kind(message: str) -> str:
    """What a bad row's message says is wrong, in a word or three, for the `data validate` summary."""
    if message.endswith(": missing"):
        return "missing field"
    if message.endswith("empty completion"):
        return "empty answer"
    if "chat template" in message:
        return "template cannot render it"
    return "malformed field"


def read_source(source: DataSource) -> datasets.Dataset:
    """The raw rows of one source: a local file or directory, or a hub dataset name."""
    path = Path(source.path)
    try:
        if path.is_file():
            builder = _BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise DataError(f"{path}: unsupported file type {path.suffix!r}; use json, jsonl, csv or parquet")
            # Wrong types inside a row are caught by the readers, which name file, row and field.
            return datasets.load_dataset(builder, data_files=str(path), split="train")
        if path.is_dir():
            return datasets.load_dataset(str(path), split=source.split)
        if source.path.startswith((".", "/")) or Path(source.path).suffix in _BUILDERS:
            raise DataError(f"{source.path}: file not found")
        # Anything else is a hub dataset name: the ordinary `load_dataset` call.
        return datasets.load_dataset(source.path, source.name, split=source.split)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{source.path}: could not read: {exc}") from exc


def _margin(row: dict) -> float:
    value = row["margin"]
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowError("margin", f"expected a number, got {type(value).__name__}")
    return float(value)


def _convert_batch(
    batch: dict,
    indices: list[int],
    *,
    fmt_name: str,
    source: DataSource,
    row_numbers: list[int] | None,
    code_version: str,
) -> dict:
    """Canonical rows of a batch; `row_numbers` are the file's 0-based row numbers when only some rows are read.

    `code_version` is unused: it is part of the cache key (cache.py), so that new readers miss old cached rows.
    """
    fmt, origin = FORMATS[fmt_name], source.path
    # A paired source's optional `margin` column (how much better the chosen answer is, as in TRL's reward data)
    # travels with its rows to the batch.
    names = (*CANONICAL_COLUMNS[fmt.kind], *(["margin"] if fmt.kind == "paired" and "margin" in batch else []))
    out: dict[str, list] = {name: [] for name in (*names, "error")}
    columns = list(batch)
    for i, index in enumerate(indices):
        row = {name: batch[name][i] for name in columns}
        number = (row_numbers[index] if row_numbers is not None else index) + 1  # 1-based, in the file
        try:
            canonical = {"tools": "", **fmt.convert(row, source)}
            if "margin" in names:
                canonical["margin"] = _margin(row)
            error = ""
        except RowError as exc:
            canonical = {**_EMPTY[fmt.kind], "margin": 0.0}
            error = f"row {number}: field {exc}"
        canonical["origin"] = f"{origin}: row {number}"
        for name in names:
            out[name].append(canonical[name])
        out["error"].append(error)
    return out


def _subset(raw: datasets.Dataset, source: DataSource, seed: int) -> tuple[datasets.Dataset, list[int] | None]:
    """The rows `source.fraction` and `source.max_rows` keep, in file order, and their row numbers (None: all)."""
    keep: list[int] | range = range(len(raw))
    if source.fraction < 1:
        count = max(1, round(source.fraction * len(raw)))
        keep = sorted(random.Random(seed).sample(range(len(raw)), count))
    if source.max_rows is not None:
        keep = keep[: source.max_rows]
    if len(keep) == len(raw):
        return raw, None
    return raw.select(keep), list(keep)


def rows_kind(rows: datasets.Dataset) -> str:
    """Which canonical rows `rows` holds: "paired" or "unpaired"."""
    return "unpaired" if "label" in rows.column_names else "paired"


def _unpair_batch(batch: dict) -> dict:
    out: dict[str, list] = {name: [] for name in CANONICAL_COLUMNS["unpaired"]}
    for i, origin in enumerate(batch["origin"]):
        for answer, label in (("chosen", True), ("rejected", False)):
            out["prompt"].append(batch["prompt"][i])
            out["completion"].append(batch[answer][i])
            out["label"].append(label)
            out["plain"].append(batch["plain"][i])
            out["tools"].append(batch["tools"][i] if "tools" in batch else "")
            out["origin"].append(f"{origin} ({answer})")
    return out


def unpair_rows(rows: datasets.Dataset, num_proc: int | None = None) -> datasets.Dataset:
    """`data.split_pairs`: each pair becomes two unpaired rows, chosen (desirable) then rejected; unpaired rows stay."""
    if rows_kind(rows) == "unpaired":
        return rows
    return rows.map(
        _unpair_batch, batched=True, remove_columns=rows.column_names, num_proc=num_proc, desc="Splitting pairs"
    )


def canonical_rows(
    sources: list[DataSource],
    default_format: str,
    *,
    skip_bad_rows: bool,
    num_proc: int | None = None,
    split_pairs: bool = False,
    seed: int = 0,
) -> tuple[datasets.Dataset, DataReport]:
    """Read every source, convert each row to canonical columns, and report what happened.

    Sources of both kinds (pairs and unpaired rows) can be read together only with `split_pairs`, which
    splits the pairs here; otherwise pairs stay pairs (`prepare_data` splits them after holding out).
    `seed` picks the rows a source's `fraction` keeps.
    """
    parts, report = [], DataReport()
    for source in sources:
        raw = read_source(source)
        if len(raw) == 0:
            raise DataError(f"{source.path}: no rows")
        raw, row_numbers = _subset(raw, source, seed)
        fmt_name = source.format if source.format != "auto" else default_format
        try:
            # formats.py cannot import DataError (load imports it); its ValueErrors are re-raised as the data
            # error the CLI reports cleanly, instead of a traceback for an unrecognised column layout.
            if fmt_name == "auto":
                fmt = detect_format(raw[0], source.path, source)
                log.info("%s: detected format %s", source.path, fmt.name)
            elif fmt_name in FORMATS:
                fmt = FORMATS[fmt_name]
            else:
                raise DataError(f"{source.path}: unknown format {fmt_name!r}; known: {', '.join(FORMATS)}")
            check_options(fmt, source)
        except DataError:
            raise
        except ValueError as exc:
            raise DataError(str(exc)) from None
        converted = raw.map(
            _convert_batch,
            batched=True,
            with_indices=True,
            fn_kwargs={
                "fmt_name": fmt.name,
                "source": source,
                "row_numbers": row_numbers,
                "code_version": code_version(),
            },
            remove_columns=raw.column_names,
            num_proc=num_proc,
            desc=f"Reading {Path(source.path).name} ({fmt.name})",
        )
        errors = [e for e in converted["error"] if e]
        if errors and not skip_bad_rows:
            shown = "\n  ".join(f"{source.path}: {e}" for e in errors[:5])
            more = f"\n  … and {len(errors) - 5} more" if len(errors) > 5 else ""
            raise DataError(
                f"{len(errors)} unusable row(s) (set data.skip_bad_rows: true to skip them):\n  {shown}{more}"
            )
        report.rows_read += len(raw)
        report.formats[fmt.name] = report.formats.get(fmt.name, 0) + len(raw)
        report.sources[source.path] = fmt.name
        report.bad_rows += [f"{source.path}: {e}" for e in errors]
        if errors:
            converted = converted.filter(lambda e: not e, input_columns="error")
        parts.append(converted.remove_columns("error"))
    if len({rows_kind(part) for part in parts}) > 1:
        if not split_pairs:
            kinds = ", ".join(f"{source.path} ({rows_kind(part)})" for source, part in zip(sources, parts, strict=True))
            raise DataError(
                f"sources mix pairs and unpaired rows: {kinds}; set data.split_pairs: true to split the pairs into "
                "unpaired rows (for an unpaired loss such as kto)"
            )
        parts = [unpair_rows(part, num_proc) for part in parts]
    if len(parts) > 1 and any("margin" in part.column_names for part in parts):  # absent margins are 0
        parts = [p if "margin" in p.column_names else p.add_column("margin", [0.0] * len(p)) for p in parts]
    rows = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return rows, report
