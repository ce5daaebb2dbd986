"""Every batch layout gives the log-probs, gradients, rewards and training losses of `padded`.

packed, prefix_shared and prefix_shared_packed lay the same sequences out differently (several per row,
a prompt shared by its answers); per sequence the model must see exactly what it sees in its own padded
row, whichever form the attention reads the layout in (segment attention, a dense SDPA or eager mask,
a FlexAttention block mask), so everything downstream agrees to float32 summation order.
"""

import dataclasses
import random

import pytest
import torch

import prefalign
from prefalign.config import ConfigError, DataConfig
from prefalign.data.layout import LAYOUTS, ONE_ROW, Block, Segments, make_batch, prefix_shared
from prefalign.model.attention import SEGMENT_ATTENTION, attention_implementation, resolve_layout, resolve_pack_length
from prefalign.scoring.logps import SequenceScorer, naive_sequence_logps, sequence_logps
from prefalign.scoring.reward_model import RewardScorer, sequence_rewards
from prefalign.training.metrics import read_metrics
from tests.conftest import make_tiny_model, tiny_config, write_jsonl
from tests.test_logps import assert_same_gradient

MASKED_LAYOUTS = [name for name in LAYOUTS if name != "padded"]
# The conftest model (4 heads over 2 KV heads, tied embeddings, SDPA: prefalign's segment attention), the same
# reading the layout as a dense mask through transformers' SDPA; one with other heads and an untied LM head;
# one with eager attention, which needs the mask additive.
MODELS = {
    "tiny": {},
    "tiny_dense_sdpa": {},
    "untied_8_heads": {"num_attention_heads": 8, "num_key_value_heads": 8, "tie_word_embeddings": False},
    "eager": {"attn_implementation": "eager"},
}


def scorer_for(model, model_name: str, **kwargs) -> SequenceScorer:
    return SequenceScorer(model, segment_attention=model_name != "tiny_dense_sdpa", **kwargs)


def random_examples(vocab: int, n: int, kind: str, seed: int = 0) -> list[dict]:
    """Examples with unequal prompt and answer lengths; example 1 repeats example 0's prompt (as split_pairs
    rows do), so prefix sharing also meets a prompt with more than two answers."""
    rng = random.Random(seed)

    def ids(lo, hi):
        return [rng.randrange(3, vocab) for _ in range(rng.randint(lo, hi))]

    examples = []
    for i in range(n):
        prompt = examples[0]["prompt_ids"] if i == 1 else ids(1, 12)
        if kind == "paired":
            examples.append({"prompt_ids": prompt, "chosen_ids": ids(1, 9), "rejected_ids": ids(1, 14)})
        else:
            examples.append({"prompt_ids": prompt, "completion_ids": ids(1, 14), "label": rng.random() < 0.5})
    return examples


DATA = {"paired": ("paired", False), "unpaired": ("unpaired", False), "unpaired_kl": ("unpaired", True)}


