"""Why a local text file cannot be read, line by line, and its readable rows when bad ones are skipped.

`datasets` reads JSON through pyarrow, which answers a broken line with "An error occurred while generating
the dataset" and no line number, and lets non-UTF-8 bytes through until a later step fails to decode them.
When a read fails, `find_problems` goes through the file once, a line at a time (a file of any size is
never held in memory, except a `.json` array, which `datasets` loads whole as well), and names each line at
fault and what to do about it. With `data.skip_bad_rows`, `readable_rows` builds the dataset from the other
lines instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import datasets

FIX_LINE = "fix or delete the line, or set data.skip_bad_rows: true to skip it"


def file_problem(path: Path) -> str | None:
    """What makes the whole file unusable (empty, only blank lines), or None."""
    if path.stat().st_size == 0:
        return f"{path}: the file is empty; it needs one row per line (jsonl) or a header and rows (csv)"
    with path.open("rb") as lines:
        if all(not line.strip() for line in lines):
            return f"{path}: the file holds only blank lines; it needs at least one row"
    return None


def _decoded(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text or None when not UTF-8, problem) for each line."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            try:
                yield number, raw.decode("utf-8"), ""
            except UnicodeDecodeError as exc:
                problem = (
                    f"{path}: line {number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the "
                    f"line); save the file as UTF-8, or {FIX_LINE}"
                )
                yield number, None, problem


def _reason(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"


def _is_json_array(path: Path) -> bool:
    with path.open("rb") as stream:
        while chunk := stream.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped.startswith(b"[")
    return False


def _line_problem(path: Path, number: int, text: str) -> str | None:
    try:
        value = json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return f"{path}: line {number}: not valid JSON: {_reason(exc)}; {FIX_LINE}"
    if not isinstance(value, dict):
        return (
            f"{path}: line {number}: a JSON {type(value).__name__}, not an object of the row's fields "
            f'({{"prompt": ..., ...}}); {FIX_LINE}'
        )
    return None


def _array_elements(path: Path) -> tuple[list | None, list[str]]:
    """The elements of a `.json` array file and the problems of those that are not rows (or of the file)."""
    text = path.read_bytes()
    try:
        value = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        return None, [problem for _, _, problem in _decoded(path) if problem]
    except json.JSONDecodeError as exc:
        return None, [f"{path}: line {exc.lineno}: not valid JSON: {_reason(exc)}; fix the file"]
    if not isinstance(value, list):
        return None, []
    problems = [
        f"{path}: row {i} (element {i} of the array): a JSON {type(element).__name__}, not an object of the row's "
        f"fields; {FIX_LINE.replace('line', 'element')}"
        for i, element in enumerate(value, 1)
        if not isinstance(element, dict)
    ]
    return value, problems


def find_problems(path: Path) -> list[str]:
    """Every line (or array element) of a JSON, JSONL or CSV file that cannot be read as a row, named."""
    if path.suffix.lower() in (".json", ".jsonl") and _is_json_array(path):
        return _array_elements(path)[1]
    problems = []
    for number, text, problem in _decoded(path):
        if problem:
            problems.append(problem)
        elif path.suffix.lower() != ".csv" and text.strip():
            problems.append(_line_problem(path, number, text) or "")
    return [p for p in problems if p]


def _good_lines(path: str, size: int, mtime_ns: int) -> Iterator[dict]:
    """The rows of the lines `find_problems` passes, each with its row number (`size` and `mtime_ns` key the
    datasets cache to this version of the file)."""
    number = 0
    for line_number, text, problem in _decoded(Path(path)):
        if text is not None and not text.strip():
            continue  # blank lines are no rows, as for datasets' reader
        number += 1
        if problem or _line_problem(Path(path), line_number, text):
            continue
        yield {"__row__": number - 1, **json.loads(text)}


def readable_rows(path: Path) -> tuple[datasets.Dataset, list[int]]:
    """The rows of a JSON/JSONL file without its bad lines (or array elements), and each row's 0-based number
    among the file's rows (blank lines not counted), so that messages about them name the same row as before."""
    if _is_json_array(path):
        elements, _ = _array_elements(path)
        if elements is None:
            raise ValueError(f"{path}: not a JSON array")
        kept = [(i, element) for i, element in enumerate(elements) if isinstance(element, dict)]
        rows = datasets.Dataset.from_list([element for _, element in kept])
        return rows, [i for i, _ in kept]
    stat = path.stat()
    rows = datasets.Dataset.from_generator(
        _good_lines, gen_kwargs={"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    )
    numbers = rows["__row__"]
    return rows.remove_columns("__row__"), list(numbers)
