"""Bad input, as a new user would bring it: each error names the file, the line or row, the field, and the fix.

Files are real JSON/JSONL/CSV/Parquet written to disk and read through `datasets` as training reads them.
"""

import json
import typing

import pandas as pd
import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from prefalign.cli import app
from prefalign.config import DataConfig, DataSource, RunConfig, load_config
from prefalign.data import prepare_data
from prefalign.data.load import DataError, canonical_rows
from tests.conftest import tiny_config, toy_rows, write_jsonl

GOOD = {"prompt": "Name a colour.", "chosen": "RED.", "rejected": "red?"}


def good_rows(n: int, start: int = 0) -> list[dict]:
    return [{**GOOD, "prompt": f"Name colour {i}."} for i in range(start, start + n)]


def lines(rows: list[dict]) -> list[str]:
    return [json.dumps(row) for row in rows]


def read(path, *, skip_bad_rows=False, fmt="auto"):
    rows, report = canonical_rows([DataSource(path=str(path), format=fmt)], "auto", skip_bad_rows=skip_bad_rows)
    return rows, report


def error_of(path, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        read(path, **kwargs)
    return str(caught.value)


# --- lines that are not JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"prompt": "Name a tree.", "chosen": "oops', "Unterminated string starting at column"),
        ('{"prompt": "Name a tree.", "chosen": "OAK.", "rejected": "oak",}', "Expecting property name"),
    ],
    ids=["unterminated-string", "trailing-comma"],
)
def test_invalid_json_line_is_named(tmp_path, bad_line, reason):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join([*lines(good_rows(6)), bad_line, *lines(good_rows(2, start=6))]) + "\n")
    message = error_of(path)
    assert f"{path}: line 7: not valid JSON: {reason}" in message
    assert "data.skip_bad_rows: true" in message and "could not read" not in message
    # skipping it reads the other 8 rows; the bad line is counted as a bad row, rows keep their numbers
    rows, report = read(path, skip_bad_rows=True)
    assert len(rows) == 8 and report.rows_read == 9 and len(report.bad_rows) == 1
    assert rows["origin"][6] == f"{path}: row 8"


def test_bytes_that_are_not_utf8_are_named(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(
        "\n".join(lines(good_rows(2))).encode() + b'\n{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'
    )
    message = error_of(path)
    assert f"{path}: line 3: not UTF-8 (byte 0xe9 at byte 16 of the line); save the file as UTF-8" in message
    rows, report = read(path, skip_bad_rows=True)
    assert len(rows) == 2 and len(report.bad_rows) == 1


def test_json_array_with_a_bad_element(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([*good_rows(2), "not a row", *good_rows(1, start=2)]))
    message = error_of(path)
    assert f"{path}: row 3 (element 3 of the array): a JSON str, not an object" in message
    rows, _ = read(path, skip_bad_rows=True)
    assert len(rows) == 3 and rows["origin"][2] == f"{path}: row 4"


@pytest.mark.parametrize(
    ("text", "expected"), [("", "the file is empty"), ("\n  \n\n", "the file holds only blank lines")]
)
def test_empty_and_blank_files(tmp_path, text, expected):
    path = tmp_path / "pairs.jsonl"
    path.write_text(text)
    assert error_of(path).startswith(f"{path}: {expected}")


# --- columns and fields ------------------------------------------------------------------------------------


def test_csv_missing_column(tmp_path):
    path = tmp_path / "pairs.csv"
    pd.DataFrame([{"prompt": "p", "chosen": "c"}]).to_csv(path, index=False)
    assert "trl_standard (lacks rejected)" in error_of(path)  # detection says which column is missing
    message = error_of(path, fmt="trl_standard")  # a named format: each row names the field
    assert f"{path}: row 1: field rejected: missing" in message


def test_parquet_wrong_type(tmp_path):
    path = tmp_path / "pairs.parquet"
    pd.DataFrame([{**GOOD, "chosen": 3}]).to_parquet(path)
    assert "trl_standard (chosen is not a string)" in error_of(path)
    assert f"{path}: row 1: field chosen: expected a string, got int" in error_of(path, fmt="trl_standard")


def test_unknown_chat_role(tmp_path):
    row = {
        "prompt": [{"role": "wizard", "content": "Name a colour."}],
        "chosen": [{"role": "assistant", "content": "RED."}],
        "rejected": [{"role": "assistant", "content": "red?"}],
    }
    path = write_jsonl(tmp_path / "pairs.jsonl", [row])
    message = error_of(path)
    assert f"{path}: row 1: field prompt[0].role: unknown role 'wizard'; use one of system" in message
    assert "`roles` or `tags` option" in message


def test_tools_that_are_not_json(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{**GOOD, "tools": "{not json"}])
    assert f"{path}: row 1: field tools: not valid JSON" in error_of(path)