def logps_and_grads(model, examples, layout: str, kl: bool, pad_id: int, model_name: str = "tiny", **layout_options):
    model.zero_grad()
    batch = make_batch(examples, pad_id, layout, kl_completions=kl, **layout_options)
    out = sequence_logps(scorer_for(model, model_name, chunk_size=7), batch)
    weights = torch.linspace(-1.0, 1.5, len(out.logps))  # every sequence's gradient counts, with its own sign
    (out.logps * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("layout", MASKED_LAYOUTS)
def test_layout_gives_padded_logps_and_gradients(tokenizer, layout, data, model_name):
    kind, kl = DATA[data]
    model = make_tiny_model(tokenizer, **MODELS[model_name])
    examples = random_examples(len(tokenizer), 6, kind, seed=3)
    expected, expected_grads = logps_and_grads(model, examples, "padded", kl, tokenizer.pad_token_id, model_name)
    got, grads = logps_and_grads(model, examples, layout, kl, tokenizer.pad_token_id, model_name)

    assert got.num_examples == expected.num_examples == 6
    assert got.lengths.tolist() == expected.lengths.tolist()
    torch.testing.assert_close(got.logps, expected.logps, rtol=1e-5, atol=1e-6)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        assert_same_gradient(grad, expected_grads[name], name)


@pytest.mark.parametrize("model_name", ["tiny", "tiny_dense_sdpa"])
@pytest.mark.parametrize("data", ["paired", "unpaired_kl"])
@pytest.mark.parametrize("layout", ["packed", "prefix_shared_packed"])
def test_the_whole_batch_in_one_row(tokenizer, layout, data, model_name):
    """ONE_ROW (the segment attention's default pack_length): every group of the batch in a single row."""
    kind, kl = DATA[data]
    model = make_tiny_model(tokenizer)
    examples = random_examples(len(tokenizer), 6, kind, seed=8)
    assert (
        make_batch(examples, tokenizer.pad_token_id, layout, kl_completions=kl, pack_length=ONE_ROW).input_ids.shape[0]
        == 1
    )
    expected, expected_grads = logps_and_grads(model, examples, "padded", kl, tokenizer.pad_token_id, model_name)
    got, grads = logps_and_grads(model, examples, layout, kl, tokenizer.pad_token_id, model_name, pack_length=ONE_ROW)
    torch.testing.assert_close(got.logps, expected.logps, rtol=1e-5, atol=1e-6)
    for name, grad in grads.items():
        assert_same_gradient(grad, expected_grads[name], name)


def test_segment_attention_reads_the_segments(tokenizer):
    """An SDPA model under a scorer runs prefalign's segment attention, and it is the batch's segments, not a mask,
    that decide what each position sees: a later answer's block stripped of its prompt changes that answer only."""
    model = make_tiny_model(tokenizer)
    scorer = SequenceScorer(model)
    assert attention_implementation(model) == SEGMENT_ATTENTION
    examples = random_examples(len(tokenizer), 3, "paired", seed=9)
    batch = make_batch(examples, tokenizer.pad_token_id, "prefix_shared_packed", pack_length=ONE_ROW)
    (blocks,) = batch.segments.rows
    cut = tuple(Block(b.start, b.end) if i == len(blocks) - 1 else b for i, b in enumerate(blocks))
    changed = dataclasses.replace(batch, segments=Segments((cut,), batch.segments.width))
    with torch.no_grad():
        before, after = sequence_logps(scorer, batch), sequence_logps(scorer, changed)
    assert torch.equal(after.logps[:-1], before.logps[:-1])  # the last block is the last pair's rejected answer
    assert after.logps[-1] != before.logps[-1]


@pytest.mark.parametrize("autocast", [False, True])
def test_the_gpu_causal_bias_matches_the_cpu_mask(autocast):
    """Off the CPU a later answer attends [prompt; itself] through the lower-right causal bias (flash and
    memory-efficient kernels); it runs on the CPU too, so it is checked here against the CPU's boolean mask, with
    grouped heads, and under autocast with the dtypes a Llama layer hands it there (rotated query and key in
    float32, value in bf16), which the bias refused before it cast them itself (on an H200, 2026-12-04)."""
    from prefalign.model.attention import _causal, _causal_bias

    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 5, 8), torch.randn(1, 2, 9, 8), torch.randn(1, 2, 9, 8)
    expected = _causal(q, k, v, 0.0, None, 2)  # on the CPU: the boolean mask
    if not autocast:
        torch.testing.assert_close(_causal_bias(q, k, v, 0.0, None, 2), expected)
        return
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _causal_bias(q, k, v.bfloat16(), 0.0, None, 2)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)


