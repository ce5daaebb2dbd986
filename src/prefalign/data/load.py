"""Read data sources through `datasets` and turn them into canonical rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from prefalign.config import DataSource
from prefalign.data.formats import FORMATS, RowError, detect_format

log = logging.getLogger(__name__)

_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}
# The columns of canonical rows of each kind (formats.Format.kind), and what a row that failed to convert holds.
CANONICAL_COLUMNS = {
    "paired": ("prompt", "chosen", "rejected", "plain", "origin"),
    "unpaired": ("prompt", "completion", "label", "plain", "origin"),
}
_EMPTY = {
    "paired": {"prompt": [], "chosen": [], "rejected": [], "plain": False},
    "unpaired": {"prompt": [], "completion": [], "label": False, "plain": False},
}


class DataError(ValueError):
    """Data that cannot be used; the message names the file, row and field."""


@dataclass
class DataReport:
    """What reading and rendering did to the rows, for the summary and `data validate`."""

    rows_read: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    bad_rows: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    truncated: int = 0

    def merge(self, other: DataReport) -> None:
        self.rows_read += other.rows_read
        for name, count in other.formats.items():
            self.formats[name] = self.formats.get(name, 0) + count
        self.bad_rows += other.bad_rows
        for reason, count in other.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        self.truncated += other.truncated


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


def _convert_batch(batch: dict, indices: list[int], *, fmt_name: str, origin: str) -> dict:
    fmt = FORMATS[fmt_name]
    # A paired source's optional `margin` column (how much better the chosen answer is, as in TRL's reward data)
    # travels with its rows to the batch.
    names = (*CANONICAL_COLUMNS[fmt.kind], *(["margin"] if fmt.kind == "paired" and "margin" in batch else []))
    out: dict[str, list] = {name: [] for name in (*names, "error")}
    columns = list(batch)
    for i, index in enumerate(indices):
        row = {name: batch[name][i] for name in columns}
        try:
            canonical = fmt.convert(row)
            if "margin" in names:
                canonical["margin"] = _margin(row)
            error = ""
        except RowError as exc:
            canonical = {**_EMPTY[fmt.kind], "margin": 0.0}
            error = f"row {index + 1}: field {exc}"
        canonical["origin"] = f"{origin}: row {index + 1}"
        for name in names:
            out[name].append(canonical[name])
        out["error"].append(error)
    return out


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
) -> tuple[datasets.Dataset, DataReport]:
    """Read every source, convert each row to canonical columns, and report what happened.

    Sources of both kinds (pairs and unpaired rows) can be read together only with `split_pairs`, which
    splits the pairs here; otherwise pairs stay pairs (`prepare_data` splits them after holding out).
    """
    parts, report = [], DataReport()
    for source in sources:
        raw = read_source(source)
        if len(raw) == 0:
            raise DataError(f"{source.path}: no rows")
        fmt_name = source.format if source.format != "auto" else default_format
        if fmt_name == "auto":
            try:
                fmt = detect_format(raw[0], source.path)
            except ValueError as exc:
                # formats.py cannot import DataError (load imports it); re-raise as the data error the
                # CLI reports cleanly, instead of a traceback for an unrecognised column layout.
                raise DataError(str(exc)) from None
            log.info("%s: detected format %s", source.path, fmt.name)
        elif fmt_name in FORMATS:
            fmt = FORMATS[fmt_name]
        else:
            raise DataError(f"{source.path}: unknown format {fmt_name!r}; known: {', '.join(FORMATS)}")
        converted = raw.map(
            _convert_batch,
            batched=True,
            with_indices=True,
            fn_kwargs={"fmt_name": fmt.name, "origin": source.path},
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
