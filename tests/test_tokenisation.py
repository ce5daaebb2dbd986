"""Tokenisation at scale: cached by `datasets` fingerprint, parallel with num_proc, the prompt tokenised once.

A cache hit is seen from the outside: no new cache file appears and the result is backed by the same files.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from prefalign.config import DataConfig
from prefalign.data import prepare_data
from prefalign.data import render as render_module
from prefalign.data.formats import FORMATS
from prefalign.data.render import Renderer, RenderSettings
from tests.conftest import PEERS, REPO, assistant, system, toy_rows, user, write_jsonl

# The second run, in a process of its own: the fingerprint must not depend on anything of the first process.
SECOND_RUN = """
import sys
from transformers import AutoTokenizer
from prefalign.config import DataConfig
from prefalign.data import prepare_data
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
data = prepare_data(DataConfig(train=sys.argv[2], max_length=64), tokenizer, seed=0)
print(data.train.cache_files[0]["filename"])
"""


def cache_files(data) -> set[Path]:
    """Every cache file in the datasets cache directory that holds `data.train`."""
    folder = Path(data.train.cache_files[0]["filename"]).parent
    return set(folder.glob("cache-*.arrow"))


def test_second_prepare_reuses_the_tokenised_rows(tmp_path, tokenizer, smollm_dir):
    path = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    config = DataConfig(train=str(path), max_length=64)
    first = prepare_data(config, tokenizer, seed=0)
    files = cache_files(first)
    assert not any(tmp_path in file.parents for file in files)  # the cache is never beside the user's data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.jsonl"]

    again = prepare_data(config, tokenizer, seed=0)
    assert cache_files(again) == files  # nothing was tokenised again
    assert again.train.cache_files == first.train.cache_files and again.train.to_list() == first.train.to_list()

    # a new process (a second `prefalign train`) finds the same cache
    out = subprocess.run(
        [sys.executable, "-c", SECOND_RUN, str(smollm_dir), str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == first.train.cache_files[0]["filename"]
    assert cache_files(first) == files

    # settings that change the tokens miss the cache
    shorter = prepare_data(config.model_copy(update={"max_length": 40}), tokenizer, seed=0)
    new = cache_files(shorter) - files
    assert new and {Path(f["filename"]) for f in shorter.train.cache_files} <= new
    pairs = zip(shorter.train["prompt_ids"], shorter.train["chosen_ids"], strict=True)
    assert max(len(prompt) + len(chosen) for prompt, chosen in pairs) <= 40


def test_new_rendering_code_misses_the_cache(tmp_path, tokenizer, monkeypatch):
    """A prefalign that renders differently does not reuse rows the old one cached (cache.code_version)."""
    path = write_jsonl(tmp_path / "toy.jsonl", toy_rows())
    config = DataConfig(train=str(path), max_length=64)
    files = cache_files(prepare_data(config, tokenizer, seed=0))
    monkeypatch.setattr(render_module, "code_version", lambda: "another version")
    assert cache_files(prepare_data(config, tokenizer, seed=0)) - files


def test_num_proc_gives_the_same_rows(tmp_path, tokenizer):
    rows = toy_rows() * 4
    # two copies of the file: each run tokenises, neither reuses the other's cache
    one = prepare_data(DataConfig(train=str(write_jsonl(tmp_path / "a.jsonl", rows)), max_length=64), tokenizer, 0)
    two = prepare_data(
        DataConfig(train=str(write_jsonl(tmp_path / "b.jsonl", rows)), max_length=64, num_proc=2), tokenizer, 0
    )
    assert len(two.train.cache_files) == 2  # one shard per process
    assert two.train.to_list() == one.train.to_list()
    assert len(one.train) == 64


# --- the prompt tokenised once ---------------------------------------------------------------------------------


def sample_rows() -> list[dict]:
    """Canonical rows with system prompts, several turns and long answers: the project's quickstart pairs, the same
    pairs chained into three-turn conversations, and LLaMA-Factory's ShareGPT pairs where ../shared/peers exists."""
    convert = FORMATS["trl_conversational"].convert
    pairs = [json.loads(line) for line in (REPO / "data/quickstart/train.jsonl").read_text().splitlines()[:60]]
    rows = [convert(pair) for pair in pairs]
    for i in range(0, len(pairs) - 2, 3):
        first, second, last = pairs[i : i + 3]
        prompt = [
            system("You are a careful assistant. Answer in plain English."),
            *first["prompt"], *first["chosen"], *second["prompt"], *second["rejected"], *last["prompt"],
        ]  # fmt: skip
        rows.append(convert({"prompt": prompt, "chosen": last["chosen"], "rejected": last["rejected"]}))
    if (PEERS / "dpo_en_demo.json").is_file():
        roles = {"human": "user", "gpt": "assistant", "system": "system"}
        for record in json.loads((PEERS / "dpo_en_demo.json").read_text()):
            prompt = [{"role": roles[t["from"]], "content": t["value"]} for t in record["conversations"]]
            chosen, rejected = assistant(record["chosen"]["value"]), assistant(record["rejected"]["value"])
            rows.append(convert({"prompt": prompt, "chosen": [chosen], "rejected": [rejected]}))
    return rows


