"""train.optimizer: every name builds the optimizer it says, aliases read as their names, 8-bit state round-trips."""

from __future__ import annotations

import io

import pytest
import torch

from prefalign.config import ConfigError, load_config
from prefalign.optimizers import ALIASES, OPTIMIZERS, canonical_name
from prefalign.training.optim import build_optimizer

CLASSES = {
    "adamw": "torch.optim.adamw.AdamW",
    "adamw_8bit": "bitsandbytes.optim.adamw.AdamW8bit",
    "paged_adamw_8bit": "bitsandbytes.optim.adamw.PagedAdamW8bit",
    "paged_adamw_32bit": "bitsandbytes.optim.adamw.PagedAdamW32bit",
    "lion_8bit": "bitsandbytes.optim.lion.Lion8bit",
    "adafactor": "transformers.optimization.Adafactor",
    "sgd": "torch.optim.sgd.SGD",
}


def train_config(**train):
    return load_config({"data": {"train": "x.jsonl"}, "train": {"lr": 1e-3, **train}}).train


def test_every_optimizer_is_listed_once():
    assert set(CLASSES) == set(OPTIMIZERS)
    assert set(ALIASES.values()) <= set(OPTIMIZERS)


@pytest.mark.parametrize("name", [n for n in CLASSES if not OPTIMIZERS[n].paged or torch.cuda.is_available()])
def test_each_name_builds_its_optimizer_and_steps(name):
    if OPTIMIZERS[name].needs_bitsandbytes:
        pytest.importorskip("bitsandbytes")
    weight = torch.nn.Parameter(torch.ones(64, 128))
    optimizer = build_optimizer([weight], train_config(optimizer=name, weight_decay=0.0))
    assert f"{type(optimizer).__module__}.{type(optimizer).__qualname__}" == CLASSES[name]
    assert optimizer.param_groups[0]["lr"] == 1e-3
    weight.grad = torch.full_like(weight, 0.5)
    optimizer.step()
    # every one of these moves a weight against a positive gradient, by about lr on the first step
    # (AdamW/Lion: lr · sign; SGD: lr · 0.5; Adafactor: lr × its update clipped to RMS 1)
    moved = 1 - weight.detach()
    assert bool((moved > 0).all()) and float(moved.max()) <= 1.01e-3, (float(moved.min()), float(moved.max()))


@pytest.mark.parametrize(
    ("alias", "name"),
    [("adamw_torch", "adamw"), ("adamw_torch_fused", "adamw"), ("adamw_bnb_8bit", "adamw_8bit"),
     ("paged_adamw", "paged_adamw_32bit")],
)  # fmt: skip
def test_transformers_optim_names_are_aliases(alias, name):
    assert canonical_name(alias) == name
    assert load_config({"data": {"train": "x"}, "train": {"optimizer": alias}}, machine=False).train.optimizer == name


def test_unknown_optimizer_lists_the_known_ones():
    with pytest.raises(ConfigError) as error:
        train_config(optimizer="adamw8")
    assert "train.optimizer: unknown optimizer 'adamw8'; known: adamw, adamw_8bit, paged_adamw_8bit" in str(error.value)


def test_eight_bit_state_round_trips_through_a_checkpoint():
    """AdamW8bit's blockwise 8-bit state saved with torch.save and loaded into a fresh optimizer continues exactly
    as the uninterrupted one: the same weights, bit for bit, after two more steps."""
    pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    grads = [torch.randn(64, 128) for _ in range(5)]

    def run(weight, optimizer, steps):
        for grad in steps:
            weight.grad = grad.clone()
            optimizer.step()
            optimizer.zero_grad()

    cfg = train_config(optimizer="adamw_8bit", weight_decay=0.01)
    straight = torch.nn.Parameter(torch.randn(64, 128, generator=torch.Generator().manual_seed(1)))
    optimizer = build_optimizer([straight], cfg)
    run(straight, optimizer, grads[:3])
    buffer = io.BytesIO()
    torch.save({"weight": straight.detach().clone(), "optimizer": optimizer.state_dict()}, buffer)
    state = optimizer.state_dict()["state"][0]["__bnb_optimizer_quant_state__"]
    assert state["state1"].dtype == torch.uint8 and state["state2"].dtype == torch.uint8  # 8-bit moments
    run(straight, optimizer, grads[3:])

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed = torch.nn.Parameter(saved["weight"])
    fresh = build_optimizer([resumed], cfg)
    fresh.load_state_dict(saved["optimizer"])
    run(resumed, fresh, grads[3:])
    assert torch.equal(resumed.detach(), straight.detach())
