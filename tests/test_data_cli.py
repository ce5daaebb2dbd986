"""`prefalign data preview` and `prefalign data validate`: the data as training will see it, before training.

Run through the command line as users run it (typer's runner in-process, one subprocess for the exit status);
the expected token counts come from the tokenizer's own chat template, not from prefalign's renderer.
"""

import re
import subprocess
import sys
from collections.abc import Mapping

import yaml
from typer.testing import CliRunner

from prefalign.cli import app
from prefalign.data.check import BOUNDARY
from tests.conftest import REPO, assistant, tiny_config, toy_rows, user, write_jsonl

IM_END = "<|im_end|>"


def write_config(tmp_path, model, data, **data_settings):
    config = tiny_config(model, data, tmp_path / "run", data={"max_prompt_length": None, **data_settings})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def invoke(*args):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def template_ids(tokenizer, messages, **kwargs) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
    return list(out["input_ids"] if isinstance(out, Mapping) else out)


def encode(tokenizer, text) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# --- preview -------------------------------------------------------------------------------------------------


def test_preview_marks_the_scored_tokens_and_counts_them(tmp_path, tiny_model_dir, tokenizer, toy_data):
    config = write_config(tmp_path, tiny_model_dir, toy_data)
    out = invoke("data", "preview", config, "--n", "2")
    assert out.exit_code == 0, out.output
    prompt = [user("Name a colour.")]
    prompt_text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    n_prompt = len(template_ids(tokenizer, prompt, add_generation_prompt=True))
    n_chosen = len(encode(tokenizer, f"It is RED.{IM_END}"))
    n_rejected = len(encode(tokenizer, f"it is red I think{IM_END}"))
    text = out.stdout
    assert f"data.train  {toy_data}: trl_conversational (detected)" in text
    # The prompt as rendered, special tokens and all, ends where the mark is; each answer starts from it.
    assert prompt_text.startswith("<|im_start|>system\n") and prompt_text + BOUNDARY in text
    assert f"prompt · {n_prompt} tokens" in text
    assert f"chosen · {n_chosen} tokens\n{BOUNDARY}It is RED.{IM_END}\n" in text
    assert f"rejected · {n_rejected} tokens\n{BOUNDARY}it is red I think{IM_END}\n" in text
    longest = max(n_chosen, n_rejected)
    assert f"no truncation (prompt {n_prompt} + longest answer {longest} = {n_prompt + longest} tokens" in text
    assert "Name a fruit." in text and "Name an animal." not in text  # --n 2


def test_preview_shows_what_truncation_cuts(tmp_path, tiny_model_dir, tokenizer, toy_data):
    prompt = [user("Name a colour.")]
    n_prompt = len(template_ids(tokenizer, prompt, add_generation_prompt=True))
    chosen_ids = encode(tokenizer, f"It is RED.{IM_END}")
    config = write_config(tmp_path, tiny_model_dir, toy_data)

    # max_length leaves 3 answer tokens: the chosen answer loses its end, end-of-turn included
    text = invoke("data", "preview", config, "--n", "1", f"data.max_length={n_prompt + 3}").stdout
    cut = repr(tokenizer.decode(chosen_ids[3:]))
    assert f"chosen · 3 tokens ({len(chosen_ids)} before truncation)\n{BOUNDARY}It is RED\n" in text
    assert f"truncation: chosen: {len(chosen_ids)} → 3 tokens (max_length {n_prompt + 3} − prompt {n_prompt}" in text
    assert f"cuts its last {len(chosen_ids) - 3}: {cut}" in text

    # max_prompt_length keeps the prompt's end
    text = invoke("data", "preview", config, "--n", "1", "data.max_prompt_length=10").stdout
    prompt_ids = template_ids(tokenizer, prompt, add_generation_prompt=True)
    assert f"prompt · 10 tokens ({n_prompt} before truncation)\n{tokenizer.decode(prompt_ids[-10:])}{BOUNDARY}" in text
    assert f"truncation: prompt: {n_prompt} → 10 tokens (max_prompt_length 10 keeps its end): cuts its first" in text

    # a prompt that fills max_length leaves no answer: the row is dropped
    text = invoke("data", "preview", config, "--n", "1", f"data.max_length={n_prompt}").stdout
    assert "truncation: dropped: prompt fills max_length" in text


def test_preview_of_unpaired_rows_shows_labels(tmp_path, tiny_model_dir, toy_data):
    config = write_config(tmp_path, tiny_model_dir, toy_data, split_pairs=True)
    text = invoke("data", "preview", config, "--n", "2", "method.loss=kto").stdout
    assert f"completion · 5 tokens · label: desirable\n{BOUNDARY}It is RED.{IM_END}" in text
    assert f"label: undesirable\n{BOUNDARY}it is red I think{IM_END}" in text


