"""train.activation_offload: the backbone's saved activations leave the training device in forward and come
back in backward, with bit-identical gradients. A GPU is what it is for; here the same hooks move CPU tensors
(device_type="cpu"), which runs every line of the mechanism and counts what it moves."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from prefalign.config import ConfigError, load_config
from prefalign.memory.estimate import Settings, Workload, estimate_memory
from prefalign.memory.shape import ModelShape
from prefalign.model.load import apply_train_options
from prefalign.model.offload import MIN_OFFLOAD_BYTES, OffloadActivations
from tests.conftest import tiny_config

CONFIG = LlamaConfig(
    hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=3,
    vocab_size=128,
)  # fmt: skip
TOKENS = 128  # a [1, 128, 256] float32 hidden state is 128 KiB: above the offload floor


def _model(lora: bool):
    torch.manual_seed(0)
    model = LlamaForCausalLM(CONFIG)
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                 init_lora_weights=False))  # fmt: skip
    return model


def _grads(model, ids):
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointed"])
def test_offloaded_activations_give_bit_identical_gradients(lora, checkpointing):
    ids = torch.randint(0, 128, (1, TOKENS), generator=torch.Generator().manual_seed(1))
    plain = _model(lora)
    apply_train_options(plain, gradient_checkpointing=checkpointing)
    loss, grads = _grads(plain, ids)

    offloaded = _model(lora)
    apply_train_options(offloaded, gradient_checkpointing=checkpointing, activation_offload="cpu")
    backbone = offloaded.get_base_model().model if lora else offloaded.model
    offload = backbone._prefalign_offload
    offloaded_loss, offloaded_grads = _grads(offloaded, ids)

    assert torch.equal(loss, offloaded_loss)
    assert grads.keys() == offloaded_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.equal(grad, offloaded_grads[name]), name
    hidden = TOKENS * CONFIG.hidden_size * 4
    if checkpointing:  # each decoder layer's input, and the final norm's: what checkpointing keeps
        assert CONFIG.num_hidden_layers * hidden <= offload.offloaded_bytes <= (CONFIG.num_hidden_layers + 3) * hidden
    else:  # everything the layers keep: many hidden-sized tensors per layer
        assert offload.offloaded_bytes > 4 * CONFIG.num_hidden_layers * hidden
    # The hooks are off outside the backbone's forward, and do not stack when the options are applied again.
    apply_train_options(offloaded, activation_offload="cpu")
    assert backbone._prefalign_offload is offload
    assert not torch._C._autograd._top_saved_tensors_default_hooks(False)  # no hooks left installed


def test_weights_small_tensors_and_other_devices_stay_where_they_are():
    offload = OffloadActivations("cpu")
    weight = torch.nn.Parameter(torch.ones(256, 256))
    assert offload.pack(weight) is weight
    view = weight.t()  # what a linear layer keeps: a view of its weight
    assert offload.pack(view) is view
    small = torch.ones(MIN_OFFLOAD_BYTES // 4 - 1)
    assert offload.pack(small) is small
    on_cpu = torch.ones(256, 256)
    assert OffloadActivations("cuda").pack(on_cpu) is on_cpu  # not on the device it offloads from: kept as is
    large = torch.randn(256, 256)
    packed = offload.pack(large)
    assert isinstance(packed, tuple) and packed[1].data_ptr() != large.data_ptr()
    assert torch.equal(OffloadActivations.unpack(packed), large)
    assert offload.offloaded_bytes == large.numel() * 4


def test_the_plan_keeps_one_layer_on_a_gpu_and_says_a_cpu_run_is_unaffected():
    shape = ModelShape(layers=4, hidden=64, intermediate=128, heads=4, kv_heads=2, head_dim=16, vocab=100,
                       tied_head=True, parameters=10_000, linear_parameters=8_000, head_parameters=0,
                       embedding_parameters=6_400, largest_tensor=6_400, lora_parameters_per_rank=100)  # fmt: skip
    work = Workload(rows=1, width=4096, scored=1000, layout="prefix_shared_packed")
    for checkpointing in (False, True):
        kept = estimate_memory(shape, work, Settings(device="cuda", gradient_checkpointing=checkpointing))
        moved = estimate_memory(shape, work, Settings(device="cuda", gradient_checkpointing=checkpointing,
                                                      activation_offload=True))  # fmt: skip
        assert moved.component("activations") < kept.component("activations")
        assert "offloaded to CPU memory" in next(c.note for c in moved.components if c.name == "activations")
    cpu = Settings(device="cpu", activation_offload=True)
    assert estimate_memory(shape, work, cpu).peak == estimate_memory(shape, work, Settings(device="cpu")).peak


def test_offload_with_compile_is_refused(tiny_model_dir, toy_data, tmp_path):
    config = tiny_config(tiny_model_dir, toy_data, tmp_path / "run", train={"activation_offload": True,
                                                                           "compile": True})  # fmt: skip
    with pytest.raises(ConfigError, match=r"train\.activation_offload.*train\.compile"):
        load_config(config)