def test_flex_attention_block_mask_gives_padded_logps(tokenizer):
    """FlexAttention reads the segments as a BlockMask. torch has no FlexAttention backward on CPU, so this checks
    the forward (a reference pass, evaluation); the block mask is the same for the backward on a GPU."""
    model = make_tiny_model(tokenizer, attn_implementation="flex_attention")
    twin = make_tiny_model(tokenizer)  # the same weights under SDPA, for the padded rows: one FlexAttention compile
    examples = random_examples(len(tokenizer), 6, "paired", seed=3)
    layout = resolve_layout("auto", model)
    assert layout == "prefix_shared_packed" and resolve_pack_length(None, model) == ONE_ROW
    with torch.no_grad():
        expected = sequence_logps(SequenceScorer(twin), make_batch(examples, tokenizer.pad_token_id, "padded"))
        batch = make_batch(examples, tokenizer.pad_token_id, layout, pack_length=ONE_ROW)
        got = sequence_logps(SequenceScorer(model), batch)
    torch.testing.assert_close(got.logps, expected.logps, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", MASKED_LAYOUTS)
def test_layout_gives_padded_lora_gradients(tokenizer, layout):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(make_tiny_model(tokenizer), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:  # non-zero B so that the adapter changes the output
            torch.nn.init.normal_(p, std=0.02)
    examples = random_examples(len(tokenizer), 5, "paired", seed=4)
    expected, expected_grads = logps_and_grads(model, examples, "padded", False, tokenizer.pad_token_id)
    got, grads = logps_and_grads(model, examples, layout, False, tokenizer.pad_token_id)
    torch.testing.assert_close(got.logps, expected.logps, rtol=1e-5, atol=1e-6)
    assert grads.keys() == expected_grads.keys() and all("lora_" in name for name in grads)
    for name, grad in grads.items():
        assert_same_gradient(grad, expected_grads[name], name)


@pytest.mark.parametrize("layout", MASKED_LAYOUTS)
def test_naive_full_logits_agree_too(tokenizer, layout):
    """The textbook path (the whole model, full logits) reads the same 4-D mask and gives the same values."""
    model = make_tiny_model(tokenizer)
    examples = random_examples(len(tokenizer), 4, "paired", seed=5)
    with torch.no_grad():
        expected = naive_sequence_logps(model, make_batch(examples, tokenizer.pad_token_id, "padded"))
        got = naive_sequence_logps(model, make_batch(examples, tokenizer.pad_token_id, layout))
    torch.testing.assert_close(got.logps, expected.logps, rtol=1e-5, atol=1e-6)


def tiny_reward_model(tokenizer, **overrides):
    from transformers import LlamaForSequenceClassification

    config = make_tiny_model(tokenizer, **overrides).config
    config.num_labels = 1
    torch.manual_seed(1)
    return LlamaForSequenceClassification(config).eval()


@pytest.mark.parametrize("model_name", ["tiny", "untied_8_heads"])
@pytest.mark.parametrize("layout", MASKED_LAYOUTS)
def test_layout_gives_padded_rewards(tokenizer, layout, model_name):
    """A reward model reads each sequence's last token (end_index): the same rewards, chosen log-probs and
    gradients in every layout."""
    from transformers import LlamaForCausalLM

    model = tiny_reward_model(tokenizer, **MODELS[model_name])
    lm_head = None if model.config.tie_word_embeddings else LlamaForCausalLM(model.config).lm_head
    scorer = RewardScorer(model, chunk_size=5, lm_head=lm_head)
    examples = random_examples(len(tokenizer), 5, "paired", seed=6)
    results = []
    for name in ("padded", layout):
        model.zero_grad()
        out = sequence_rewards(scorer, make_batch(examples, tokenizer.pad_token_id, name), with_chosen_logps=True)
        (out.chosen_rewards - 0.5 * out.rejected_rewards + 0.1 * out.chosen_logps).sum().backward()
        results.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (expected, expected_grads), (got, grads) = results
    torch.testing.assert_close(got.rewards, expected.rewards, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.chosen_logps, expected.chosen_logps, rtol=1e-5, atol=1e-6)
    assert got.chosen_lengths.tolist() == expected.chosen_lengths.tolist()
    for name, grad in grads.items():
        assert_same_gradient(grad, expected_grads[name], name)


def test_prefix_shared_row_by_hand():
    """Prompt [11, 12], chosen [21], rejected [31, 32]: one row, its mask, positions and scored positions."""
    batch = prefix_shared([{"prompt_ids": [11, 12], "chosen_ids": [21], "rejected_ids": [31, 32]}], pad_id=0)
    assert batch.input_ids.tolist() == [[11, 12, 21, 31, 32]]
    # Rejected positions continue from the end of the prompt (2), not from the end of chosen.
    assert batch.position_ids.tolist() == [[0, 1, 2, 2, 3]]
    expected_mask = [
        [1, 0, 0, 0, 0],  # prompt: causal
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],  # chosen: the prompt and itself
        [1, 1, 0, 1, 0],  # rejected: the prompt and itself, never chosen
        [1, 1, 0, 1, 1],
    ]
    assert batch.attention_mask.dtype == torch.bool and batch.attention_mask.shape == (1, 1, 5, 5)
    assert batch.attention_mask[0, 0].int().tolist() == expected_mask
    # The same as the segment attention's blocks: prompt + chosen causally; rejected causally, with the prompt whole.
    assert batch.segments.rows == ((Block(0, 3), Block(3, 5, prompt_start=0, prompt_end=2)),)
    # The prompt's last position (1) predicts both answers' first tokens.
    assert batch.score_index.tolist() == [1, 1, 3]
    assert batch.score_labels.tolist() == [21, 31, 32]
    assert batch.score_seq.tolist() == [0, 1, 1]
    assert batch.end_index.tolist() == [2, 4]
    assert (batch.num_examples, batch.num_sequences, batch.num_tokens) == (1, 2, 5)


def test_packed_rows_by_hand():
    """Two short sequences share a row up to the longest one's length; padding attends only to itself."""
    examples = [{"prompt_ids": [11, 12, 13], "chosen_ids": [21, 22], "rejected_ids": [31]}]
    batch = make_batch(examples, pad_id=0, layout="packed")
    # Lengths 5 and 4 with a budget of 5: a row each (no room to share), the shorter padded.
    assert batch.input_ids.tolist() == [[11, 12, 13, 21, 22], [11, 12, 13, 31, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 0]]
    assert batch.attention_mask[1, 0, 4].int().tolist() == [0, 0, 0, 0, 1]
    assert batch.segments.rows == ((Block(0, 5),), (Block(0, 4),))  # the padding position is in no block
    assert batch.num_tokens == 9
    wide = make_batch(examples, pad_id=0, layout="packed", pack_length=9)
    assert wide.input_ids.tolist() == [[11, 12, 13, 21, 22, 11, 12, 13, 31]]
    assert wide.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3]]
    mask = wide.attention_mask[0, 0]
    assert not mask[5:, :5].any() and not mask[:5, 5:].any()  # block-diagonal
    assert torch.equal(mask[5:, 5:], torch.ones(4, 4, dtype=torch.bool).tril())
    assert wide.segments.rows == ((Block(0, 5), Block(5, 9)),)
    assert wide.score_index.tolist() == [2, 3, 7] and wide.end_index.tolist() == [4, 8]


