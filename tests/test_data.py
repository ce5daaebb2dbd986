"""Readers and loading: every format and file type becomes the same canonical rows; bad rows are named."""

import json

import pandas as pd
import pytest

from prefalign.config import DataConfig, DataSource
from prefalign.data import prepare_data
from prefalign.data.formats import FORMATS, RowError, detect_format
from prefalign.data.load import DataError, canonical_rows
from tests.conftest import TOY_ANSWERS, TOY_QUESTIONS, assistant, system, toy_rows, user, write_jsonl


def read(path, fmt="auto", *, skip_bad_rows=False, default_format="auto"):
    """Canonical rows of one file as plain dicts, and the report."""
    rows, report = canonical_rows([DataSource(path=str(path), format=fmt)], default_format, skip_bad_rows=skip_bad_rows)
    return rows.to_list(), report


def without_origin(rows):
    return [{k: v for k, v in row.items() if k != "origin"} for row in rows]


def loaded(canonical):
    """Reader rows as loading gives them: every row has `tools` ("" when it offers none)."""
    return [{**row, "tools": ""} for row in canonical]


STANDARD = [
    {"prompt": "Q: Name a colour.\nA:", "chosen": " It is RED.", "rejected": " it is red I think"},
    {"prompt": "Q: Name a fruit.\nA:", "chosen": " It is APPLE.", "rejected": " it is apple I think"},
    {"prompt": "Translate 'chat': ", "chosen": "cat", "rejected": "chat, a French word"},
]
STANDARD_CANONICAL = [
    {
        "prompt": [user("Q: Name a colour.\nA:")],
        "chosen": [assistant(" It is RED.")],
        "rejected": [assistant(" it is red I think")],
        "plain": True,
    },
    {
        "prompt": [user("Q: Name a fruit.\nA:")],
        "chosen": [assistant(" It is APPLE.")],
        "rejected": [assistant(" it is apple I think")],
        "plain": True,
    },
    {
        "prompt": [user("Translate 'chat': ")],
        "chosen": [assistant("cat")],
        "rejected": [assistant("chat, a French word")],
        "plain": True,
    },
]

CONVERSATIONAL = [
    {
        "prompt": [user("Name a colour.")],
        "chosen": [assistant("It is RED.")],
        "rejected": [assistant("red?")],
    },
    {
        "prompt": [system("Be brief."), user("Hi."), assistant("Hello!"), user("Name a tree.")],
        "chosen": [assistant("OAK.")],
        "rejected": [assistant("oak, maybe")],
    },
]
CONVERSATIONAL_CANONICAL = [{**row, "plain": False} for row in CONVERSATIONAL]


# --- readers ---------------------------------------------------------------------------------------


def test_trl_standard_reader():
    assert FORMATS["trl_standard"].kind == "paired"
    for raw, expected in zip(STANDARD, STANDARD_CANONICAL, strict=True):
        assert FORMATS["trl_standard"].convert(raw) == expected


def test_trl_conversational_explicit_prompt():
    for raw, expected in zip(CONVERSATIONAL, CONVERSATIONAL_CANONICAL, strict=True):
        assert FORMATS["trl_conversational"].convert(raw) == expected


def test_implicit_prompt_single_turn():
    raw = {
        "chosen": [user("Name a colour."), assistant("It is RED.")],
        "rejected": [user("Name a colour."), assistant("red?")],
    }
    assert FORMATS["trl_conversational"].convert(raw) == {
        "prompt": [user("Name a colour.")],
        "chosen": [assistant("It is RED.")],
        "rejected": [assistant("red?")],
        "plain": False,
    }


def test_implicit_prompt_keeps_every_shared_turn():
    shared = [system("Be brief."), user("Hi."), assistant("Hello! How can I help?"), user("Name a tree.")]
    raw = {"chosen": [*shared, assistant("OAK.")], "rejected": [*shared, assistant("oak, maybe")]}
    assert FORMATS["trl_conversational"].convert(raw) == {
        "prompt": shared,
        "chosen": [assistant("OAK.")],
        "rejected": [assistant("oak, maybe")],
        "plain": False,
    }


