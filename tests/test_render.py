"""Rendering with the real SmolLM2 tokenizer: chat template, BOS, end-of-turn, truncation, scoring, cache."""

import copy
from collections.abc import Mapping

import datasets
import pytest
import torch

from prefalign.config import DataSource
from prefalign.data import render as render_module
from prefalign.data.formats import FORMATS
from prefalign.data.layout import padded
from prefalign.data.load import DataError, canonical_rows
from prefalign.data.render import Renderer, RenderSettings, tokenize_rows
from tests.conftest import TOY_ANSWERS, TOY_QUESTIONS, assistant, system, toy_rows, user, write_jsonl

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def settings(max_length=4096, max_prompt_length=None, max_completion_length=None, template=None):
    return RenderSettings(template, max_length, max_prompt_length, max_completion_length)


def render(tokenizer, row, **limits):
    return Renderer(tokenizer, settings(**limits)).render(row)


def template_ids(tokenizer, messages, **kwargs) -> list[int]:
    """The tokenizer's own tokenisation of its chat template (a BatchEncoding in transformers 5)."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
    return list(out["input_ids"] if isinstance(out, Mapping) else out)


def encode(tokenizer, text) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def conversational(i):
    return FORMATS["trl_conversational"].convert(toy_rows()[i])


def plain(i):
    return FORMATS["trl_standard"].convert(toy_rows(conversational=False)[i])


MULTI_TURN = {
    "prompt": [
        system("You answer in one word."),
        user("Hi there."),
        assistant("Hello!"),
        user("Name a colour."),
        assistant("Blue."),
        user("Another one?"),
    ],
    "chosen": [assistant("GREEN.")],
    "rejected": [assistant("green i guess")],
    "plain": False,
}


def as_dataset(rows):
    return datasets.Dataset.from_list([{**row, "origin": f"mem: row {i + 1}"} for i, row in enumerate(rows)])


# --- message rows: the chat template ---------------------------------------------------------------


@pytest.mark.parametrize("row", [conversational(0), conversational(7), MULTI_TURN], ids=["toy0", "toy7", "multi"])
def test_prompt_is_the_tokenizers_chat_template(tokenizer, row):
    rendered = render(tokenizer, row)
    assert rendered["prompt_ids"] == template_ids(tokenizer, row["prompt"], add_generation_prompt=True)
    text = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
    assert text.endswith(f"{IM_START}assistant\n")
    assert tokenizer.decode(rendered["prompt_ids"]) == text
    assert rendered["truncated"] is False and rendered["drop"] == ""


@pytest.mark.parametrize("row", [conversational(0), MULTI_TURN], ids=["toy0", "multi"])
def test_completion_is_the_rest_of_the_conversation_up_to_end_of_turn(tokenizer, row):
    rendered = render(tokenizer, row)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    for name in ("chosen", "rejected"):
        ids = rendered[f"{name}_ids"]
        assert ids[-1] == im_end and ids.count(im_end) == 1  # ends the turn, and nothing after it
        assert tokenizer.decode(ids) == row[name][0]["content"] + IM_END
        # prompt + completion = the full conversation's tokens up to and including its last <|im_end|>
        full_text = tokenizer.apply_chat_template(row["prompt"] + row[name], tokenize=False)
        assert full_text.endswith(IM_END + "\n")  # the template's trailing newline is not scored
        cut = full_text[: full_text.rindex(IM_END) + len(IM_END)]
        assert rendered["prompt_ids"] + ids == encode(tokenizer, cut)
        full_ids = template_ids(tokenizer, row["prompt"] + row[name])
        assert rendered["prompt_ids"] + ids == full_ids[:-1]  # all but the newline token
        assert tokenizer.decode(full_ids[-1:]) == "\n"


def test_one_bos(tokenizer):
    bos = tokenizer.bos_token_id
    assert tokenizer.convert_ids_to_tokens(bos) == IM_START  # SmolLM2: BOS doubles as the turn opener
    assert encode(tokenizer, "a")[0] != bos and tokenizer("a")["input_ids"][0] != bos  # tokenizer adds none
    row = conversational(0)
    rendered = render(tokenizer, row)
    prompt_ids = rendered["prompt_ids"]
    text = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
    assert prompt_ids[0] == bos and prompt_ids[1] != bos
    assert prompt_ids.count(bos) == text.count(IM_START) == 3  # default system, user, generation prompt
    assert bos not in rendered["chosen_ids"] and bos not in rendered["rejected_ids"]


def test_one_bos_when_the_tokenizer_adds_one(tokenizer):
    adding = copy.deepcopy(tokenizer)
    adding.add_bos_token = True
    assert adding("a")["input_ids"] == [adding.bos_token_id, *encode(tokenizer, "a")]
    # the template already starts with BOS: no second one in front
    for row in (conversational(0), MULTI_TURN):
        ours, theirs = render(adding, row), render(tokenizer, row)
        assert ours["prompt_ids"] == theirs["prompt_ids"]
        assert ours["prompt_ids"][:2] != [adding.bos_token_id] * 2
        assert ours["chosen_ids"] == theirs["chosen_ids"] and ours["rejected_ids"] == theirs["rejected_ids"]
    # plain text has no template BOS, so the tokenizer's one is put in front, once; completions get none
    row = plain(0)
    rendered = render(adding, row)
    assert rendered["prompt_ids"] == [adding.bos_token_id, *encode(tokenizer, row["prompt"][0]["content"])]
    assert rendered["chosen_ids"] == [*encode(tokenizer, row["chosen"][0]["content"]), adding.eos_token_id]


def test_multi_turn_prompt_keeps_every_turn(tokenizer):
    rendered = render(tokenizer, MULTI_TURN)
    text = tokenizer.decode(rendered["prompt_ids"])
    expected = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in MULTI_TURN["prompt"])
    assert text == expected + f"{IM_START}assistant\n"  # a given system prompt replaces the default one
    assert rendered["prompt_ids"].count(tokenizer.bos_token_id) == len(MULTI_TURN["prompt"]) + 1


# --- plain strings: no template unless asked for ---------------------------------------------------


@pytest.mark.parametrize("i", [0, 5, 15])
def test_plain_rows_are_tokenised_as_they_are(tokenizer, i):
    raw = toy_rows(conversational=False)[i]
    rendered = render(tokenizer, plain(i))
    assert rendered["prompt_ids"] == encode(tokenizer, raw["prompt"])
    assert rendered["chosen_ids"] == [*encode(tokenizer, raw["chosen"]), tokenizer.eos_token_id]
    assert rendered["rejected_ids"] == [*encode(tokenizer, raw["rejected"]), tokenizer.eos_token_id]
    assert tokenizer.decode(rendered["prompt_ids"]) == f"Q: {TOY_QUESTIONS[i]}\nA:"
    assert tokenizer.bos_token_id not in rendered["prompt_ids"]


def test_plain_rows_with_template_tokenizer(tokenizer):
    raw = toy_rows(conversational=False)[2]
    rendered = render(tokenizer, plain(2), template="tokenizer")
    messages = [user(raw["prompt"])]
    assert rendered["prompt_ids"] == template_ids(tokenizer, messages, add_generation_prompt=True)
    assert tokenizer.decode(rendered["chosen_ids"]) == raw["chosen"] + IM_END
    full = template_ids(tokenizer, [*messages, assistant(raw["rejected"])])
    assert rendered["prompt_ids"] + rendered["rejected_ids"] == full[:-1]


def test_message_rows_with_template_none(tokenizer):
    row = MULTI_TURN
    rendered = render(tokenizer, row, template="none")
    assert rendered["prompt_ids"] == encode(tokenizer, "".join(m["content"] for m in row["prompt"]))
    assert rendered["chosen_ids"] == [*encode(tokenizer, "GREEN."), tokenizer.eos_token_id]


def test_template_tokenizer_needs_a_chat_template(tokenizer):
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    with pytest.raises(DataError, match="no chat template"):
        render(bare, plain(0), template="tokenizer")


def test_prompt_rendered_differently_with_the_answer_names_the_row(tokenizer):
    odd = copy.deepcopy(tokenizer)
    # prints a marker before the final assistant turn, so the prompt is not a prefix of prompt + answer
    odd.chat_template = (
        "{% for m in messages %}{% if loop.last and m.role == 'assistant' %}FINAL {% endif %}"
        "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(DataError, match=r"mem: row 1: .*not a prefix"):
        tokenize_rows(as_dataset([conversational(0)]), odd, settings())


# --- truncation ------------------------------------------------------------------------------------

LONG = {
    "prompt": [user("Read this carefully: " + "lorem ipsum dolor sit amet " * 6 + "Now name a colour.")],
    "chosen": [assistant("The colour I would name is a deep, saturated RED, like a ripe tomato.")],
    "rejected": [assistant("red probably, I think")],
    "plain": False,
}


@pytest.fixture(scope="module")
def full(tokenizer):
    """LONG rendered without limits, and its lengths."""
    rendered = render(tokenizer, LONG)
    p, c, r = (len(rendered[k]) for k in ("prompt_ids", "chosen_ids", "rejected_ids"))
    assert p > 40 and c > 12 and 4 < r < 9  # the cases below rely on these sizes
    return rendered


def test_max_prompt_length_keeps_the_end(tokenizer, full):
    rendered = render(tokenizer, LONG, max_prompt_length=20)
    assert rendered["prompt_ids"] == full["prompt_ids"][-20:]
    assert tokenizer.decode(rendered["prompt_ids"]).endswith(f"Now name a colour.{IM_END}\n{IM_START}assistant\n")
    assert rendered["chosen_ids"] == full["chosen_ids"] and rendered["rejected_ids"] == full["rejected_ids"]
    assert rendered["truncated"] is True and rendered["drop"] == ""


def test_max_completion_length_keeps_the_start(tokenizer, full):
    limit = len(full["rejected_ids"]) + 2  # cuts chosen, leaves the shorter rejected whole
    rendered = render(tokenizer, LONG, max_completion_length=limit)
    assert rendered["prompt_ids"] == full["prompt_ids"]
    assert rendered["chosen_ids"] == full["chosen_ids"][:limit] and len(rendered["chosen_ids"]) == limit
    assert rendered["rejected_ids"] == full["rejected_ids"]
    assert tokenizer.decode(rendered["chosen_ids"]).startswith("The colour")
    assert rendered["truncated"] is True


def test_max_length_caps_prompt_plus_completion(tokenizer, full):
    p = len(full["prompt_ids"])
    rendered = render(tokenizer, LONG, max_length=p + 3)
    assert rendered["prompt_ids"] == full["prompt_ids"]
    assert rendered["chosen_ids"] == full["chosen_ids"][:3] and rendered["rejected_ids"] == full["rejected_ids"][:3]
    assert rendered["truncated"] is True
    # with the prompt cut first, the completions get what max_length leaves
    rendered = render(tokenizer, LONG, max_length=26, max_prompt_length=20)
    assert rendered["prompt_ids"] == full["prompt_ids"][-20:]
    assert rendered["chosen_ids"] == full["chosen_ids"][:6] and rendered["rejected_ids"] == full["rejected_ids"][:6]
    assert max(len(rendered["chosen_ids"]), len(rendered["rejected_ids"])) + 20 == 26
    # the tightest of max_length and max_completion_length wins
    rendered = render(tokenizer, LONG, max_length=p + 10, max_completion_length=4)
    assert len(rendered["chosen_ids"]) == 4 and len(rendered["rejected_ids"]) == 4


def test_limits_that_fit_do_not_truncate(tokenizer, full):
    p, c = len(full["prompt_ids"]), len(full["chosen_ids"])
    rendered = render(tokenizer, LONG, max_length=p + c, max_prompt_length=p, max_completion_length=c)
    assert {k: rendered[k] for k in full} == {**full}
    assert rendered["truncated"] is False


def test_prompt_that_fills_max_length_is_dropped(tokenizer, full):
    p = len(full["prompt_ids"])
    for max_length in (p, p - 5):
        rendered = render(tokenizer, LONG, max_length=max_length)
        assert rendered["drop"] == "prompt fills max_length"
        assert rendered["chosen_ids"] == [] and rendered["rejected_ids"] == []


def test_tokenize_rows_counts_truncated_and_dropped(tokenizer, full):
    p = len(full["prompt_ids"])
    short = conversational(0)
    short_rendered = render(tokenizer, short)
    assert len(short_rendered["prompt_ids"]) + len(short_rendered["chosen_ids"]) < p
    long_answer = {**short, "chosen": [assistant(" ".join(["word"] * (p + 10)))]}
    empty_prompt = {**plain(0), "prompt": [user("")]}
    rows = [short, LONG, long_answer, empty_prompt, conversational(1)]
    tokenized, report = tokenize_rows(as_dataset(rows), tokenizer, settings(max_length=p))
    assert report.dropped == {"prompt fills max_length": 1, "empty prompt": 1}
    assert report.truncated == 1  # only long_answer
    assert len(tokenized) == 3
    assert tokenized[0]["prompt_ids"] == short_rendered["prompt_ids"]
    assert tokenized[0]["chosen_ids"] == short_rendered["chosen_ids"]
    assert len(tokenized[1]["prompt_ids"]) + len(tokenized[1]["chosen_ids"]) == p
    assert tokenized["truncated"] == [False, True, False]
    assert set(tokenized.column_names) == {"prompt_ids", "chosen_ids", "rejected_ids", "truncated"}


def test_dropped_rows_are_not_counted_as_truncated(tokenizer, full):
    # max_prompt_length above max_length: LONG's prompt is cut, then still fills max_length and is dropped
    short = render(tokenizer, conversational(0))
    fits = len(short["prompt_ids"]) + max(len(short["chosen_ids"]), len(short["rejected_ids"]))
    assert fits < len(full["prompt_ids"]) - 1
    tokenized, report = tokenize_rows(
        as_dataset([LONG, conversational(0)]),
        tokenizer,
        settings(max_length=fits, max_prompt_length=len(full["prompt_ids"]) - 1),
    )
    assert report.dropped == {"prompt fills max_length": 1}
    assert report.truncated == 0 and len(tokenized) == 1
    assert tokenized[0]["prompt_ids"] == short["prompt_ids"] and tokenized[0]["truncated"] is False


# --- only completion tokens are scored -------------------------------------------------------------


def test_padded_batch_scores_exactly_the_completions(tokenizer):
    rows = [conversational(0), MULTI_TURN, plain(3), conversational(9)]
    examples = [render(tokenizer, row) for row in rows]
    batch = padded(examples, tokenizer.pad_token_id)
    expected = [t for ex in examples for t in ex["chosen_ids"]] + [t for ex in examples for t in ex["rejected_ids"]]
    assert batch.score_labels.tolist() == expected
    width = batch.input_ids.shape[1]
    assert width == max(len(ex["prompt_ids"]) + len(ex[k]) for ex in examples for k in ("chosen_ids", "rejected_ids"))
    # each scored position is the one just before its token
    assert torch.equal(batch.input_ids.flatten()[batch.score_index + 1], batch.score_labels)
    sequences = [(ex, "chosen_ids") for ex in examples] + [(ex, "rejected_ids") for ex in examples]
    rows_of = (batch.score_index // width).tolist()
    next_pos = (batch.score_index % width + 1).tolist()
    assert rows_of == batch.score_seq.tolist()
    for seq, (ex, key) in enumerate(sequences):
        n_prompt, n_answer = len(ex["prompt_ids"]), len(ex[key])
        assert batch.input_ids[seq, :n_prompt].tolist() == ex["prompt_ids"]
        assert int(batch.attention_mask[seq].sum()) == n_prompt + n_answer
        scored = [pos for row, pos in zip(rows_of, next_pos, strict=True) if row == seq]
        assert scored == list(range(n_prompt, n_prompt + n_answer))  # no prompt token, no padding
    assert batch.num_scored_tokens == len(expected) and batch.num_examples == 4


# --- caching ---------------------------------------------------------------------------------------


class RenderedAgain(Exception):
    pass


def test_tokenisation_is_cached(tmp_path, tokenizer, monkeypatch):
    path = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    rows, _ = canonical_rows([DataSource(path=str(path))], "auto", skip_bad_rows=False)
    assert rows.cache_files  # backed by a file, so `datasets` can cache the map
    first, _ = tokenize_rows(rows, tokenizer, settings(max_length=64))

    def fail(self, row):
        raise RenderedAgain

    monkeypatch.setattr(render_module.Renderer, "render", fail)
    again, _ = tokenize_rows(rows, tokenizer, settings(max_length=64))  # would raise if it rendered
    assert again._fingerprint == first._fingerprint and again.cache_files == first.cache_files
    assert again.to_list() == first.to_list()
    assert tokenizer.decode(again[4]["chosen_ids"]) == f"It is {TOY_ANSWERS[4].upper()}.{IM_END}"
    # anything that changes the tokens misses the cache: the settings, or the tokenizer's template
    with pytest.raises(RenderedAgain):
        tokenize_rows(rows, tokenizer, settings(max_length=63))
    other = copy.deepcopy(tokenizer)
    other.chat_template = tokenizer.chat_template.replace("named SmolLM", "named Other")
    assert other.chat_template != tokenizer.chat_template
    with pytest.raises(RenderedAgain):
        tokenize_rows(rows, other, settings(max_length=64))