@pytest.mark.parametrize("model_name", ["tiny", "tiny_dense_sdpa"])
@pytest.mark.parametrize("layout", MASKED_LAYOUTS)
def test_a_sequence_never_sees_another(tokenizer, layout, model_name):
    """Changing chosen answers leaves every rejected log-prob exactly as it was, whatever shares its row."""
    model = make_tiny_model(tokenizer)
    scorer = scorer_for(model, model_name)
    examples = random_examples(len(tokenizer), 4, "paired", seed=7)
    changed = [{**ex, "chosen_ids": [(t * 7 + 5) % len(tokenizer) for t in ex["chosen_ids"]]} for ex in examples]
    with torch.no_grad():
        before = sequence_logps(scorer, make_batch(examples, tokenizer.pad_token_id, layout, pack_length=ONE_ROW))
        after = sequence_logps(scorer, make_batch(changed, tokenizer.pad_token_id, layout, pack_length=ONE_ROW))
    assert torch.equal(after.rejected_logps, before.rejected_logps)
    assert (after.chosen_logps != before.chosen_logps).all()


def test_auto_layout_and_incompatible_attention(tokenizer):
    model = make_tiny_model(tokenizer)
    assert resolve_layout("auto", model) == "prefix_shared_packed"
    assert resolve_layout("packed", model) == "packed"
    model.config._attn_implementation = "flash_attention_2"  # takes padding masks only
    assert resolve_layout("auto", model) == "padded"
    assert resolve_layout("padded", model) == "padded"
    with pytest.raises(ConfigError, match=r"data\.layout: prefix_shared needs an attention that applies its.*flash"):
        resolve_layout("prefix_shared", model)
    # A sliding window (Mistral, Gemma 2/3 local layers) is part of the mask transformers builds, not of ours.
    windowed = make_tiny_model(tokenizer)
    windowed.config.layer_types = ["sliding_attention", "full_attention"]
    assert resolve_layout("auto", windowed) == "padded"
    with pytest.raises(ConfigError, match="sliding window"):
        resolve_layout("packed", windowed)
    with pytest.raises(ValueError, match="unknown layout 'prefix-shared'"):
        DataConfig(train="x.jsonl", layout="prefix-shared")


