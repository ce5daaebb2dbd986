"""Readers for the layouts other tools write: each gives the exact canonical rows, finds its columns through the
source's mapping options, is told apart by `format: auto`, and names the file, row and field of a bad row."""

import json
import logging

import pytest
from pydantic import ValidationError

from prefalign.config import DataConfig, DataSource
from prefalign.data import prepare_data
from prefalign.data.formats import FORMATS, detect_format
from prefalign.data.load import DataError, canonical_rows, unpair_rows
from tests.conftest import PEERS, assistant, system, user, write_jsonl


def read(path, fmt="auto", *, skip_bad_rows=False, seed=0, **options):
    """Canonical rows of one file as plain dicts (origin left out), and the report."""
    source = DataSource(path=str(path), format=fmt, **options)
    rows, report = canonical_rows([source], "auto", skip_bad_rows=skip_bad_rows, seed=seed)
    return [{k: v for k, v in row.items() if k != "origin"} for row in rows.to_list()], report


def tool(role: str, text: str) -> dict:
    return {"role": role, "content": text}


WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
SEARCH = {
    "name": "search",
    "description": "Search the web.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}


def schemas(*functions):
    """The canonical `tools` value: bare function schemas wrapped the way chat templates take them."""
    return json.dumps([{"type": "function", "function": f} for f in functions])


# --- TRL: optional system and tools ----------------------------------------------------------------


def test_trl_standard_system_and_tools():
    raw = {
        "prompt": "Q: Weather in Oslo?\nA:",
        "chosen": " Let me check.",
        "rejected": " Sunny, surely.",
        "system": "You may call tools.\n",
        "tools": json.dumps([WEATHER]),
    }
    # Plain text: the system text is one more string printed as it is before the prompt (no template).
    assert FORMATS["trl_standard"].convert(raw) == {
        "prompt": [system("You may call tools.\n"), user("Q: Weather in Oslo?\nA:")],
        "chosen": [assistant(" Let me check.")],
        "rejected": [assistant(" Sunny, surely.")],
        "plain": True,
        "tools": schemas(WEATHER),
    }


def test_trl_conversational_system_and_tools(tmp_path):
    rows = [
        {  # explicit prompt, tools as a list of schemas (already wrapped: kept as they are)
            "prompt": [user("Weather in Oslo?")],
            "chosen": [assistant('{"name": "get_weather", "arguments": {"city": "Oslo"}}')],
            "rejected": [assistant("Sunny.")],
            "system": "Use the tools.",
            "tools": [{"type": "function", "function": WEATHER}],
        },
        {  # implicit prompt (the shared turns), several turns, no tools
            "chosen": [user("Hi."), assistant("Hello!"), user("Name a tree."), assistant("OAK.")],
            "rejected": [user("Hi."), assistant("Hello!"), user("Name a tree."), assistant("oak?")],
            "system": "Be brief.",
            "tools": None,
        },
    ]
    got, report = read(write_jsonl(tmp_path / "conv.jsonl", rows))
    assert report.formats == {"trl_conversational": 2}
    assert got == [
        {
            "prompt": [system("Use the tools."), user("Weather in Oslo?")],
            "chosen": [assistant('{"name": "get_weather", "arguments": {"city": "Oslo"}}')],
            "rejected": [assistant("Sunny.")],
            "plain": False,
            "tools": schemas(WEATHER),
        },
        {
            "prompt": [system("Be brief."), user("Hi."), assistant("Hello!"), user("Name a tree.")],
            "chosen": [assistant("OAK.")],
            "rejected": [assistant("oak?")],
            "plain": False,
            "tools": "",
        },
    ]


def test_system_column_and_system_message():
    raw = {"prompt": [system("Be brief."), user("Hi.")], "chosen": [assistant("Hey.")], "rejected": [assistant("?")]}
    # the same system prompt twice is kept once; two different ones are an error (bad-row cases below)
    assert FORMATS["trl_conversational"].convert({**raw, "system": "Be brief."})["prompt"] == raw["prompt"]


def test_tools_lose_the_nulls_arrow_adds(tmp_path):
    # One JSON file, two rows with different tools: Arrow gives both schemas both rows' properties, as nulls.
    rows = [
        {"prompt": "a", "chosen": "b", "rejected": "c", "tools": [WEATHER]},
        {"prompt": "a", "chosen": "b", "rejected": "c", "tools": [SEARCH, WEATHER]},
        {"prompt": "a", "chosen": "b", "rejected": "c"},
    ]
    got, _ = read(write_jsonl(tmp_path / "tools.jsonl", rows))
    assert [row["tools"] for row in got] == [schemas(WEATHER), schemas(SEARCH, WEATHER), ""]


def test_unpaired_rows_carry_tools(tmp_path):
    rows = [{"prompt": "Weather?", "chosen": "Checking.", "rejected": "Sunny.", "tools": json.dumps(WEATHER)}]
    pairs, _ = canonical_rows(
        [DataSource(path=str(write_jsonl(tmp_path / "p.jsonl", rows)))], "auto", skip_bad_rows=False
    )
    split = unpair_rows(pairs)
    assert split["tools"] == [schemas(WEATHER)] * 2 and split["label"] == [True, False]


# --- Alpaca ----------------------------------------------------------------------------------------

ALPACA = [
    {
        "instruction": "Translate to French.",
        "input": "Good morning.",
        "chosen": "Bonjour.",
        "rejected": "Bonne nuit.",
        "system": "You are a translator.",
        "history": [["Hi.", "Hello! What shall I translate?"], ["Two things.", "Go ahead."]],
        "id": 7,
    },
    {"instruction": "Name a prime.", "input": "", "chosen": "7", "rejected": "9", "system": None, "history": None},
]
ALPACA_CANONICAL = [
    {
        "prompt": [
            system("You are a translator."),
            user("Hi."),
            assistant("Hello! What shall I translate?"),
            user("Two things."),
            assistant("Go ahead."),
            user("Translate to French.\nGood morning."),
        ],
        "chosen": [assistant("Bonjour.")],
        "rejected": [assistant("Bonne nuit.")],
        "plain": False,
        "tools": "",
    },
    {
        "prompt": [user("Name a prime.")],  # no input: no newline
        "chosen": [assistant("7")],
        "rejected": [assistant("9")],
        "plain": False,
        "tools": "",
    },
]


def test_alpaca(tmp_path):
    got, report = read(write_jsonl(tmp_path / "alpaca.jsonl", ALPACA))
    assert report.formats == {"alpaca": 2}
    assert got == ALPACA_CANONICAL


def test_alpaca_columns_mapping(tmp_path):
    # LLaMA-Factory's dataset_info.json `columns`, renaming every column; keys left out keep their default.
    renamed = [
        {"q": r["instruction"], "ctx": r["input"], "good": r["chosen"], "bad": r["rejected"], "sys": r["system"],
         "turns": r["history"]}
        for r in ALPACA
    ]  # fmt: skip
    columns = {"prompt": "q", "query": "ctx", "chosen": "good", "rejected": "bad", "system": "sys", "history": "turns"}
    path = write_jsonl(tmp_path / "renamed.jsonl", renamed)
    got, report = read(path, columns=columns)
    assert report.formats == {"alpaca": 2} and got == ALPACA_CANONICAL
    with pytest.raises(DataError, match=r"columns\.instructions is not a key format alpaca reads; known: prompt"):
        read(path, "alpaca", columns={"instructions": "q"})


# --- ShareGPT (LLaMA-Factory) ----------------------------------------------------------------------

SHAREGPT = [
    {  # a system turn, then a tool round trip: function_call -> assistant, observation -> tool
        "conversations": [
            {"from": "system", "value": "You can look up the weather."},
            {"from": "human", "value": "Is it raining in Oslo?"},
            {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
            {"from": "observation", "value": '{"rain": true}'},
        ],
        "chosen": {"from": "gpt", "value": "Yes, it is raining in Oslo."},
        "rejected": {"from": "gpt", "value": "No idea."},
        "tools": json.dumps([WEATHER]),
    },
    {  # the system prompt from the system column, several plain turns
        "conversations": [
            {"from": "human", "value": "Hi."},
            {"from": "gpt", "value": "Hello!"},
            {"from": "human", "value": "Name a river."},
        ],
        "chosen": {"from": "gpt", "value": "The Nile."},
        "rejected": {"from": "gpt", "value": "A river."},
        "system": "Be brief.",
    },
]
SHAREGPT_CANONICAL = [
    {
        "prompt": [
            system("You can look up the weather."),
            user("Is it raining in Oslo?"),
            assistant('{"name": "get_weather", "arguments": {"city": "Oslo"}}'),
            tool("tool", '{"rain": true}'),
        ],
        "chosen": [assistant("Yes, it is raining in Oslo.")],
        "rejected": [assistant("No idea.")],
        "plain": False,
        "tools": schemas(WEATHER),
    },
    {
        "prompt": [system("Be brief."), user("Hi."), assistant("Hello!"), user("Name a river.")],
        "chosen": [assistant("The Nile.")],
        "rejected": [assistant("A river.")],
        "plain": False,
        "tools": "",
    },
]


def test_sharegpt(tmp_path):
    got, report = read(write_jsonl(tmp_path / "sharegpt.jsonl", SHAREGPT))
    assert report.formats == {"sharegpt": 2}
    assert got == SHAREGPT_CANONICAL


def test_sharegpt_columns_and_tags(tmp_path):
    # OpenAI-style messages under other names, mapped the way dataset_info.json does.
    role = {"system": "system", "human": "user", "gpt": "assistant", "function_call": "call", "observation": "result"}

    def turn(t):
        return {"role": role[t["from"]], "content": t["value"]}

    rows = [
        {"dialog": [turn(t) for t in r["conversations"]], "best": turn(r["chosen"]), "worst": turn(r["rejected"]),
         "sys": r.get("system"), "functions": r.get("tools")}
        for r in SHAREGPT
    ]  # fmt: skip
    columns = {"messages": "dialog", "chosen": "best", "rejected": "worst", "system": "sys", "tools": "functions"}
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
            "function_tag": "call", "observation_tag": "result"}  # fmt: skip
    got, report = read(write_jsonl(tmp_path / "mapped.jsonl", rows), columns=columns, tags=tags)
    assert report.formats == {"sharegpt": 2} and got == SHAREGPT_CANONICAL


def test_sharegpt_kto(tmp_path):
    rows = [
        {
            "conversations": [
                {"from": "human", "value": "Hi."},
                {"from": "gpt", "value": "Hello!"},
                {"from": "human", "value": "Name a bird."},
                {"from": "gpt", "value": "A robin."},
            ],
            "kto_tag": True,
        },
        {
            "conversations": [{"from": "human", "value": "Name a bird."}, {"from": "gpt", "value": "no"}],
            "kto_tag": False,
        },
    ]
    got, report = read(write_jsonl(tmp_path / "kto.jsonl", rows), columns={"kto_tag": "kto_tag"})
    assert report.formats == {"sharegpt_kto": 2}
    assert got == [
        {
            "prompt": [user("Hi."), assistant("Hello!"), user("Name a bird.")],
            "completion": [assistant("A robin.")],
            "label": True,
            "plain": False,
            "tools": "",
        },
        {
            "prompt": [user("Name a bird.")],
            "completion": [assistant("no")],
            "label": False,
            "plain": False,
            "tools": "",
        },
    ]


# --- Axolotl chat_template.default -----------------------------------------------------------------

AXOLOTL_CANONICAL = [
    {
        "prompt": [system("Be brief."), user("Hi."), assistant("Hello!"), user("Name a planet.")],
        "chosen": [assistant("Mars.")],
        "rejected": [assistant("Pluto.")],
        "plain": False,
        "tools": "",
    },
    {
        "prompt": [user("Name a metal.")],
        "chosen": [assistant("Iron.")],
        "rejected": [assistant("Wood.")],
        "plain": False,
        "tools": "",
    },
]


def test_axolotl_chat_template_defaults(tmp_path):
    rows = [
        {
            "messages": [system("Be brief."), user("Hi."), assistant("Hello!"), user("Name a planet.")],
            "chosen": assistant("Mars."),
            "rejected": assistant("Pluto."),
        },
        # a string prompt is one user turn; a string answer an assistant turn
        {"messages": "Name a metal.", "chosen": assistant("Iron."), "rejected": assistant("Wood.")},
    ]
    got, report = read(write_jsonl(tmp_path / "axolotl.jsonl", rows[:1]))
    assert report.formats == {"axolotl_chat_template": 1} and got == AXOLOTL_CANONICAL[:1]
    # (a string prompt cannot share a file column with message lists: the reader on its own)
    read_alone = {k: v for k, v in AXOLOTL_CANONICAL[1].items() if k != "tools"}  # loading adds tools ""
    assert FORMATS["axolotl_chat_template"].convert(rows[1]) == read_alone
    assert FORMATS["axolotl_chat_template"].convert({**rows[1], "chosen": "Iron.", "rejected": "Wood."}) == read_alone


def test_axolotl_chat_template_mapping_options(tmp_path):
    def turn(role, text):
        return {"from": role, "value": text}

    rows = [
        {
            "conversation": [turn("system", "Be brief."), turn("human", "Hi."), turn("gpt", "Hello!"),
                             turn("human", "Name a planet.")],
            "good": turn("gpt", "Mars."),
            "bad": [turn("human", "Name a planet."), turn("gpt", "Pluto.")],  # a list: its last message counts
        },
        {"conversation": [turn("user", "Name a metal.")], "good": turn("assistant", "Iron."),
         "bad": [turn("assistant", "Wood.")]},
    ]  # fmt: skip
    options = {
        "field_messages": "conversation",
        "field_chosen": "good",
        "field_rejected": "bad",
        "message_property_mappings": {"role": "from", "content": "value"},
        "roles": {"user": ["human"], "assistant": ["gpt"]},  # added to the defaults (user, assistant, system, tool)
    }
    path = write_jsonl(tmp_path / "mapped.jsonl", rows)
    got, report = read(path, **options)  # auto: only axolotl_chat_template reads these options
    assert report.formats == {"axolotl_chat_template": 2} and got == AXOLOTL_CANONICAL
    # a role the mapping does not know is named by row and field
    with pytest.raises(DataError, match=r"row 1: field conversation\[1\]\.from: role 'human' is not one of the roles"):
        read(path, **{**options, "roles": None})


# --- Anthropic HH ----------------------------------------------------------------------------------

HH_PROMPT = "\n\nHuman: How do I bake bread?\n\nAssistant: Do you have yeast?\n\nHuman: Yes, one packet."
HH = [
    {
        "chosen": HH_PROMPT + "\n\nAssistant: Mix flour, water, salt and the yeast; knead, let it rise, bake at 220C.",
        "rejected": HH_PROMPT + "\n\nAssistant: Buy some bread.",
    },
    {"chosen": "\n\nHuman: Hi!\n\nAssistant: Hello there.", "rejected": "\n\nHuman: Hi!\n\nAssistant: What?"},
]
HH_CANONICAL = [
    {
        "prompt": [user("How do I bake bread?"), assistant("Do you have yeast?"), user("Yes, one packet.")],
        "chosen": [assistant("Mix flour, water, salt and the yeast; knead, let it rise, bake at 220C.")],
        "rejected": [assistant("Buy some bread.")],
        "plain": False,
        "tools": "",
    },
    {
        "prompt": [user("Hi!")],
        "chosen": [assistant("Hello there.")],
        "rejected": [assistant("What?")],
        "plain": False,
        "tools": "",
    },
]


def test_hh_rlhf(tmp_path):
    got, report = read(write_jsonl(tmp_path / "hh.jsonl", HH))
    assert report.formats == {"hh_rlhf": 2}
    assert got == HH_CANONICAL


# --- format: auto ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(ALPACA, "alpaca"), (SHAREGPT, "sharegpt"), (HH, "hh_rlhf")],
    ids=["alpaca", "sharegpt", "hh_rlhf"],
)
def test_auto_detection_logs_its_choice(tmp_path, caplog, rows, expected):
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    with caplog.at_level(logging.INFO, logger="prefalign.data.load"):
        read(path)
    assert f"{path}: detected format {expected}" in caplog.text


