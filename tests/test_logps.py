"""Log-probs from hidden states in chunks equal the textbook full-logits computation: values and gradients."""

import random

import pytest
import torch

from prefalign.data.layout import padded
from prefalign.logps import SequenceScorer, naive_sequence_logps, sequence_logps
from tests.conftest import make_tiny_model


def random_examples(vocab: int, n: int, seed: int = 0) -> list[dict]:
    """Pairs with unequal prompt and answer lengths, as real data has."""
    rng = random.Random(seed)

    def ids(lo, hi):
        return [rng.randrange(3, vocab) for _ in range(rng.randint(lo, hi))]

    return [{"prompt_ids": ids(2, 12), "chosen_ids": ids(1, 9), "rejected_ids": ids(1, 14)} for _ in range(n)]


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_chunked_equals_naive(tokenizer, chunk_size):
    model = make_tiny_model(tokenizer)
    batch = padded(random_examples(len(tokenizer), 5), tokenizer.pad_token_id)
    scorer = SequenceScorer(model, chunk_size=chunk_size)

    ours = sequence_logps(scorer, batch)
    ours_total = (ours.chosen_logps * 1.3 - ours.rejected_logps * 0.7).sum()
    ours_total.backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    naive = naive_sequence_logps(model, batch)
    (naive.chosen_logps * 1.3 - naive.rejected_logps * 0.7).sum().backward()

    torch.testing.assert_close(ours.chosen_logps, naive.chosen_logps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.rejected_logps, naive.rejected_logps, rtol=1e-5, atol=1e-5)
    assert ours.chosen_lengths.tolist() == [len(e["chosen_ids"]) for e in random_examples(len(tokenizer), 5)]
    for name, param in model.named_parameters():
        assert_same_gradient(ours_grads[name], param.grad, name)


def assert_same_gradient(got: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """Equal up to float32 summation order: the largest difference is tiny next to the gradient's scale."""
    scale = expected.abs().max().item()
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-5 * max(scale, 1e-3), f"{name}: max diff {diff:.3g} vs scale {scale:.3g}"


def test_sums_match_a_per_token_loop(tokenizer):
    """Independent check: score each answer token with its own forward pass on the unpadded sequence."""
    model = make_tiny_model(tokenizer)
    examples = random_examples(len(tokenizer), 3, seed=1)
    ours = sequence_logps(SequenceScorer(model), padded(examples, tokenizer.pad_token_id))
    with torch.no_grad():
        for i, ex in enumerate(examples):
            for key, got in (("chosen_ids", ours.chosen_logps[i]), ("rejected_ids", ours.rejected_logps[i])):
                ids = torch.tensor([ex["prompt_ids"] + ex[key]])
                logits = model(input_ids=ids).logits[0].float().log_softmax(-1)
                start = len(ex["prompt_ids"])
                expected = sum(logits[t - 1, ids[0, t]].item() for t in range(start, ids.shape[1]))
                assert got.item() == pytest.approx(expected, rel=1e-5)


def test_logit_softcapping_is_applied(tokenizer):
    """A model that soft-caps its logits (Gemma 2 style) is scored with the same transform."""
    model = make_tiny_model(tokenizer)
    model.config.final_logit_softcapping = 0.5  # tiny cap so it matters
    batch = padded(random_examples(len(tokenizer), 2), tokenizer.pad_token_id)
    with torch.no_grad():
        ours = sequence_logps(SequenceScorer(model), batch)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        capped = (torch.tanh(logits / 0.5) * 0.5).log_softmax(-1).reshape(-1, logits.shape[-1])
        token = capped[batch.score_index, batch.score_labels]
        expected = torch.zeros(4).index_add(0, batch.score_seq, token)
    torch.testing.assert_close(torch.cat([ours.chosen_logps, ours.rejected_logps]), expected, rtol=1e-5, atol=1e-5)


def test_lora_scoring_matches_naive(tokenizer):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(make_tiny_model(tokenizer), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:  # non-zero B so that the adapter changes the output
            torch.nn.init.normal_(p, std=0.02)
    batch = padded(random_examples(len(tokenizer), 3), tokenizer.pad_token_id)
    ours = sequence_logps(SequenceScorer(model, chunk_size=5), batch)
    naive = naive_sequence_logps(model, batch)
    torch.testing.assert_close(ours.chosen_logps, naive.chosen_logps, rtol=1e-5, atol=1e-5)
    with model.disable_adapter():
        base = sequence_logps(SequenceScorer(model), batch)
    assert not torch.allclose(base.chosen_logps, ours.chosen_logps)