def test_preview_reads_the_tokenizer_only_and_writes_nothing(tmp_path, monkeypatch, toy_data):
    """A built-in model not converted yet: its tokenizer is read from the GGUF; no weights land in the cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PREFALIGN_CACHE", str(cache))
    config = write_config(tmp_path, "builtin:smollm2-135m-instruct", toy_data)
    before = sorted(tmp_path.rglob("*"))
    out = invoke("data", "preview", config, "--n", "1")
    assert out.exit_code == 0, out.output
    assert f"{BOUNDARY}It is RED.{IM_END}" in out.stdout
    assert sorted(tmp_path.rglob("*")) == before  # no converted model, nothing beside the data


# --- validate ------------------------------------------------------------------------------------------------


def seeded_rows():
    """Good rows, then one of each kind of problem, in file order (rows 1-3 good)."""
    good = toy_rows()[:3]
    long_prompt = [user("why " * 60)]
    same_start = "Yes " * 40
    return [
        *good,
        {"prompt": [user("q")], "chosen": [assistant("a")]},  # 4: missing field
        {"prompt": [user("q")], "chosen": [assistant("  ")], "rejected": [assistant("b")]},  # 5: empty answer
        {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [{"role": "assistant", "content": 3}]},  # 6
        {"prompt": [user("q")], "chosen": [assistant("same")], "rejected": [assistant("same")]},  # 7: identical
        {"prompt": long_prompt, "chosen": [assistant("a")], "rejected": [assistant("b")]},  # 8: prompt too long
        {"prompt": [user("q")], "chosen": [assistant("word " * 50)], "rejected": [assistant("b")]},  # 9: truncated
        {"prompt": [user("q")], "chosen": [assistant(same_start + "A")], "rejected": [assistant(same_start + "B")]},
    ], long_prompt


def count_line(name, count):
    return re.compile(rf"^  {re.escape(name)} +{count}$", re.MULTILINE)


def test_validate_counts_every_problem_and_exits_1(tmp_path, tiny_model_dir, tokenizer):
    rows, long_prompt = seeded_rows()
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", data={"max_prompt_length": None, "max_length": 64})
    config["data"]["train"] = [str(data), str(tmp_path / "absent.jsonl")]  # an unreadable source does not stop it
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))

    out = subprocess.run(
        [sys.executable, "-m", "prefalign", "data", "validate", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr[-3000:]
    text = out.stdout
    assert "Traceback" not in out.stderr
    assert f"data.train  {data}: trl_conversational (detected)" in text
    assert f"data.train  {tmp_path / 'absent.jsonl'}: not read" in text
    assert "Rows read: 10 (trl_conversational 10)" in text
    for name, count in [
        ("bad row: missing field", 1),
        ("bad row: empty answer", 1),
        ("bad row: malformed field", 1),
        ("dropped: identical chosen and rejected", 1),
        ("dropped: prompt fills max_length", 1),
        ("dropped: chosen and rejected identical once truncated", 1),
    ]:
        assert count_line(name, count).search(text), (name, text)
    assert "Usable: 4 pairs in data.train" in text  # 3 good + the truncated one
    assert "Truncated (kept, cut to the limits): 1" in text
    for row, field in ((4, "rejected: missing"), (5, "chosen: empty completion"), (6, "rejected[0].content")):
        assert f"{data}: row {row}: field {field}" in text
    assert f"{tmp_path / 'absent.jsonl'}: file not found" in text
    # lengths before truncation, over the 7 rows that render: the longest prompt is row 8's
    longest_prompt = len(template_ids(tokenizer, long_prompt, add_generation_prompt=True))
    prompt_line = re.search(r"^  prompt +(\d+) +(\d+) +(\d+) +(\d+)$", text, re.MULTILINE)
    assert prompt_line and int(prompt_line.group(4)) == longest_prompt > 64
    assert "Result: 4 problem(s); exit status 1" in text  # 3 bad rows and the unreadable source


def test_validate_passes_clean_data(tmp_path, tiny_model_dir, toy_data):
    config = write_config(tmp_path, tiny_model_dir, toy_data)
    out = invoke("data", "validate", config)
    assert out.exit_code == 0, out.output
    assert "Rows read: 16 (trl_conversational 16)" in out.stdout
    assert "Usable: 16 pairs in data.train" in out.stdout
    assert "Unusable or dropped rows: none" in out.stdout and "Result: ready to train" in out.stdout


def test_validate_with_no_usable_rows_fails(tmp_path, tiny_model_dir, toy_data):
    config = write_config(tmp_path, tiny_model_dir, toy_data, max_length=8)
    out = invoke("data", "validate", config)
    assert out.exit_code == 1
    assert count_line("dropped: prompt fills max_length", 16).search(out.stdout)
    assert "Usable: 0 pairs in data.train" in out.stdout


def test_data_commands_report_config_errors(tmp_path, tiny_model_dir, toy_data):
    config = write_config(tmp_path, tiny_model_dir, toy_data)
    out = invoke("data", "validate", config, "data.max_lenght=3")
    assert out.exit_code == 2 and "data.max_lenght: unknown key" in out.output


def test_data_commands_explain_themselves():
    assert "data" in invoke("--help").stdout
    for command, words in (("preview", ("config", "overrides", "--n")), ("validate", ("config", "overrides", "Exits"))):
        out = invoke("data", command, "--help")
        assert out.exit_code == 0 and all(word in out.stdout for word in words), out.stdout
