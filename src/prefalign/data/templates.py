"""Built-in chat templates: `data.template: NAME` renders with one of these instead of the tokenizer's own.

For tokenizers that have no chat template (base models), or to train in another family's format. Each is
the Jinja `chat_template` that the family's instruct tokenizer ships in its tokenizer_config.json
(`source`), written out for text messages: on role/content messages it renders exactly what the original
renders (tests/test_templates.py writes the expected text out). Every one takes `add_generation_prompt`
and reads `bos_token` / `eos_token` from the tokenizer it is applied with; the renderer then makes sure
BOS appears once, whether the template writes it, the tokenizer adds it, or both.

Two more values of `data.template` are modes, not templates: `tokenizer` (the tokenizer's own, also for
plain strings) and `none` (join the texts as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    source: str  # the tokenizer whose chat_template this reproduces
    notes: str  # how it treats BOS, the system prompt and tools
    end_of_turn: str  # the text that closes an assistant turn; "{eos}" is the tokenizer's EOS
    jinja: str


# Jinja as transformers runs it: trim_blocks and lstrip_blocks on, so only `{{ }}` output reaches the text.

_CHATML = r"""
{%- for message in messages %}
    {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

_LLAMA3 = r"""
{%- for message in messages %}
    {%- if loop.first %}
        {{- bos_token }}
    {%- endif %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# [/INST] ends every user turn, so the prompt already ends where the answer starts: add_generation_prompt
# has nothing to add.
_MISTRAL = r"""
{%- if messages and messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set turns = messages[1:] %}
{%- else %}
    {%- set turns = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in turns %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('mistral: after an optional system message, roles must alternate user/assistant') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token }}
    {%- else %}
        {{- raise_exception('mistral: only user and assistant turns, after an optional system message') }}
    {%- endif %}
{%- endfor %}
"""

_GEMMA = r"""
{{- bos_token }}
{%- if messages and messages[0]['role'] == 'system' %}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' %}
    {%- set turns = messages[1:] %}
{%- else %}
    {%- set first_user_prefix = '' %}
    {%- set turns = messages %}
{%- endif %}
{%- for message in turns %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('gemma: after an optional system message, roles must alternate user/assistant') }}
    {%- endif %}
    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}
    {{- '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}
    {{- message['content'] | trim + '<end_of_turn>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<start_of_turn>model\n' }}
{%- endif %}
"""

_QWEN = r"""
{%- if messages and messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
{%- else %}
    {%- set system_message = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' %}
{%- endif %}
{%- if tools %}
    {{- '<|im_start|>system\n' + system_message + '\n\n# Tools\n\n'
        + 'You may call one or more functions to assist with the user query.\n\n'
        + 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
    {%- for tool in tools %}
        {{- '\n' + tool | tojson }}
    {%- endfor %}
    {{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments '
        + 'within <tool_call></tool_call> XML tags:\n<tool_call>\n'
        + '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- else %}
    {{- '<|im_start|>system\n' + system_message + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first)
        or (message.role == 'assistant' and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>assistant' }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for call in message.tool_calls %}
            {%- set call = call.function if call.function is defined else call %}
            {{- '\n<tool_call>\n{"name": "' + call.name + '", "arguments": ' + call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

_ZEPHYR = r"""
{%- for message in messages %}
    {%- if message['role'] in ('system', 'user', 'assistant') %}
        {{- '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}
    {%- endif %}
    {%- if loop.last and add_generation_prompt %}
        {{- '<|assistant|>\n' }}
    {%- endif %}
{%- endfor %}
"""

TEMPLATES: dict[str, ChatTemplate] = {
    t.name: t
    for t in (
        ChatTemplate(
            "chatml",
            "ChatML as in teknium/OpenHermes-2.5-Mistral-7B and the transformers chat-template docs",
            "no BOS, no default system prompt; every turn <|im_start|>role ... <|im_end|>",
            "<|im_end|>",
            _CHATML,
        ),
        ChatTemplate(
            "llama3",
            "meta-llama/Meta-Llama-3-8B-Instruct",
            "BOS before the first turn; <|start_header_id|>role<|end_header_id|> headers, content trimmed, "
            "<|eot_id|> ends a turn; no default system prompt (Llama 3.1+ adds a knowledge-date system "
            "header and tool formatting: use their tokenizer's own template)",
            "<|eot_id|>",
            _LLAMA3,
        ),
        ChatTemplate(
            "mistral",
            "mistralai/Mistral-7B-Instruct-v0.1 / v0.2 and Mixtral-8x7B-Instruct-v0.1",
            "BOS once at the start; ' [INST] ... [/INST]' user turns, ' answer' + EOS; a system message is "
            "prepended to the first user message; roles must alternate",
            "{eos}",
            _MISTRAL,
        ),
        ChatTemplate(
            "gemma",
            "google/gemma-3-1b-it (Gemma 1 and 2 render the same, but reject a system message)",
            "BOS at the start; assistant turns are 'model'; no system role: a system message is folded into "
            "the first user turn; content trimmed",
            "<end_of_turn>",
            _GEMMA,
        ),
        ChatTemplate(
            "qwen",
            "Qwen/Qwen2.5-7B-Instruct",
            "ChatML with Qwen's default system prompt when none is given; no BOS; renders `tools` into the "
            "system prompt and tool results as <tool_response> user turns",
            "<|im_end|>",
            _QWEN,
        ),
        ChatTemplate(
            "zephyr",
            "HuggingFaceH4/zephyr-7b-beta",
            "<|system|>/<|user|>/<|assistant|> headers, each turn ended by EOS and a newline; no BOS in the "
            "text (a tokenizer that adds BOS adds it once)",
            "{eos}",
            _ZEPHYR,
        ),
    )
}


def end_of_turn_text(template: ChatTemplate, tokenizer: Any) -> str:
    return template.end_of_turn.replace("{eos}", tokenizer.eos_token or "")


def chat_template_for(name: str | None, tokenizer: Any) -> str | None:
    """The Jinja source a run with `data.template: name` renders chats with (to save with the tokenizer)."""
    if name in TEMPLATES:
        return TEMPLATES[name].jinja
    if name == "none":
        return None
    return tokenizer.chat_template
