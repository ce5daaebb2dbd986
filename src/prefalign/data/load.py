"""Read data sources through `datasets` and turn them into canonical rows."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np

from prefalign.config import DataSource
from prefalign.data import scan
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


# The chat roles rows may use: transformers' chat templates know these (tool results: "tool", or Llama 3's
# "ipython"; "developer": OpenAI's newer name for system).
ROLES = ("system", "developer", "user", "assistant", "tool", "ipython")


class DataError(ValueError):
    """Data that cannot be used; the message names the file, row and field.

    `problems` lists the lines of a file that cannot be read as rows (scan.find_problems), when that is why.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or []


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
    duplicates: list[str] = field(default_factory=list)  # "path: row N: duplicate of path: row M …", one per repeat

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
        self.duplicates += other.duplicates

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
            if problem := scan.file_problem(path):
                raise DataError(problem)
            # Wrong types inside a row are caught by the readers, which name file, row and field.
            try:
                return datasets.load_dataset(builder, data_files=str(path), split="train")
            except Exception as exc:
                if builder in ("json", "csv") and (problems := scan.find_problems(path)):
                    raise _unreadable_lines(path, problems) from None
                raise DataError(f"{path}: could not read: {_cause(exc)}") from exc
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


def _cause(exc: BaseException) -> str:
    """The innermost message of `exc`: datasets wraps a reader's error in "An error occurred while generating"."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc) or type(exc).__name__


def _unreadable_lines(path: Path, problems: list[str]) -> DataError:
    shown = "\n  ".join(problems[:5])
    more = f"\n  … and {len(problems) - 5} more" if len(problems) > 5 else ""
    return DataError(f"{len(problems)} unreadable line(s) in {path}:\n  {shown}{more}", problems)


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
    out: dict[str, list] = {name: [] for name in (*names, "error", "key")}
    columns = list(batch)
    for i, index in enumerate(indices):
        row = {name: batch[name][i] for name in columns}
        number = (row_numbers[index] if row_numbers is not None else index) + 1  # 1-based, in the file
        try:
            canonical = {"tools": "", **fmt.convert(row, source)}
            _check_roles(canonical)
            if "margin" in names:
                canonical["margin"] = _margin(row)
            error, key = "", _row_key(canonical, names)
        except RowError as exc:
            canonical = {**_EMPTY[fmt.kind], "margin": 0.0}
            error, key = f"row {number}: field {exc}", 0
        canonical["origin"] = f"{origin}: row {number}"
        for name in names:
            out[name].append(canonical[name])
        out["error"].append(error)
        out["key"].append(key)
    return out


def _check_roles(canonical: dict) -> None:
    """A message whose role no chat template knows is an error naming the turn (templates would drop or
    mis-render it silently)."""
    for name in ("prompt", "chosen", "rejected", "completion"):
        for i, message in enumerate(canonical.get(name) or []):
            if message["role"] not in ROLES:
                raise RowError(
                    f"{name}[{i}].role",
                    f"unknown role {message['role']!r}; use one of {', '.join(ROLES)} (a source's `roles` or "
                    "`tags` option maps other names to these)",
                )


def _row_key(canonical: dict, names: tuple[str, ...]) -> int:
    """A 63-bit hash of what training reads from a row (not where it came from), to find duplicates."""
    text = json.dumps([canonical[name] for name in names if name != "origin"], sort_keys=True, ensure_ascii=False)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1 or 1


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


def _source_rows(
    source: DataSource,
    raw: datasets.Dataset,
    numbers: list[int] | None,
    default_format: str,
    seed: int,
    num_proc: int | None,
) -> tuple[datasets.Dataset, list[str], int, str]:
    """One source's rows converted (with an `error` column), its row errors, the rows read and the format.

    `numbers` are the 0-based row numbers in the file of `raw`'s rows when some were left out (None: all).
    """
    if len(raw) == 0:
        raise DataError(f"{source.path}: no rows")
    raw, row_numbers = _subset(raw, source, seed)
    if numbers is not None:
        row_numbers = [numbers[i] for i in (row_numbers if row_numbers is not None else range(len(raw)))]
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
    return converted, [e for e in converted["error"] if e], len(raw), fmt.name


def _duplicates(
    keys: np.ndarray, rows: datasets.Dataset, seen: list[tuple[np.ndarray, datasets.Dataset]]
) -> tuple[np.ndarray, list[str]]:
    """Which rows repeat an earlier row of this source or of an earlier one (`seen`), and a message for each.

    A repeated pair is trained on twice as often as the others, which the user rarely means: it usually comes
    from concatenating a dataset with itself or an overlapping export. Published sets have a few (LLaMA-Factory's
    DPO demo: 5 of 300), so a run keeps them and says so unless it skips bad rows. Rows that failed to convert
    have key 0.
    """
    _, first = np.unique(keys, return_index=True)
    duplicate = np.ones(len(keys), dtype=bool)
    duplicate[first] = False
    earlier = [(k, r) for k, r in seen if len(k)]
    if earlier:
        duplicate |= np.isin(keys, np.concatenate([k for k, _ in earlier]))
    duplicate &= keys != 0
    messages = []
    for index in np.flatnonzero(duplicate):
        key = keys[index]
        match = next(((k, r) for k, r in earlier if (k == key).any()), (keys, rows))
        original = match[1][int(np.flatnonzero(match[0] == key)[0])]["origin"]
        messages.append(
            f"{rows[int(index)]['origin']}: duplicate of {original} (the same prompt and answers); training weighs "
            "each copy; delete the repeats, or set data.skip_bad_rows: true to keep only the first"
        )
    return duplicate, messages


def canonical_rows(
    sources: list[DataSource],
    default_format: str,
    *,
    skip_bad_rows: bool,
    num_proc: int | None = None,
    split_pairs: bool = False,
    seed: int = 0,
    drop_duplicates: bool | None = None,
) -> tuple[datasets.Dataset, DataReport]:
    """Read every source, convert each row to canonical columns, and report what happened.

    Sources of both kinds (pairs and unpaired rows) can be read together only with `split_pairs`, which
    splits the pairs here; otherwise pairs stay pairs (`prepare_data` splits them after holding out).
    `seed` picks the rows a source's `fraction` keeps. Rows that repeat an earlier one are listed in
    `report.duplicates` and dropped with `drop_duplicates` (default: `skip_bad_rows`), else kept.
    """
    drop_duplicates = skip_bad_rows if drop_duplicates is None else drop_duplicates
    parts, report = [], DataReport()
    seen: list[tuple[np.ndarray, datasets.Dataset]] = []  # each source's row keys (_row_key) and rows, for duplicates
    for source in sources:
        converted, errors, rows_read, fmt, unreadable = _read_rows(
            source, default_format, seed, num_proc, skip_bad_rows
        )
        checks = converted.with_format("numpy", columns=["key", "error"])[:]
        keys = checks["key"]
        duplicate, duplicates = _duplicates(keys, converted, seen)
        seen.append((keys, converted))
        errors = [*unreadable, *(f"{source.path}: {e}" for e in errors)]
        if errors and not skip_bad_rows:
            shown = "\n  ".join(errors[:5])
            more = f"\n  … and {len(errors) - 5} more" if len(errors) > 5 else ""
            raise DataError(
                f"{len(errors)} unusable row(s) (set data.skip_bad_rows: true to skip them):\n  {shown}{more}"
            )
        report.rows_read += rows_read
        report.formats[fmt] = report.formats.get(fmt, 0) + rows_read
        report.sources[source.path] = fmt
        report.bad_rows += errors
        report.duplicates += duplicates
        if not drop_duplicates:
            duplicate[:] = False
        if errors or duplicate.any():
            usable = (checks["error"] == "") & ~duplicate
            converted = converted.select(np.flatnonzero(usable))
        parts.append(converted.remove_columns(["error", "key"]))
    return _combine(sources, parts, split_pairs, num_proc), report


def _read_rows(
    source: DataSource, default_format: str, seed: int, num_proc: int | None, skip_bad_rows: bool
) -> tuple[datasets.Dataset, list[str], int, str, list[str]]:
    """One source's rows in canonical columns: (rows, conversion errors, rows read, format, unreadable lines).

    A broken line stops the read (DataError.problems); bytes that are not UTF-8 pass the reader and stop the
    first step that decodes them. Either way scan.py names the lines; skipping them reads the rest."""
    try:
        converted, errors, rows_read, fmt = _source_rows(source, read_source(source), None, default_format, seed,
                                                         num_proc)  # fmt: skip
        return converted, errors, rows_read, fmt, []
    except (DataError, UnicodeDecodeError) as exc:
        path = Path(source.path)
        unreadable = exc.problems if isinstance(exc, DataError) else scan.find_problems(path)
        if not unreadable:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{source.path}: could not read: {exc}") from exc
        if not skip_bad_rows:
            raise _unreadable_lines(path, unreadable) from None
    raw, numbers = scan.readable_rows(path)
    converted, errors, rows_read, fmt = _source_rows(source, raw, numbers, default_format, seed, num_proc)
    return converted, errors, rows_read + len(unreadable), fmt, unreadable


def _combine(
    sources: list[DataSource], parts: list[datasets.Dataset], split_pairs: bool, num_proc: int | None
) -> datasets.Dataset:
    """The sources' rows as one dataset: pairs split into unpaired rows where kinds mix (with split_pairs)."""
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
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
