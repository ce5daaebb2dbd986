"""Built-in chat templates (data.template: NAME) with the real SmolLM2 tokenizer: the exact text each renders,
BOS once, the prompt/completion split and its checks, tools."""

import copy
import json
import logging

import datasets
import pytest

from prefalign.config import ConfigError, DataConfig, load_config
from prefalign.data.load import DataError
from prefalign.data.render import Renderer, RenderSettings, tokenize_rows
from prefalign.data.templates import TEMPLATES, chat_template_for
from prefalign.names import TEMPLATE_NAMES
from tests.conftest import assistant, user
from tests.test_render import MULTI_TURN

SMOL_EOS = "<|im_end|>"

CONVERSATION = MULTI_TURN  # a system prompt and three user turns (tests/test_render.py)

# For each template: the prompt it renders for CONVERSATION (generation prompt last), the generation prompt,
# and the chosen completion as scored. Written out by hand from each family's official template, with
# SmolLM2's bos_token (<|im_start|>) and eos_token (<|im_end|>) where the template prints them.
EXPECTED = {
    "chatml": (
        "<|im_start|>system\nYou answer in one word.<|im_end|>\n"
        "<|im_start|>user\nHi there.<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nName a colour.<|im_end|>\n"
        "<|im_start|>assistant\nBlue.<|im_end|>\n"
        "<|im_start|>user\nAnother one?<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<|im_start|>assistant\n",
        "GREEN.<|im_end|>",
    ),
    "llama3": (
        "<|im_start|>"  # BOS
        "<|start_header_id|>system<|end_header_id|>\n\nYou answer in one word.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi there.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nBlue.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnother one?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "GREEN.<|eot_id|><|im_end|>",  # <|eot_id|> is text to SmolLM2's tokenizer, so EOS follows it
    ),
    "mistral": (
        "<|im_start|>"  # BOS
        " [INST] You answer in one word.\n\nHi there. [/INST] Hello!<|im_end|>"
        " [INST] Name a colour. [/INST] Blue.<|im_end|>"
        " [INST] Another one? [/INST]",
        "",  # [/INST] already ends the prompt
        " GREEN.<|im_end|>",
    ),
    "gemma": (
        "<|im_start|>"  # BOS
        "<start_of_turn>user\nYou answer in one word.\n\nHi there.<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nName a colour.<end_of_turn>\n"
        "<start_of_turn>model\nBlue.<end_of_turn>\n"
        "<start_of_turn>user\nAnother one?<end_of_turn>\n"
        "<start_of_turn>model\n",
        "<start_of_turn>model\n",
        "GREEN.<end_of_turn><|im_end|>",  # the newline after <end_of_turn> is not scored; EOS closes it
    ),
    "qwen": (
        "<|im_start|>system\nYou answer in one word.<|im_end|>\n"
        "<|im_start|>user\nHi there.<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nName a colour.<|im_end|>\n"
        "<|im_start|>assistant\nBlue.<|im_end|>\n"
        "<|im_start|>user\nAnother one?<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<|im_start|>assistant\n",
        "GREEN.<|im_end|>",
    ),
    "zephyr": (
        "<|system|>\nYou answer in one word.<|im_end|>\n"
        "<|user|>\nHi there.<|im_end|>\n"
        "<|assistant|>\nHello!<|im_end|>\n"
        "<|user|>\nName a colour.<|im_end|>\n"
        "<|assistant|>\nBlue.<|im_end|>\n"
        "<|user|>\nAnother one?<|im_end|>\n"
        "<|assistant|>\n",
        "<|assistant|>\n",
        "GREEN.<|im_end|>",
    ),
}

# Without a system message: qwen adds Qwen2.5's default one, the others add none.
EXPECTED_NO_SYSTEM = {
    "chatml": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "llama3": "<|im_start|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "mistral": "<|im_start|> [INST] Hi [/INST]",
    "gemma": "<|im_start|><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "qwen": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "zephyr": "<|user|>\nHi<|im_end|>\n<|assistant|>\n",
}


def settings(template=None, max_length=4096):
    return RenderSettings(template, max_length, None, None)


def render(tokenizer, row, template=None):
    return Renderer(tokenizer, settings(template)).render(row)


def text(tokenizer, messages, template, **kwargs):
    return tokenizer.apply_chat_template(messages, chat_template=TEMPLATES[template].jinja, tokenize=False, **kwargs)


def as_dataset(rows):
    return datasets.Dataset.from_list([{**row, "origin": f"mem: row {i + 1}"} for i, row in enumerate(rows)])