def test_implicit_prompt_with_identical_earlier_answers_and_uneven_lengths():
    # The answers diverge after several turns, and the rejected conversation goes on longer.
    shared = [user("Hi."), assistant("Hello!"), user("Name a fish.")]
    raw = {
        "chosen": [*shared, assistant("TROUT.")],
        "rejected": [*shared, assistant("trout"), user("Sure?"), assistant("yes")],
    }
    converted = FORMATS["trl_conversational"].convert(raw)
    assert converted["prompt"] == shared
    assert converted["chosen"] == [assistant("TROUT.")]
    assert converted["rejected"] == [assistant("trout"), user("Sure?"), assistant("yes")]


def test_implicit_prompt_needs_a_shared_prefix():
    raw = {"chosen": [user("a"), assistant("b")], "rejected": [user("c"), assistant("d")]}
    with pytest.raises(RowError) as info:
        FORMATS["trl_conversational"].convert(raw)
    assert info.value.field == "chosen"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (STANDARD[0], "trl_standard"),
        (CONVERSATIONAL[0], "trl_conversational"),
        (
            {"chosen": [user("q"), assistant("a")], "rejected": [user("q"), assistant("b")]},
            "trl_conversational",
        ),
    ],
)
def test_detect_format(raw, expected):
    assert detect_format(raw, "x.jsonl").name == expected


def test_auto_detection_through_canonical_rows(tmp_path):
    rows, report = read(write_jsonl(tmp_path / "standard.jsonl", STANDARD))
    assert without_origin(rows) == loaded(STANDARD_CANONICAL)
    assert report.formats == {"trl_standard": 3} and report.rows_read == 3
    rows, report = read(write_jsonl(tmp_path / "conversational.jsonl", CONVERSATIONAL))
    assert without_origin(rows) == loaded(CONVERSATIONAL_CANONICAL)
    assert report.formats == {"trl_conversational": 2}
    # the data-wide default format applies to sources that say `auto`
    rows, report = read(tmp_path / "standard.jsonl", default_format="trl_standard")
    assert report.formats == {"trl_standard": 3}