def test_ambiguous_layout_lists_the_columns_and_formats(tmp_path):
    # chosen/rejected as message lists and a messages column: TRL conversational and Axolotl both read it.
    row = {"messages": [user("Hi.")], "chosen": [assistant("Hello!")], "rejected": [assistant("Go.")]}
    path = write_jsonl(tmp_path / "both.jsonl", [row])
    with pytest.raises(DataError) as info:
        read(path)
    message = str(info.value)
    assert str(path) in message and "[chosen, messages, rejected]" in message
    assert "fit several formats (trl_conversational, axolotl_chat_template)" in message
    # naming the format settles it
    got, _ = read(path, "axolotl_chat_template")
    assert got[0]["prompt"] == [user("Hi.")] and got[0]["chosen"] == [assistant("Hello!")]


def test_unknown_layout_names_the_close_formats(tmp_path):
    path = write_jsonl(tmp_path / "half.jsonl", [{"instruction": "Name a prime.", "chosen": "7", "score": 1}])
    with pytest.raises(DataError) as info:
        read(path)
    message = str(info.value)
    assert "cannot tell the data format from the columns [chosen, instruction, score]" in message
    assert "alpaca (lacks rejected)" in message and "Set format to one of: trl_standard" in message
    # right columns, wrong roles: the message says what the close format misses
    with pytest.raises(ValueError, match=r"sharegpt \(conversations\[0\] has no 'from' key\)"):
        detect_format({"conversations": [user("Hi.")], "chosen": assistant("a"), "rejected": assistant("b")}, "x")