AWKWARD = [  # answers and prompts that start or end on spaces and newlines, where tokens could merge
    {
        "prompt": [system("  Be brief. "), user("Hi.\n"), assistant(" Hello!\n\n"), user("\nName a tree. ")],
        "chosen": [assistant("\n\nOAK. 🌳")],
        "rejected": [assistant("  oak, maybe\n")],
        "plain": False,
    },
    {"prompt": [user("Ça va ?")], "chosen": [assistant("Très bien.")], "rejected": [assistant("ok")], "plain": False},
]


def full_encoding(renderer: Renderer) -> Renderer:
    """The same renderer encoding prompt + answer whole (no prompt tokens reused)."""
    renderer.split_ids = frozenset()
    return renderer


@pytest.mark.parametrize("template", [None, "chatml", "zephyr"])
def test_prompt_reuse_gives_the_ids_of_whole_encoding(tokenizer, template):
    rows = sample_rows() + AWKWARD + [FORMATS["trl_conversational"].convert(row) for row in toy_rows()]
    settings = RenderSettings(template, 100_000, None, None)
    renderer = Renderer(tokenizer, settings)
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in renderer.split_ids  # the reuse is exercised
    whole = full_encoding(Renderer(tokenizer, settings))
    assert [renderer.render(row) for row in rows] == [whole.render(row) for row in rows]


def trained_tokenizer(pre_tokenizer) -> PreTrainedTokenizerFast:
    """A small BPE trained here, with a pre-tokenizer that treats the start of a text apart, and a chat template."""
    corpus = [row["chosen"][0]["content"] + row["prompt"][-1]["content"] for row in sample_rows()[:50]]
    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet() if isinstance(pre_tokenizer, pre_tokenizers.ByteLevel) else []
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["[UNK]", "<|start|>", "<|end|>"], initial_alphabet=alphabet
    )
    backend.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|end|>", unk_token="[UNK]")
    tokenizer.chat_template = (
        "{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
    )
    return tokenizer


@pytest.mark.parametrize(
    "pre_tokenizer",
    [
        pre_tokenizers.Metaspace(prepend_scheme="first"),  # Llama 2, Mistral: "▁" before the first word only
        pre_tokenizers.Metaspace(prepend_scheme="always"),
        pre_tokenizers.ByteLevel(add_prefix_space=True),
    ],
    ids=["metaspace-first", "metaspace-always", "bytelevel-prefix-space"],
)
def test_prompt_reuse_with_position_sensitive_tokenizers(pre_tokenizer):
    tokenizer = trained_tokenizer(pre_tokenizer)
    settings = RenderSettings("tokenizer", 100_000, None, None)
    rows = sample_rows()[:40] + AWKWARD
    renderer, whole = Renderer(tokenizer, settings), full_encoding(Renderer(tokenizer, settings))
    assert tokenizer.convert_tokens_to_ids("<|start|>") in renderer.split_ids
    assert [renderer.render(row) for row in rows] == [whole.render(row) for row in rows]
