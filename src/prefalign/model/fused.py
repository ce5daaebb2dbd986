"""A gated MLP that keeps one intermediate-wide tensor less for backward (train.fused_mlp).

transformers' gated MLPs (Llama, Mistral, Qwen2/3, Gemma 1/2/3) compute `down(act(gate(x)) * up(x))` as two
autograd ops, so backward keeps `gate(x)` (for the activation's gradient), `act(gate(x))` and `up(x)` (for the
product's), and the product itself (down_proj's input, for its LoRA or weight gradient): four tensors of
intermediate width per token and layer, the largest share of a decoder layer's activations (issue 19's profile
of SmolLM2-135M: 24 of 40 KiB per token and layer in float32). `GatedProduct` is the same product as one op
that keeps only `gate(x)` and `up(x)` and recomputes the activation in backward, with the very kernels
autograd would have run (`aten.silu_backward` / `aten.gelu_backward`, then the product's two multiplies), so
the gradients are bit-identical and the forward is unchanged. One fewer `intermediate`-wide tensor per token
and layer: about a sixth of the activation memory on SmolLM2; the recompute costs one activation per layer.

Fused per module instance (its `forward`), never by patching a transformers class, and only for the MLP
classes listed below, whose forward is exactly that expression.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

# The MLP classes whose forward is `self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))`.
GATED_MLPS = frozenset({"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP", "GemmaMLP", "Gemma2MLP", "Gemma3MLP"})


def _activation(module: nn.Module) -> str | None:
    """The activation's kind when it is one GatedProduct can recompute: silu, or gelu_tanh (Gemma)."""
    act = getattr(module, "act_fn", None)
    if isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation":
        return "silu"
    # transformers' GELUTanh (Gemma's gelu_pytorch_tanh), or torch's own GELU with the tanh approximation.
    if type(act).__name__ in ("GELUTanh", "PytorchGELUTanh") or getattr(act, "approximate", None) == "tanh":
        return "gelu_tanh"
    return None


def fusable(module: nn.Module) -> bool:
    return type(module).__name__ in GATED_MLPS and _activation(module) is not None


class GatedProduct(torch.autograd.Function):
    """act(gate) * up, keeping gate and up only."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor, kind: str) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        ctx.kind = kind
        return _act(gate, kind) * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        gate, up = ctx.saved_tensors
        grad_gate = grad_up = None
        if ctx.needs_input_grad[1]:
            grad_up = grad * _act(gate, ctx.kind)
        if ctx.needs_input_grad[0]:
            grad_act = grad * up
            if ctx.kind == "silu":
                grad_gate = torch.ops.aten.silu_backward(grad_act, gate)
            else:
                grad_gate = torch.ops.aten.gelu_backward(grad_act, gate, approximate="tanh")
        return grad_gate, grad_up, None


def _act(x: torch.Tensor, kind: str) -> torch.Tensor:
    return F.silu(x) if kind == "silu" else F.gelu(x, approximate="tanh")


def _fused_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(GatedProduct.apply(self.gate_proj(x), self.up_proj(x), self._prefalign_activation))


def fuse_gated_mlps(model: nn.Module) -> int:
    """Give every fusable MLP of `model` the fused forward (PEFT's LoRA layers included: the forward calls the
    projections, whatever wraps them). Returns how many were fused."""
    count = 0
    for module in model.modules():
        if fusable(module):
            module._prefalign_activation = _activation(module)
            module.forward = types.MethodType(_fused_forward, module)
            count += 1
    return count
