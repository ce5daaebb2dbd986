"""Batch -> one scalar reward per sequence, from a reward model (a backbone and a linear `score` head).

The reward of a sequence is the head applied to the hidden state of its last token, the EOS that
ends the answer (`Batch.end_index`): the one position whose hidden state has seen the whole answer.
That is the token transformers' `*ForSequenceClassification` reads (the last non-padding token)
and TRL's RewardTrainer trains, so a saved model gives users the rewards training saw. Only those
positions go through the head, one per sequence.

With `lm_coef` the chosen answers' tokens also go through the LM head, by the same chunked path as
`logps` (and only the chosen answers': the rejected ones carry no NLL term).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prefalign.data.layout import Batch, Segments
from prefalign.model.unwrap import unwrap
from prefalign.scoring.logps import SequenceScorer


@dataclass
class SequenceRewards:
    """Rewards [2B] of a paired batch (0..B-1 chosen, B..2B-1 rejected); with lm_coef, the chosen log-probs."""

    rewards: torch.Tensor
    num_examples: int
    chosen_logps: torch.Tensor | None = None  # [B] summed log-prob of each chosen answer under the LM head
    chosen_lengths: torch.Tensor | None = None  # [B] its scored tokens

    @property
    def chosen_rewards(self) -> torch.Tensor:
        return self.rewards[: self.num_examples]

    @property
    def rejected_rewards(self) -> torch.Tensor:
        return self.rewards[self.num_examples : 2 * self.num_examples]


def ties_lm_head(model: nn.Module) -> bool:
    """Whether the model's LM head is its input embedding matrix (tie_word_embeddings)."""
    config = unwrap(model).config
    return bool(getattr(config.get_text_config(), "tie_word_embeddings", False))


class RewardScorer(SequenceScorer):
    """Wraps a `*ForSequenceClassification` model (num_labels=1) so that its forward returns rewards.

    `lm_head`, needed only for lm_coef: a sequence-classification model has no LM head. With tied
    embeddings (most small models) the head is the input embedding matrix, which the model has; else
    pass the causal LM's output layer (`model.load.load_output_embeddings`), kept frozen here.
    """

    def __init__(
        self,
        model: nn.Module,
        chunk_size: int | None = None,
        lm_head: nn.Module | None = None,
        segment_attention: bool = True,
    ):
        super().__init__(model, chunk_size, segment_attention)
        self.untied_lm_head = lm_head
        if lm_head is not None:
            lm_head.requires_grad_(False)

    @property
    def head(self) -> nn.Module:
        base = unwrap(self.model)
        if not hasattr(base, "score"):
            raise ValueError(f"{type(base).__name__} has no `score` head: load it as a sequence-classification model")
        return base.score  # under PEFT, the trainable copy (modules_to_save) is what this wrapper calls

    def _tied_weight(self) -> torch.Tensor:
        if not ties_lm_head(self.model):
            raise ValueError("lm_coef: this model's LM head is not tied to its embeddings; pass lm_head")
        return self.backbone.get_input_embeddings().weight

    @property
    def lm_head(self) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.untied_lm_head is not None:
            return self.untied_lm_head
        weight = self._tied_weight()
        return lambda hidden: F.linear(hidden, weight)

    def head_weights(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        if self.untied_lm_head is None:
            return self._tied_weight(), None
        return super().head_weights()  # self.lm_head is the untied head

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        token_mask: torch.Tensor,
        segments: Segments | None,
        end_index: torch.Tensor,
        score_index: torch.Tensor | None = None,
        score_labels: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The reward of each sequence [N]; with `score_index`, also the log-prob of each scored token [S]."""
        hidden = self.hidden_states(input_ids, position_ids, token_mask, segments)
        rewards = self.head(hidden.index_select(0, end_index)).squeeze(-1).float()
        if score_index is None:
            return rewards
        return rewards, self.token_logps(hidden, score_index, score_labels)


def sequence_rewards(scorer: nn.Module, batch: Batch, with_chosen_logps: bool = False) -> SequenceRewards:
    """The reward of every sequence of a paired `batch`; with `with_chosen_logps`, the chosen answers' log-probs."""
    if batch.end_index is None:
        raise ValueError("this batch layout gives no end_index: a reward model needs each sequence's last token")
    inputs = dict(
        input_ids=batch.input_ids, position_ids=batch.position_ids, token_mask=batch.token_mask, segments=batch.segments
    )
    b = batch.num_examples
    if not with_chosen_logps:
        return SequenceRewards(scorer(**inputs, end_index=batch.end_index), b)
    chosen = batch.score_seq < b
    seq = batch.score_seq[chosen]
    rewards, token_logps = scorer(
        **inputs,
        end_index=batch.end_index,
        score_index=batch.score_index[chosen],
        score_labels=batch.score_labels[chosen],
    )
    logps = token_logps.new_zeros(b).index_add(0, seq, token_logps)
    return SequenceRewards(rewards, b, logps, torch.bincount(seq, minlength=b))