@pytest.fixture(scope="module")
def bos_adding(tokenizer):
    """SmolLM2's tokenizer with a BOS of its own (<|endoftext|>, no template prints it) that it adds when encoding."""
    adding = copy.deepcopy(tokenizer)
    adding.bos_token = "<|endoftext|>"
    adding.add_bos_token = True
    assert adding("a")["input_ids"][0] == adding.bos_token_id != tokenizer.bos_token_id
    return adding


def test_every_builtin_is_tested_and_documented():
    assert set(EXPECTED) == set(EXPECTED_NO_SYSTEM) == set(TEMPLATES)
    assert TEMPLATE_NAMES[:2] == ("tokenizer", "none") and TEMPLATE_NAMES[2:] == tuple(TEMPLATES)
    description = DataConfig.model_fields["template"].description
    assert all(name in description for name in TEMPLATE_NAMES)
    assert all(t.source and t.notes and t.end_of_turn for t in TEMPLATES.values())


# --- the text each template renders ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPECTED))
def test_template_renders_the_official_text(tokenizer, name):
    prompt_text, generation_prompt, _ = EXPECTED[name]
    assert text(tokenizer, CONVERSATION["prompt"], name, add_generation_prompt=True) == prompt_text
    history = prompt_text.removesuffix(generation_prompt)
    assert text(tokenizer, CONVERSATION["prompt"], name, add_generation_prompt=False) == history
    assert text(tokenizer, [user("Hi")], name, add_generation_prompt=True) == EXPECTED_NO_SYSTEM[name]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_renderer_splits_prompt_and_completion(tokenizer, name, caplog):
    prompt_text, _, chosen_text = EXPECTED[name]
    with caplog.at_level(logging.WARNING, logger="prefalign.data.render"):
        rendered = render(tokenizer, CONVERSATION, name)
    assert tokenizer.decode(rendered["prompt_ids"]) == prompt_text  # every turn kept, in order
    assert rendered["prompt_ids"] == tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(rendered["chosen_ids"]) == chosen_text
    assert tokenizer.decode(rendered["rejected_ids"]) == chosen_text.replace("GREEN.", "green i guess")
    assert rendered["chosen_ids"][-1] == tokenizer.eos_token_id
    # a warning exactly where the template's end-of-turn marker is not one of the tokenizer's tokens
    marker = TEMPLATES[name].end_of_turn.replace("{eos}", SMOL_EOS)
    assert ("not a token of this tokenizer" in caplog.text) == (marker != SMOL_EOS)