@pytest.mark.parametrize("label", ["maybe", 2, [True]])
def test_kto_labels_it_cannot_read(tmp_path, label):
    path = write_jsonl(tmp_path / "kto.jsonl", [{"prompt": "p", "completion": "c", "label": label}])
    message = error_of(path)
    assert f"{path}: row 1: field label: expected a bool (true/false, or 1/0), got {label!r}" in message


def test_duplicate_pairs(tmp_path):
    rows = good_rows(3)
    first = write_jsonl(tmp_path / "a.jsonl", [*rows, rows[0]])
    second = write_jsonl(tmp_path / "b.jsonl", [rows[1], {**GOOD, "prompt": "new"}])
    sources = [DataSource(path=str(first)), DataSource(path=str(second))]
    expected = [
        f"{first}: row 4: duplicate of {first}: row 1 (the same prompt and answers); training weighs each copy; "
        "delete the repeats, or set data.skip_bad_rows: true to keep only the first",
        f"{second}: row 1: duplicate of {first}: row 2 (the same prompt and answers); training weighs each copy; "
        "delete the repeats, or set data.skip_bad_rows: true to keep only the first",
    ]
    # kept and named (published sets have a few: LLaMA-Factory's DPO demo loads as it is) ...
    kept, report = canonical_rows(sources, "auto", skip_bad_rows=False)
    assert len(kept) == 6 and report.duplicates == expected and not report.bad_rows
    # ... and dropped, first copy kept, when bad rows are skipped
    kept, report = canonical_rows(sources, "auto", skip_bad_rows=True)
    assert len(kept) == 4 and report.duplicates == expected and report.rows_read == 6
    assert kept["origin"] == [f"{first}: row {n}" for n in (1, 2, 3)] + [f"{second}: row 2"]


def test_validate_lists_duplicates_without_failing(tmp_path, tiny_model_dir):
    rows = toy_rows()
    path = write_jsonl(tmp_path / "pairs.jsonl", [*rows, rows[2]])
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(tiny_model_dir, path, tmp_path / "run")))
    out = CliRunner().invoke(app, ["data", "validate", str(config_path)])
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())
    assert "Duplicates (training uses every copy; not counted as problems):" in text
    assert f"{path}: row 17: duplicate of {path}: row 3" in text and "Usable: 17 pairs" in text


def test_same_prompt_with_other_answers_is_no_duplicate(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD, {**GOOD, "rejected": "Red"}, {**GOOD, "chosen": "Red!"}])
    assert len(read(path)[0]) == 3


def test_prompt_over_max_length_is_dropped_and_counted(tmp_path, tokenizer):
    long = {**toy_rows()[3], "prompt": [{"role": "user", "content": "word " * 80}]}
    path = write_jsonl(tmp_path / "pairs.jsonl", [*toy_rows()[:3], long])
    data = prepare_data(DataConfig(train=str(path), max_length=64, max_prompt_length=None), tokenizer, seed=0)
    assert len(data.train) == 3 and data.report.dropped == {"prompt fills max_length": 1}


# --- many problems at once -----------------------------------------------------------------------------------


