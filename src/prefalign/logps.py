"""Batch -> per-sequence summed log-probs, computed from hidden states.

The backbone runs to hidden states; only the positions that predict scored tokens go through
the LM head, in chunks, each under activation checkpointing: the [batch, length, vocab] logits
tensor never exists, prompt positions never touch the LM head, and backward recomputes one
chunk's logits at a time instead of storing them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from prefalign.data.layout import Batch


@dataclass
class SequenceLogps:
    """Per-pair summed log-probs and scored-token counts, each shaped [B]."""

    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
    chosen_lengths: torch.Tensor
    rejected_lengths: torch.Tensor

    def detach(self) -> SequenceLogps:
        return SequenceLogps(
            self.chosen_logps.detach(),
            self.rejected_logps.detach(),
            self.chosen_lengths,
            self.rejected_lengths,
        )


def _unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper (LoRA layers stay in place inside it)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _logit_transform(config) -> tuple[float | None, float | None]:
    """(scale, softcap) the model applies to its logits: Cohere's logit_scale, Gemma 2's soft-capping."""
    return getattr(config, "logit_scale", None), getattr(config, "final_logit_softcapping", None)


class SequenceScorer(nn.Module):
    """Wraps a causal LM so that its forward returns the log-prob of each scored token.

    Being an nn.Module whose forward does all the work, it is what accelerate wraps for DDP.
    """

    def __init__(self, model: nn.Module, chunk_size: int = 1024):
        super().__init__()
        self.model = model
        self.chunk_size = chunk_size
        base = _unwrap(model)
        self.scale, self.softcap = _logit_transform(base.config)

    @property
    def backbone(self) -> nn.Module:
        base = _unwrap(self.model)
        return getattr(base, base.base_model_prefix)

    @property
    def lm_head(self) -> nn.Module:
        return _unwrap(self.model).get_output_embeddings()

    def _chunk_logps(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden).float()
        if self.scale is not None:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        score_index: torch.Tensor,
        score_labels: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, score_index)
        out = []
        for h, y in zip(hidden.split(self.chunk_size), score_labels.split(self.chunk_size), strict=True):
            if torch.is_grad_enabled():
                out.append(checkpoint(self._chunk_logps, h, y, use_reentrant=False))
            else:
                out.append(self._chunk_logps(h, y))
        return torch.cat(out) if out else hidden.new_zeros(0)


def per_sequence(token_logps: torch.Tensor, batch: Batch) -> SequenceLogps:
    """Sum per-token log-probs [S] into per-sequence values by `batch.score_seq`."""
    n = 2 * batch.num_pairs
    sums = token_logps.new_zeros(n).index_add(0, batch.score_seq, token_logps)
    counts = torch.bincount(batch.score_seq, minlength=n)
    b = batch.num_pairs
    return SequenceLogps(sums[:b], sums[b:], counts[:b], counts[b:])


def sequence_logps(scorer: nn.Module, batch: Batch) -> SequenceLogps:
    """Summed log-prob and scored-token count of every chosen and rejected answer in `batch`."""
    token_logps = scorer(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        attention_mask=batch.attention_mask,
        score_index=batch.score_index,
        score_labels=batch.score_labels,
    )
    return per_sequence(token_logps, batch)


def naive_sequence_logps(model: nn.Module, batch: Batch) -> SequenceLogps:
    """The textbook computation through full logits; the tests compare `sequence_logps` to it."""
    logits = model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
    ).logits
    logps = F.log_softmax(logits.float(), dim=-1).reshape(-1, logits.shape[-1])
    token_logps = logps[batch.score_index, batch.score_labels]
    return per_sequence(token_logps, batch)