def test_options_narrow_detection_and_foreign_options_are_errors(tmp_path):
    path = write_jsonl(tmp_path / "sharegpt.jsonl", SHAREGPT)
    # auto: options only some formats read leave only those to choose from
    with pytest.raises(DataError, match="among the formats that read field_messages; closest: axolotl_chat_template"):
        read(path, field_messages="conversations")
    # a named format given an option it does not read: the error names the option and who reads it
    with pytest.raises(DataError, match=r"option roles is not read by format sharegpt .* by axolotl_chat_template"):
        read(path, "sharegpt", roles={"user": ["human"]})
    with pytest.raises(DataError, match="option columns is not read by format hh_rlhf"):
        read(path, "hh_rlhf", columns={"prompt": "q"})
    with pytest.raises(DataError, match=r"tags\.speaker_tag is not a key format sharegpt reads"):
        read(path, tags={"speaker_tag": "from"})


# --- fraction and max_rows -------------------------------------------------------------------------


def numbered_rows(n):
    return [{"prompt": f"Q{i}", "chosen": f"A{i}", "rejected": f"B{i}"} for i in range(1, n + 1)]


def picked(rows):
    return [int(row["prompt"][0]["content"][1:]) for row in rows]


def test_fraction_is_a_seeded_subset_in_file_order(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", numbered_rows(20))
    first, report = read(path, fraction=0.25, seed=1)
    again, _ = read(path, fraction=0.25, seed=1)
    other, _ = read(path, fraction=0.25, seed=2)
    assert len(first) == 5 and report.rows_read == 5
    assert picked(first) == picked(again) == sorted(picked(first)) and picked(first) != picked(other)
    # origin keeps the file's row number
    rows, _ = canonical_rows([DataSource(path=str(path), fraction=0.25)], "auto", skip_bad_rows=False, seed=1)
    assert rows["origin"] == [f"{path}: row {i}" for i in picked(first)]


def test_max_rows_keeps_the_first_rows(tmp_path):
    raw = numbered_rows(6)
    raw[4] = {"prompt": "Q5", "chosen": "A5"}  # a bad row outside the kept rows is never read
    path = write_jsonl(tmp_path / "rows.jsonl", raw)
    got, report = read(path, max_rows=3)
    assert picked(got) == [1, 2, 3] and report.rows_read == 3
    with pytest.raises(DataError, match=f"{path}: row 5: field rejected: missing"):
        read(path, max_rows=5)
    # with a fraction: the first max_rows of the rows the fraction keeps
    path = write_jsonl(tmp_path / "clean.jsonl", numbered_rows(12))
    half, _ = read(path, fraction=0.5, seed=3)
    both, _ = read(path, fraction=0.5, max_rows=2, seed=3)
    assert len(half) == 6 and picked(both) == picked(half)[:2]


@pytest.mark.parametrize("options", [{"fraction": 0}, {"fraction": 1.5}, {"max_rows": 0}])
def test_fraction_and_max_rows_are_checked(options):
    with pytest.raises(ValidationError):
        DataSource(path="x.jsonl", **options)


# --- bad rows --------------------------------------------------------------------------------------


def bad_row_cases():
    """(name, rows, options, bad row number (1-based), field named in the error, message)."""
    sharegpt = [dict(r) for r in SHAREGPT]
    turns = sharegpt[1]["conversations"]
    two_humans = {**sharegpt[1], "conversations": [turns[0], turns[0], turns[2]]}
    ends_with_gpt = {**sharegpt[1], "conversations": turns[:2]}
    user_answer = {**sharegpt[1], "rejected": {"from": "human", "value": "?"}}
    hh_other_prompt = {**HH[0], "rejected": "\n\nHuman: How do I bake a cake?\n\nAssistant: Buy one."}
    hh_no_answer = {**HH[1], "chosen": "\n\nHuman: Hi!\n\nAssistant: Hello.\n\nHuman: And?"}
    return [
        ("sharegpt-alternation", [sharegpt[0], two_humans], {}, 2, "conversations[1].from", "expected 'gpt' or"),
        ("sharegpt-ends-with-answer", [sharegpt[0], ends_with_gpt], {}, 2, "conversations", "must end with a 'human'"),
        ("sharegpt-answer-role", [user_answer, sharegpt[0]], {}, 1, "rejected.from", "expected 'gpt' or"),
        ("sharegpt-bad-tools", [{**sharegpt[0], "tools": "[{"}, sharegpt[1]], {}, 1, "tools", "not valid JSON"),
        ("alpaca-history", [ALPACA[0], {**ALPACA[1], "history": [["only one"]]}], {}, 2, "history[0]", "pair"),
        ("alpaca-empty", [ALPACA[0], {**ALPACA[1], "chosen": " "}], {}, 2, "chosen", "empty completion"),
        ("hh-prompts-differ", [HH[1], hh_other_prompt], {}, 2, "rejected", "differ from chosen's"),
        ("hh-no-answer", [hh_no_answer, HH[1]], {}, 1, "chosen", "must end with an"),
        ("trl-system-twice", [{"prompt": [system("a"), user("b")], "chosen": [assistant("c")],
                               "rejected": [assistant("d")], "system": "e"}], {}, 1, "system", "another system"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "options", "bad", "field", "message"),
    [case[1:] for case in bad_row_cases()],
    ids=[case[0] for case in bad_row_cases()],
)
def test_bad_row_is_named(tmp_path, rows, options, bad, field, message):
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    with pytest.raises(DataError) as info:
        read(path, **options)
    assert f"{path}: row {bad}: field {field}: " in str(info.value) and message in str(info.value)
    kept, report = read(path, skip_bad_rows=True, **options)
    assert len(kept) == len(rows) - 1 and report.bad_rows[0].startswith(f"{path}: row {bad}: field {field}")


# --- peer data: LLaMA-Factory's demo files as they are ---------------------------------------------

DPO_DEMO = PEERS / "dpo_en_demo.json"
KTO_DEMO = PEERS / "kto_en_demo.json"
ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


@pytest.mark.skipif(not DPO_DEMO.is_file(), reason="no peer data")
def test_llama_factory_dpo_demo_loads_as_is():
    raw = json.loads(DPO_DEMO.read_text())
    rows, report = read(DPO_DEMO)
    assert report.formats == {"sharegpt": len(raw)} == {"sharegpt": 300} and not report.bad_rows
    for row, source in zip(rows, raw, strict=True):
        assert row["prompt"] == [{"role": ROLES[t["from"]], "content": t["value"]} for t in source["conversations"]]
        assert row["chosen"] == [assistant(source["chosen"]["value"])]
        assert row["rejected"] == [assistant(source["rejected"]["value"])]
    assert sum(row["prompt"][0]["role"] == "system" for row in rows) == 80
    assert max(len(row["prompt"]) for row in rows) == 13


@pytest.mark.skipif(not KTO_DEMO.is_file(), reason="no peer data")
def test_llama_factory_kto_demo_with_its_dataset_info_mapping():
    # The columns and tags LLaMA-Factory registers it with; with no options it reads as messages_label.
    columns = {"messages": "messages", "kto_tag": "label"}
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    mapped, report = read(KTO_DEMO, columns=columns, tags=tags)
    plain, plain_report = read(KTO_DEMO)
    assert report.formats == {"sharegpt_kto": 300} and plain_report.formats == {"messages_label": 300}
    assert mapped == plain


@pytest.mark.skipif(not DPO_DEMO.is_file(), reason="no peer data")
def test_peer_row_tokenises_with_every_turn(tmp_path, tokenizer):
    """One multi-turn peer row through prepare_data: the prompt the model sees keeps every turn, in order."""
    raw = json.loads(DPO_DEMO.read_text())
    row = min((r for r in raw if len(r["conversations"]) >= 5), key=lambda r: len(json.dumps(r)))
    path = tmp_path / "one.json"
    path.write_text(json.dumps([row]))
    config = DataConfig(train=str(path), max_length=8192, max_prompt_length=None)
    data = prepare_data(config, tokenizer, seed=0)
    assert data.report.formats == {"sharegpt": 1} and len(data.train) == 1
    example = data.train[0]
    messages = [{"role": ROLES[t["from"]], "content": t["value"]} for t in row["conversations"]]
    expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(example["prompt_ids"]) == expected
    assert tokenizer.decode(example["chosen_ids"]) == row["chosen"]["value"] + "<|im_end|>"
    prompt = tokenizer.decode(example["prompt_ids"])
    positions = [prompt.index(t["value"]) for t in row["conversations"]]
    assert positions == sorted(positions)
    assert prompt.count("<|im_start|>user") == sum(t["from"] == "human" for t in row["conversations"]) >= 3


def test_trl_formats_read_renamed_columns(tmp_path):
    # AutoTrain's column flags and Axolotl's chatml.intel (`question`) rename the TRL columns.
    rows = [{"question": "Q1", "better": "good", "worse": "bad", "sys": "Be brief."}]
    columns = {"prompt": "question", "chosen": "better", "rejected": "worse", "system": "sys"}
    # (these renamed columns fit alpaca too: its `prompt` is the instruction; the format names which is meant)
    got, report = read(write_jsonl(tmp_path / "pairs.jsonl", rows), "trl_standard", columns=columns)
    assert report.formats == {"trl_standard": 1}
    assert got[0]["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"}]
    assert got[0]["chosen"] == [assistant("good")] and got[0]["rejected"] == [assistant("bad")]
    # conversational, implicit prompt, renamed
    rows = [{"good": [user("Hi"), assistant("Hello!")], "bad": [user("Hi"), assistant("Go away.")]}]
    got, report = read(write_jsonl(tmp_path / "conv.jsonl", rows), columns={"chosen": "good", "rejected": "bad"})
    assert report.formats == {"trl_conversational": 1}
    assert got[0]["prompt"] == [user("Hi")] and got[0]["rejected"] == [assistant("Go away.")]
    # unpaired, renamed label and completion
    rows = [{"prompt": "Q", "answer": "A", "ok": True}, {"prompt": "Q", "answer": "B", "ok": False}]
    got, report = read(write_jsonl(tmp_path / "kto.jsonl", rows), columns={"completion": "answer", "label": "ok"})
    assert report.formats == {"trl_unpaired_standard": 2}
    assert [row["label"] for row in got] == [True, False]
    with pytest.raises(DataError, match=r"columns\.question is not a key format trl_standard reads"):
        read(
            write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}]),
            "trl_standard",
            columns={"question": "prompt"},
        )
