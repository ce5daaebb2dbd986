"""Reference strategies: where π_ref's log-probs come from.

- none: reference-free losses.
- adapter: the policy with its LoRA adapter disabled (no second copy); when the policy continues
  a saved SFT adapter, the frozen copy of that adapter instead.
- model: a frozen model, either a copy of the starting policy or `reference.path`.
- precomputed: log-probs scored once before training and read back by example (`model.reference_cache`).

Training and evaluation say which examples a batch holds (`Rows`); only the precomputed reference reads it.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn

from prefalign.data.layout import Batch
from prefalign.data.shards import Rows
from prefalign.model.load import REFERENCE_ADAPTER
from prefalign.scoring.logps import PLAIN, LogpsOptions, SequenceLogps, SequenceScorer, sequence_logps


class Reference:
    """Gives reference log-probs for a batch (None when the loss uses none)."""

    mode = "none"

    def logps(self, batch: Batch, rows: Rows | None = None) -> SequenceLogps | None:
        return None


class AdapterReference(Reference):
    mode = "adapter"

    def __init__(self, scorer: SequenceScorer, options: LogpsOptions = PLAIN):
        self.scorer = scorer  # the policy's own scorer (unwrapped from DDP)
        self.options = options

    @contextmanager
    def _as_reference(self):
        peft_model = self.scorer.model
        if REFERENCE_ADAPTER in peft_model.peft_config:
            active = peft_model.active_adapter
            # set_adapter also sets requires_grad: the reference stays frozen, the policy's is restored.
            peft_model.base_model.set_adapter(REFERENCE_ADAPTER, inference_mode=True)
            try:
                yield
            finally:
                peft_model.base_model.set_adapter(active)
        else:
            with peft_model.disable_adapter():
                yield

    @torch.no_grad()
    def logps(self, batch: Batch, rows: Rows | None = None) -> SequenceLogps:
        with self._as_reference():
            return sequence_logps(self.scorer, batch, self.options)


class ModelReference(Reference):
    mode = "model"

    def __init__(self, model: nn.Module, chunk_size: int | None = None, options: LogpsOptions = PLAIN):
        model.eval()
        model.requires_grad_(False)
        self.scorer = SequenceScorer(model, chunk_size)
        self.options = options

    @torch.no_grad()
    def logps(self, batch: Batch, rows: Rows | None = None) -> SequenceLogps:
        return sequence_logps(self.scorer, batch, self.options)


def build_reference(
    mode: str,
    policy_scorer: SequenceScorer,
    reference_model: nn.Module | None,
    options: LogpsOptions = PLAIN,
) -> Reference:
    """The reference for a resolved `mode`; `reference_model` is the frozen model for mode 'model'.

    `options` reduce the reference's log-probs as the policy's (LD-DPO weights both); WPO weights come
    from the policy only.
    """
    options = LogpsOptions(ld_alpha=options.ld_alpha)
    if mode == "none":
        return Reference()
    if mode == "adapter":
        return AdapterReference(policy_scorer, options)
    if mode == "model":
        if reference_model is None:
            reference_model = copy.deepcopy(policy_scorer.model)
        return ModelReference(reference_model, policy_scorer.chunk_size, options)
    if mode == "precomputed":
        raise ValueError("reference.mode: precomputed log-probs come from model.reference_cache.precomputed_reference")
    raise ValueError(f"reference.mode: unknown mode {mode!r}")
