"""train.fused_mlp: the gated MLP as one op that keeps gate and up only, with gradients bit-identical to
transformers' own forward, and one intermediate-wide tensor per token and layer less kept for backward."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

from prefalign.model.fused import fusable, fuse_gated_mlps

LLAMA = LlamaConfig(
    hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
    vocab_size=128, tie_word_embeddings=True,
)  # fmt: skip
GEMMA2 = Gemma2Config(
    hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
    vocab_size=128, head_dim=16,
)  # fmt: skip


def _model(config, lora: bool, fused: bool):
    torch.manual_seed(0)
    model = (LlamaForCausalLM if isinstance(config, LlamaConfig) else Gemma2ForCausalLM)(config)
    if lora:
        model = get_peft_model(
            model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
        )
    if fused:
        assert fuse_gated_mlps(model) == config.num_hidden_layers
    return model


def _grads(model, ids, autocast: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("config", [LLAMA, GEMMA2], ids=["llama-silu", "gemma2-gelu_tanh"])
@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_fused_mlp_gives_bit_identical_losses_and_gradients(config, lora, autocast):
    ids = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(1))
    loss, grads = _grads(_model(config, lora, fused=False), ids, autocast)
    fused_loss, fused_grads = _grads(_model(config, lora, fused=True), ids, autocast)
    assert torch.equal(loss, fused_loss)
    assert grads.keys() == fused_grads.keys() and len(grads) > 0
    for name, grad in grads.items():
        assert torch.equal(grad, fused_grads[name]), name


def _saved_bytes(model, ids) -> int:
    """Bytes of the distinct non-parameter tensors autograd keeps for backward during one forward."""
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        if t.data_ptr() not in params:
            seen[t.data_ptr()] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids)
    return sum(seen.values())


def test_fused_mlp_keeps_one_intermediate_tensor_less_per_token_and_layer():
    ids = torch.randint(0, 128, (1, 64), generator=torch.Generator().manual_seed(2))
    plain = _saved_bytes(_model(LLAMA, lora=True, fused=False), ids)
    fused = _saved_bytes(_model(LLAMA, lora=True, fused=True), ids)
    one_tensor = LLAMA.num_hidden_layers * 64 * LLAMA.intermediate_size * 4  # layers × tokens × width × fp32
    assert plain - fused == one_tensor


def test_only_known_gated_mlps_are_fused():
    model = _model(LLAMA, lora=False, fused=False)
    mlp = model.model.layers[0].mlp
    assert fusable(mlp) and not fusable(model.model.layers[0].self_attn)
    mlp.act_fn = torch.nn.ReLU()  # an activation the fused op cannot recompute: left alone
    assert not fusable(mlp)
    assert fuse_gated_mlps(model) == LLAMA.num_hidden_layers - 1
