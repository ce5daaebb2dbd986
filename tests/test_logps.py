"""Log-probs from hidden states in chunks equal the textbook full-logits computation: values and gradients."""

import random

import pytest
import torch

from prefalign.data.layout import padded
from prefalign.scoring.logps import SequenceScorer, naive_sequence_logps, sequence_logps
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


def transformed_naive_logps(model, batch, scale=None, softcap=None):
    """The full-logits computation with a logit transform applied by hand (Llama itself applies none)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()
    if scale is not None:
        logits = logits * scale
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    token = logits.log_softmax(-1).reshape(-1, logits.shape[-1])[batch.score_index, batch.score_labels]
    return torch.zeros(batch.num_sequences).index_add(0, batch.score_seq, token)


@pytest.mark.parametrize(("scale", "softcap"), [(None, 0.5), (1.7, None), (0.8, 2.0)])
def test_logit_transforms_are_applied_values_and_gradients(tokenizer, scale, softcap):
    """Cohere's logit_scale and Gemma 2's soft-capping: the chunked log-probs and their gradients (through the
    transform's derivative) equal the full-logits computation with the same transform."""
    model = make_tiny_model(tokenizer)
    model.config.final_logit_softcapping = softcap  # tiny cap so it matters
    model.config.logit_scale = scale
    batch = padded(random_examples(len(tokenizer), 3), tokenizer.pad_token_id)
    weights = torch.linspace(-1.0, 1.0, 6)
    ours = sequence_logps(SequenceScorer(model, chunk_size=5), batch)
    (ours.logps * weights).sum().backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    expected = transformed_naive_logps(model, batch, scale, softcap)
    (expected * weights).sum().backward()
    torch.testing.assert_close(ours.logps, expected, rtol=1e-5, atol=1e-5)
    for name, param in model.named_parameters():
        assert_same_gradient(ours_grads[name], param.grad, name)


def test_an_lm_head_with_a_bias_is_scored_with_it(tokenizer):
    """An untied LM head with a bias: values, and the gradients of the weight, the bias and the backbone."""
    model = make_tiny_model(tokenizer, tie_word_embeddings=False)
    model.lm_head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    torch.nn.init.normal_(model.lm_head.bias, std=0.5)
    batch = padded(random_examples(len(tokenizer), 3, seed=2), tokenizer.pad_token_id)
    ours = sequence_logps(SequenceScorer(model, chunk_size=4), batch)
    ours.logps.sum().backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    naive = naive_sequence_logps(model, batch)
    naive.logps.sum().backward()
    torch.testing.assert_close(ours.logps, naive.logps, rtol=1e-5, atol=1e-5)
    assert ours_grads["lm_head.bias"].abs().sum() > 0
    for name, param in model.named_parameters():
        assert_same_gradient(ours_grads[name], param.grad, name)


def test_autocast_scores_as_the_lm_head_module_would(tokenizer):
    """Under bf16 autocast the fused head multiplies in bf16, as the module does: the same log-probs and hidden-state
    gradients as running the head as a module, to bf16 rounding."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(make_tiny_model(tokenizer), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    batch = padded(random_examples(len(tokenizer), 3, seed=3), tokenizer.pad_token_id)
    results = []
    for fused in (True, False):
        scorer = SequenceScorer(model, chunk_size=5)
        if not fused:
            scorer.head_weights = lambda: None  # the module path
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = sequence_logps(scorer, batch)
        out.logps.sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.logps.detach(), grads))
    (fused_logps, fused_grads), (module_logps, module_grads) = results
    torch.testing.assert_close(fused_logps, module_logps, rtol=2e-2, atol=0.1)
    for name, grad in module_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=5e-2, atol=5e-2 * grad.abs().max().item())


def test_lora_scoring_matches_naive(tokenizer):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(make_tiny_model(tokenizer), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:  # non-zero B so that the adapter changes the output
            torch.nn.init.normal_(p, std=0.02)
    batch = padded(random_examples(len(tokenizer), 3), tokenizer.pad_token_id)
    ours = sequence_logps(SequenceScorer(model, chunk_size=5), batch)
    (ours.chosen_logps - 0.5 * ours.rejected_logps).sum().backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    naive = naive_sequence_logps(model, batch)
    (naive.chosen_logps - 0.5 * naive.rejected_logps).sum().backward()
    torch.testing.assert_close(ours.chosen_logps, naive.chosen_logps, rtol=1e-5, atol=1e-5)
    # The head is frozen: its gradient with respect to the hidden states came from the forward, nothing recomputed.
    assert ours_grads and all("lora_" in name for name in ours_grads)
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert_same_gradient(ours_grads[name], param.grad, name)
    with model.disable_adapter():
        base = sequence_logps(SequenceScorer(model), batch)
    assert not torch.allclose(base.chosen_logps, ours.chosen_logps)


def test_a_head_that_is_not_a_plain_linear_runs_as_a_module(tokenizer):
    """A PEFT-wrapped LM head (LoRA on lm_head) is called as the module it is, chunk by chunk: same values and
    gradients as the full-logits computation."""
    from peft import LoraConfig, get_peft_model

    model = make_tiny_model(tokenizer, tie_word_embeddings=False)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["lm_head", "q_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    scorer = SequenceScorer(model, chunk_size=3)
    assert scorer.head_weights() is None
    batch = padded(random_examples(len(tokenizer), 3, seed=4), tokenizer.pad_token_id)
    ours = sequence_logps(scorer, batch)
    ours.logps.sum().backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    naive = naive_sequence_logps(model, batch)
    naive.logps.sum().backward()
    torch.testing.assert_close(ours.logps, naive.logps, rtol=1e-5, atol=1e-5)
    assert any("lm_head" in name for name in ours_grads)
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert_same_gradient(ours_grads[name], param.grad, name)
