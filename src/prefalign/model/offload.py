"""Activations kept for backward in CPU memory while a GPU trains (train.activation_offload).

While the backbone runs forward, every tensor autograd keeps for backward that lives on the training device
and is at least `MIN_OFFLOAD_BYTES` is copied to (pinned) CPU memory and its device copy freed; backward
copies each back when it needs it. Weights and views of weights stay where they are: they live on the device
anyway. With gradient checkpointing what backward keeps is each decoder layer's input (the checkpoint's own
recomputation happens one layer at a time inside backward), so the device then holds about one layer's
activations, whatever the sequence length; without it, every layer's activations leave the device. The cost
is the copies' time over the host link, which overlaps compute only in part.

This is the job of torch's `save_on_cpu`, which also copies the weights autograd keeps (every linear layer
keeps its weight), once per micro-batch: hence these hooks of our own. The hooks are installed per instance,
on the backbone's forward only; the LM head's chunks manage their own memory (scoring/logps.py).
"""

from __future__ import annotations

import torch
from torch import nn

# Smaller tensors (norms' statistics, positions) cost more in copies than they save.
MIN_OFFLOAD_BYTES = 64 * 1024


class OffloadActivations:
    """The pack and unpack hooks, and a count of what they moved (for tests and the summary)."""

    def __init__(self, device_type: str = "cuda", min_bytes: int = MIN_OFFLOAD_BYTES):
        self.device_type = device_type
        self.min_bytes = min_bytes
        self.offloaded_bytes = 0  # moved by the last forward

    def pack(self, tensor: torch.Tensor):
        base = tensor._base if tensor._base is not None else tensor
        if (
            tensor.device.type != self.device_type
            or isinstance(base, nn.Parameter)
            or tensor.layout != torch.strided
            or tensor.numel() * tensor.element_size() < self.min_bytes
        ):
            return tensor
        host = torch.empty(tensor.size(), dtype=tensor.dtype, pin_memory=tensor.is_cuda)
        host.copy_(tensor)
        self.offloaded_bytes += host.numel() * host.element_size()
        return tensor.device, host

    @staticmethod
    def unpack(packed):
        if isinstance(packed, torch.Tensor):
            return packed
        device, host = packed
        return host.to(device, non_blocking=host.is_pinned())

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


def offload_activations(backbone: nn.Module, device_type: str = "cuda") -> OffloadActivations:
    """Install the hooks around `backbone`'s forward (a pre-hook enters them, a forward hook that runs even
    when forward raises leaves them). Returns the hooks' owner, whose `offloaded_bytes` counts a forward."""
    offload = OffloadActivations(device_type)
    active: list[torch.autograd.graph.saved_tensors_hooks] = []

    def enter(module, args, kwargs):
        if torch.is_grad_enabled():
            offload.offloaded_bytes = 0
            context = offload.hooks()
            context.__enter__()
            active.append(context)

    def leave(module, args, kwargs, output):
        if active:
            active.pop().__exit__(None, None, None)

    backbone.register_forward_pre_hook(enter, with_kwargs=True)
    backbone.register_forward_hook(leave, with_kwargs=True, always_call=True)
    backbone._prefalign_offload = offload  # one per instance: apply_train_options does not install twice
    return offload