@pytest.mark.parametrize(("name", "marker"), [("llama3", "<|eot_id|>"), ("gemma", "<end_of_turn>")])
def test_completion_ends_at_the_end_of_turn_token_when_the_tokenizer_has_it(tokenizer, name, marker):
    # the family's own tokenizer has these markers as tokens; add them to SmolLM2's to stand in for it
    family = copy.deepcopy(tokenizer)
    family.add_tokens(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<start_of_turn>", "<end_of_turn>"])
    rendered = render(family, CONVERSATION, name)
    assert family.decode(rendered["chosen_ids"]) == f"GREEN.{marker}"  # no EOS after it, no newline
    assert rendered["chosen_ids"][-1] == family.convert_tokens_to_ids(marker)
    assert family.decode(rendered["prompt_ids"]) == EXPECTED[name][0]


@pytest.fixture(scope="module")
def bare(tokenizer):
    """SmolLM2's tokenizer without a chat template, as a base model's."""
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    return bare


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_template_on_a_tokenizer_without_one_and_on_plain_rows(tokenizer, bare, name):
    assert render(bare, CONVERSATION, name) == render(tokenizer, CONVERSATION, name)
    # a named template applies to plain strings too: one user turn, one assistant turn
    plain = {"prompt": [user("Hi")], "chosen": [assistant("GREEN.")], "rejected": [assistant("no")], "plain": True}
    assert tokenizer.decode(render(tokenizer, plain, name)["prompt_ids"]) == EXPECTED_NO_SYSTEM[name]


def test_message_rows_without_any_chat_template_name_the_builtins(bare):
    no_template = (
        r"mem: row 1: data\.template: the tokenizer has no chat template; name a built-in one \(chatml, llama3"
    )
    with pytest.raises(DataError, match=no_template):
        tokenize_rows(as_dataset([CONVERSATION]), bare, settings())


def test_a_template_refusing_the_conversation_names_the_row(tokenizer):
    not_alternating = {**CONVERSATION, "prompt": [user("Hi"), user("Hello?")]}
    with pytest.raises(DataError, match=r"mem: row 2: the chat template cannot render.*roles must alternate"):
        tokenize_rows(as_dataset([CONVERSATION, not_alternating]), tokenizer, settings("mistral"))


# --- BOS exactly once ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPECTED))
def test_one_bos_when_the_tokenizer_adds_one(bos_adding, name):
    bos = bos_adding.bos_token_id
    rendered = render(bos_adding, CONVERSATION, name)
    # llama3, mistral, gemma print BOS themselves; chatml, qwen, zephyr get the tokenizer's
    assert rendered["prompt_ids"][0] == bos and rendered["prompt_ids"].count(bos) == 1
    assert bos not in rendered["chosen_ids"] and bos not in rendered["rejected_ids"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_bos_only_from_the_template_when_the_tokenizer_adds_none(bos_adding, name):
    quiet = copy.deepcopy(bos_adding)
    quiet.add_bos_token = False
    prompt_ids = render(quiet, CONVERSATION, name)["prompt_ids"]
    prints_bos = name in ("llama3", "mistral", "gemma")
    assert prompt_ids.count(quiet.bos_token_id) == int(prints_bos)
    assert (prompt_ids[0] == quiet.bos_token_id) == prints_bos


def test_template_bos_text_and_adding_tokenizer_give_one_bos(tokenizer):
    # SmolLM2's own BOS: llama3 prints it as text, and the tokenizer would add it too
    adding = copy.deepcopy(tokenizer)
    adding.add_bos_token = True
    prompt_ids = render(adding, CONVERSATION, "llama3")["prompt_ids"]
    assert prompt_ids[:2] != [adding.bos_token_id] * 2 and prompt_ids.count(adding.bos_token_id) == 1
    assert prompt_ids == render(tokenizer, CONVERSATION, "llama3")["prompt_ids"]


# --- the prompt must be what prompt + answer starts with -------------------------------------------

# ChatML, except that the last answer is announced: the prompt is no longer a prefix of prompt + answer.
LAST_TURN_MARKED = (
    "{% for m in messages %}{% if loop.last and m.role == 'assistant' %}(final) {% endif %}"
    "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_prompt_that_is_not_a_prefix_is_an_error_showing_where(tokenizer):
    odd = copy.deepcopy(tokenizer)
    odd.chat_template = LAST_TURN_MARKED
    with pytest.raises(DataError) as error:
        tokenize_rows(as_dataset([CONVERSATION]), odd, settings())
    message = str(error.value)
    assert message.startswith("mem: row 1: the chat template renders the prompt differently")
    assert "(the prompt is not a prefix of prompt + answer)" in message
    # the text before the divergence, then what each rendering has there
    assert "after '<|im_start|>user\\nAnother one?<|im_end|>\\n' the prompt has '<|im_start|>assistant\\n'" in message
    assert "where prompt + answer has '(final) <|im_start|>assistant\\nGREEN.<|im'" in message


def test_tokens_merging_across_the_boundary_split_at_the_prompts_characters(tokenizer):
    row = {**CONVERSATION, "chosen": [assistant("\n\nGREEN.")]}
    prompt_text = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
    full_text = tokenizer.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    assert full_text.startswith(prompt_text) and full_ids[: len(prompt_ids)] != prompt_ids  # "\n" + "\n\n" merge
    rendered = render(tokenizer, row)
    assert rendered["prompt_ids"] == prompt_ids  # as at inference
    assert rendered["chosen_ids"] == tokenizer("\n\nGREEN.<|im_end|>", add_special_tokens=False)["input_ids"]


# A reasoning template in the style of DeepSeek-R1 / QwQ: the generation prompt opens <think>, and answers
# are rendered without their reasoning.
OPENS_THINKING = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content.split('</think>')[-1] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)

# A reasoning template in the style of Qwen3: think blocks are dropped from assistant turns before the last user
# turn and kept in the answer.
DROPS_EARLIER_THINKING = (
    "{% set ns = namespace(last_user=0) %}{% for m in messages %}{% if m.role == 'user' %}"
    "{% set ns.last_user = loop.index0 %}{% endif %}{% endfor %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.role == 'assistant' and loop.index0 < ns.last_user %}{{ m.content.split('</think>')[-1].lstrip() }}"
    "{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_generation_prompt_opening_thinking_stops_before_it(tokenizer):
    reasoning = copy.deepcopy(tokenizer)
    reasoning.chat_template = OPENS_THINKING
    row = {**CONVERSATION, "chosen": [assistant("<think>It asks for one.</think>GREEN.")]}
    rendered = render(reasoning, row)
    assert tokenizer.decode(rendered["prompt_ids"]).endswith("Another one?<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.decode(rendered["chosen_ids"]) == "GREEN.<|im_end|>"
    assert tokenizer.decode(rendered["rejected_ids"]) == "green i guess<|im_end|>"
    # at inference the prompt opens the reasoning, as the template says
    assert tokenizer.decode(Renderer(reasoning, settings()).prompt_ids(row["prompt"], False)).endswith("<think>\n")


def test_history_that_drops_earlier_thinking_keeps_every_turn(tokenizer):
    reasoning = copy.deepcopy(tokenizer)
    reasoning.chat_template = DROPS_EARLIER_THINKING
    prompt = [user("Hi there."), assistant("<think>Greet back.</think>Hello!"), user("Name a colour.")]
    row = {"prompt": prompt, "chosen": [assistant("<think>Pick one.</think>RED.")], "rejected": [assistant("red")]}
    rendered = render(reasoning, {**row, "plain": False})
    assert tokenizer.decode(rendered["prompt_ids"]) == (
        "<|im_start|>user\nHi there.<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tokenizer.decode(rendered["chosen_ids"]) == "<think>Pick one.</think>RED.<|im_end|>"


# --- tools -----------------------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tools_reach_the_template(tokenizer):
    row = {**CONVERSATION, "prompt": [user("Weather in Paris?")], "tools": json.dumps([WEATHER])}
    rendered = render(tokenizer, row, "qwen")
    assert tokenizer.decode(rendered["prompt_ids"]) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.", '
        '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n'
        "</tools>\n\nFor each function call, return a json object with function name and arguments within "
        '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
        "</tool_call><|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tokenizer.decode(rendered["chosen_ids"]) == "GREEN.<|im_end|>"
    # no tools ("" in the column, or no column at all): no tools section
    for no_tools in ({**row, "tools": ""}, {key: value for key, value in row.items() if key != "tools"}):
        assert "# Tools" not in tokenizer.decode(render(tokenizer, no_tools, "qwen")["prompt_ids"])


def test_tools_reach_the_tokenizers_template_through_tokenize_rows(tokenizer):
    with_tools = copy.deepcopy(tokenizer)
    with_tools.chat_template = (
        "{% if tools %}TOOLS {{ tools | map(attribute='function.name') | join(',') }}\n{% endif %}"
        + tokenizer.chat_template
    )
    rows = [{**CONVERSATION, "tools": json.dumps([WEATHER])}, {**CONVERSATION, "tools": ""}]
    tokenized, _ = tokenize_rows(as_dataset(rows), with_tools, settings())
    assert tokenizer.decode(tokenized[0]["prompt_ids"]).startswith("TOOLS get_weather\n<|im_start|>system")
    assert tokenizer.decode(tokenized[1]["prompt_ids"]).startswith("<|im_start|>system")
    assert tokenized[0]["chosen_ids"] == tokenized[1]["chosen_ids"]
    bad = [{**CONVERSATION, "tools": "[{not json"}]
    with pytest.raises(DataError, match=r"mem: row 1: tools: not valid JSON"):
        tokenize_rows(as_dataset(bad), with_tools, settings())


# --- config ----------------------------------------------------------------------------------------


def test_unknown_template_is_a_config_error_listing_the_known_ones():
    with pytest.raises(ConfigError) as error:
        load_config({"data": {"train": "pairs.jsonl", "template": "llama-3"}})
    message = str(error.value)
    assert "data.template: unknown template 'llama-3' (did you mean 'llama3'?)" in message
    assert "known: tokenizer, none, chatml, llama3, mistral, gemma, qwen, zephyr" in message
    for name in (None, *TEMPLATE_NAMES):
        assert load_config({"data": {"train": "pairs.jsonl", "template": name}}).data.template == name


def test_chat_template_for_saving_with_the_tokenizer(tokenizer):
    assert chat_template_for("gemma", tokenizer) == TEMPLATES["gemma"].jinja
    assert chat_template_for(None, tokenizer) == chat_template_for("tokenizer", tokenizer) == tokenizer.chat_template
    assert chat_template_for("none", tokenizer) is None


def test_a_run_with_a_builtin_template_saves_it_with_the_tokenizer(tiny_model_dir, toy_data, tmp_path):
    """Users load the adapter's tokenizer and chat with it: it must format prompts as training did."""
    from transformers import AutoTokenizer

    import prefalign
    from tests.conftest import tiny_config

    config = tiny_config(
        tiny_model_dir, toy_data, tmp_path / "run", data={"template": "zephyr"}, train={"max_steps": 1}
    )
    result = prefalign.train(config, quiet=True)
    saved = AutoTokenizer.from_pretrained(result.saved["adapter"])
    assert saved.chat_template == TEMPLATES["zephyr"].jinja
    assert saved.apply_chat_template([user("Hi")], tokenize=False, add_generation_prompt=True).startswith("<|user|>")