def toy_unequal_rows() -> list[dict]:
    """Pairs whose prompts and answers differ in length, so rows pack and pad differently per layout."""
    rng = random.Random(0)
    words = ["red", "apple", "horse", "paris", "hammer", "mars", "oak", "tennis", "iron", "nile"]

    def text(lo, hi):
        return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))

    return [
        {
            "prompt": [{"role": "user", "content": text(1, 8)}],
            "chosen": [{"role": "assistant", "content": text(1, 5).upper()}],
            "rejected": [{"role": "assistant", "content": text(1, 9)}],
        }
        for _ in range(12)
    ]


RUNS = {
    "dpo_lora": {"method": {"loss": "sigmoid", "beta": 0.1}},
    "kto_full": {
        "method": {"loss": "kto", "beta": 0.1},
        "data": {"split_pairs": True},
        "model": {"lora": None},
        "train": {"lr": 1e-4},
        "output": {"save": []},
    },
}


@pytest.mark.parametrize("run", RUNS)
def test_training_logs_the_same_losses_in_every_layout(tiny_model_dir, tmp_path, run):
    data = write_jsonl(tmp_path / "pairs.jsonl", toy_unequal_rows())
    histories = {}
    for layout in LAYOUTS:
        sections = {key: dict(value) for key, value in RUNS[run].items()}
        sections["data"] = {**sections.get("data", {}), "layout": layout, "eval_fraction": 0.25}
        sections["train"] = {**sections.get("train", {}), "max_steps": 3, "eval_every": 3}
        prefalign.train(tiny_config(tiny_model_dir, data, tmp_path / layout, **sections), quiet=True)
        histories[layout] = read_metrics(tmp_path / layout / "metrics.jsonl")
    expected = histories.pop("padded")
    assert [r["split"] for r in expected] == ["train"] * 3 + ["eval"]
    for layout, records in histories.items():
        assert len(records) == len(expected)
        for got, want in zip(records, expected, strict=True):
            for key in ("loss", "logps/chosen", "logps/rejected", "rewards/margins", "grad_norm"):
                if key in want:
                    expected_value = pytest.approx(want[key], rel=1e-5, abs=1e-5, nan_ok=True)
                    assert got[key] == expected_value, (layout, want["step"], key)