def test_validate_lists_every_bad_line_in_one_pass(tmp_path, tiny_model_dir):
    path = tmp_path / "pairs.jsonl"
    bad = ['{"prompt": "x", "chosen": "oops', "[1, 2]", json.dumps({**GOOD, "chosen": 5})]
    path.write_text("\n".join([*lines(good_rows(3)), bad[0], *lines(good_rows(1, start=3)), bad[1], bad[2]]) + "\n")
    config = tiny_config(tiny_model_dir, path, tmp_path / "run")
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = CliRunner().invoke(app, ["data", "validate", str(config_path)])
    assert out.exit_code == 1, out.output
    text = " ".join(out.stdout.split())  # rich wraps long lines
    assert f"{path}: line 4: not valid JSON: Unterminated string" in text
    assert f"{path}: line 6: a JSON list, not an object" in text
    assert f"{path}: row 7: field chosen: expected a string, got int" in text  # the rows keep their numbers
    assert "Usable: 4 pairs in data.train" in text


def test_train_stops_at_bad_lines_unless_told_to_skip(tmp_path, tokenizer):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join([*lines(toy_rows()), "{oops"]) + "\n")
    with pytest.raises(DataError, match="line 17: not valid JSON"):
        prepare_data(DataConfig(train=str(path), max_length=64), tokenizer, seed=0)
    data = prepare_data(DataConfig(train=str(path), max_length=64, skip_bad_rows=True), tokenizer, seed=0)
    assert len(data.train) == 16 and len(data.report.bad_rows) == 1


# --- YAML's booleans ---------------------------------------------------------------------------------------


def enum_fields(model: type[BaseModel] = RunConfig, prefix: tuple[str, ...] = ()):
    """(dotted key, allowed values) of every Literal field of the schema (alone or optional), in every section."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                yield from enum_fields(candidate, (*prefix, name))
            if typing.get_origin(candidate) is typing.Literal and candidate in (annotation, *typing.get_args(
                    annotation if typing.get_origin(annotation) is not list else ())):  # fmt: skip
                yield (*prefix, name), typing.get_args(candidate)


def start(key: tuple[str, ...]) -> dict:
    """The smallest valid config in which `key` may be set."""
    if key[:2] == ("model", "quantization_options"):  # they apply only to a quantised base
        return {"data": {"train": "x.jsonl"}, "model": {"quantization": "nf4"}}
    return {"data": {"train": "x.jsonl"}}


def test_every_enum_value_reads_as_written_in_yaml_and_overrides(tmp_path):
    fields = dict(enum_fields())
    assert ("train", "mixed_precision") in fields and ("reference", "mode") in fields
    for key, values in fields.items():
        for value in values:
            if (key, value) == (("method", "kind"), "reward") or (key == ("reference", "mode") and value != "auto"):
                continue  # these need other keys set to be valid
            raw = start(key)
            node = raw
            for part in key[:-1]:
                node = node.setdefault(part, {})
            node[key[-1]] = "VALUE"
            # written unquoted, as users write it: `mixed_precision: no`, not `mixed_precision: "no"`
            text = yaml.safe_dump(raw).replace("VALUE", value)
            path = tmp_path / "run.yaml"
            path.write_text(text)
            dotted = ".".join(key)
            for config in (load_config(path), load_config(start(key), [f"{dotted}={value}"])):
                got = config
                for part in key:
                    got = getattr(got, part)
                assert got == value, (dotted, value)


@pytest.mark.parametrize(("word", "expected"), [("yes", True), ("on", True), ("no", False), ("off", False)])
def test_boolean_keys_still_read_yes_and_no(tmp_path, word, expected):
    path = tmp_path / "run.yaml"
    path.write_text(f"data:\n  train: x.jsonl\n  skip_bad_rows: {word}\ntrain:\n  mixed_precision: no\n")
    config = load_config(path, [f"train.resume={word}"])
    assert config.data.skip_bad_rows is expected and config.train.resume is expected
    assert config.train.mixed_precision == "no"