def test_unknown_layout_lists_the_columns(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a", "score": 1}])
    with pytest.raises(ValueError, match="cannot tell the data format") as info:
        detect_format({"question": "q", "answer": "a"}, "qa.jsonl")
    assert "[answer, question]" in str(info.value)
    # through loading it is a DataError (what the CLI reports as an error rather than a traceback)
    with pytest.raises(DataError) as info:
        read(path)
    message = str(info.value)
    assert str(path) in message and "[answer, question, score]" in message


def test_unknown_format_name(tmp_path):
    path = write_jsonl(tmp_path / "standard.jsonl", STANDARD)
    with pytest.raises(DataError, match="unknown format 'dpo_magic'"):
        read(path, fmt="dpo_magic")


# --- file types ------------------------------------------------------------------------------------


def with_extras(rows):
    return [{"id": i, "source": f"s{i}", **row, "score": 0.5 + i} for i, row in enumerate(rows)]


@pytest.mark.parametrize("kind", ["json", "jsonl", "csv", "parquet"])
def test_file_types_give_the_same_standard_rows(tmp_path, kind):
    raw = with_extras(STANDARD)
    path = tmp_path / f"pairs.{kind}"
    if kind == "json":
        path.write_text(json.dumps(raw, indent=1))
    elif kind == "jsonl":
        write_jsonl(path, raw)
    elif kind == "csv":
        pd.DataFrame(raw).to_csv(path, index=False)
    else:
        pd.DataFrame(raw).to_parquet(path, index=False)
    rows, report = read(path)
    assert without_origin(rows) == loaded(STANDARD_CANONICAL)
    assert [row["origin"] for row in rows] == [f"{path}: row {i}" for i in (1, 2, 3)]
    assert report.formats == {"trl_standard": 3} and report.bad_rows == []


@pytest.mark.parametrize("kind", ["json", "jsonl", "parquet"])
def test_file_types_give_the_same_conversational_rows(tmp_path, kind):
    raw = with_extras(CONVERSATIONAL)
    path = tmp_path / f"pairs.{kind}"
    if kind == "json":
        path.write_text(json.dumps(raw))
    elif kind == "jsonl":
        write_jsonl(path, raw)
    else:
        pd.DataFrame(raw).to_parquet(path, index=False)
    rows, report = read(path)
    assert without_origin(rows) == loaded(CONVERSATIONAL_CANONICAL)
    assert report.formats == {"trl_conversational": 2}


def test_sources_of_different_formats_are_concatenated(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", STANDARD)
    b = tmp_path / "b.parquet"
    pd.DataFrame(CONVERSATIONAL).to_parquet(b, index=False)
    rows, report = canonical_rows([DataSource(path=str(a)), DataSource(path=str(b))], "auto", skip_bad_rows=False)
    rows = rows.to_list()
    assert without_origin(rows) == loaded(STANDARD_CANONICAL + CONVERSATIONAL_CANONICAL)
    assert rows[3]["origin"] == f"{b}: row 1"
    assert report.formats == {"trl_standard": 3, "trl_conversational": 2} and report.rows_read == 5


def test_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read(tmp_path / "absent.jsonl")
    odd = tmp_path / "pairs.txt"
    odd.write_text("prompt chosen rejected\n")
    with pytest.raises(DataError, match="unsupported file type"):
        read(odd)


# --- bad rows --------------------------------------------------------------------------------------


def bad_row_cases():
    """(name, rows, bad row number (1-based), field named in the error)."""
    good = [dict(row) for row in STANDARD]
    missing = [good[0], {"prompt": "p", "chosen": "c"}, good[2]]
    empty = [good[0], good[1], {**good[2], "rejected": "   "}]
    number = [good[0], {**good[1], "chosen": 7}, good[2]]
    # a third pair unlike the first (a repeated pair is a duplicate, which skipping bad rows drops too)
    conv = [dict(row) for row in CONVERSATIONAL] + [{**CONVERSATIONAL[0], "prompt": [user("Name a fruit.")]}]
    bad_content = [conv[0], conv[1], {**conv[2], "rejected": [{"role": "assistant", "content": 3}]}]
    empty_message = [conv[0], {**conv[1], "chosen": [assistant("")]}, conv[2]]
    no_messages = [conv[0], {**conv[1], "rejected": []}, conv[2]]
    return [
        ("missing", missing, 2, "rejected"),
        ("empty", empty, 3, "rejected"),
        ("number", number, 2, "chosen"),
        ("content-not-a-string", bad_content, 3, "rejected[0].content"),
        ("empty-message", empty_message, 2, "chosen"),
        ("no-messages", no_messages, 2, "rejected"),
    ]


@pytest.mark.parametrize(("rows", "bad", "field"), [case[1:] for case in bad_row_cases()],
                         ids=[case[0] for case in bad_row_cases()])  # fmt: skip
def test_bad_row_is_named(tmp_path, rows, bad, field):
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(DataError) as info:
        read(path)
    message = str(info.value)
    assert f"{path}: row {bad}: field {field}" in message
    assert "1 unusable row" in message

    kept, report = read(path, skip_bad_rows=True)
    assert report.rows_read == 3
    assert len(report.bad_rows) == 1 and report.bad_rows[0].startswith(f"{path}: row {bad}: field {field}")
    assert [row["origin"] for row in kept] == [f"{path}: row {i}" for i in (1, 2, 3) if i != bad]


def test_bad_rows_in_csv_and_several_at_once(tmp_path):
    raw = [*STANDARD, {"prompt": "p", "chosen": "", "rejected": "r"}, {"prompt": "p", "chosen": "c"}]
    path = tmp_path / "pairs.csv"
    pd.DataFrame(raw).to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        read(path)
    message = str(info.value)
    assert "2 unusable row(s)" in message
    assert f"{path}: row 4: field chosen" in message and f"{path}: row 5: field rejected" in message
    kept, report = read(path, skip_bad_rows=True)
    assert without_origin(kept) == loaded(STANDARD_CANONICAL)
    assert [entry.split(": field")[0] for entry in report.bad_rows] == [f"{path}: row 4", f"{path}: row 5"]


# --- prepare_data: splits --------------------------------------------------------------------------


def prompts(canonical) -> list[str]:
    return [row["prompt"][0]["content"] for row in canonical]


def test_eval_fraction_split_is_seeded(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    config = DataConfig(train=str(path), eval_fraction=0.25, max_length=128)
    first = prepare_data(config, tokenizer, seed=3)
    again = prepare_data(config, tokenizer, seed=3)
    other = prepare_data(config, tokenizer, seed=4)

    assert len(first.train) == 12 and len(first.eval) == 4 and len(first.eval_prompts) == 4
    assert first.train["prompt_ids"] == again.train["prompt_ids"]
    assert first.eval["chosen_ids"] == again.eval["chosen_ids"]
    assert prompts(first.eval_prompts) == prompts(again.eval_prompts)
    assert set(prompts(first.eval_prompts)) != set(prompts(other.eval_prompts))
    # train and eval partition the rows; eval rows are tokenised from the held-out prompts
    train_texts = {tokenizer.decode(ids) for ids in first.train["prompt_ids"]}
    eval_texts = [tokenizer.decode(ids) for ids in first.eval["prompt_ids"]]
    held_out = prompts(first.eval_prompts)
    assert all(q in text for q, text in zip(held_out, eval_texts, strict=True))
    in_train = {q for q in TOY_QUESTIONS if any(q in text for text in train_texts)}
    assert in_train.isdisjoint(held_out) and in_train | set(held_out) == set(TOY_QUESTIONS)
    assert first.report.rows_read == 16 and first.report.formats == {"trl_conversational": 16}
    assert set(first.train.column_names) == {"prompt_ids", "chosen_ids", "rejected_ids", "truncated"}


def test_explicit_eval_source_is_used(tmp_path, tokenizer):
    rows = toy_rows()
    train = write_jsonl(tmp_path / "train.jsonl", rows[:10])
    evaluation = write_jsonl(tmp_path / "eval.jsonl", rows[10:])
    config = DataConfig(train=str(train), eval=str(evaluation), eval_fraction=0.5, max_length=128)
    data = prepare_data(config, tokenizer, seed=0)
    assert len(data.train) == 10 and len(data.eval) == 6  # eval_fraction is ignored when data.eval is given
    assert prompts(data.eval_prompts) == TOY_QUESTIONS[10:]
    chosen = [tokenizer.decode(ids) for ids in data.eval["chosen_ids"]]
    assert chosen == [f"It is {answer.upper()}.<|im_end|>" for answer in TOY_ANSWERS[10:]]
    assert data.report.rows_read == 16


def test_no_eval_without_fraction_or_source(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "toy.jsonl", toy_rows(conversational=False))
    data = prepare_data(DataConfig(train=str(path), max_length=128), tokenizer, seed=0)
    assert data.eval is None and data.eval_prompts is None and len(data.train) == 16
    assert data.report.formats == {"trl_standard": 16}


def test_all_rows_dropped_is_an_error(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    with pytest.raises(DataError, match="no usable rows"):
        prepare_data(DataConfig(train=str(path), max_length=8, max_prompt_length=None), tokenizer, seed=0)
