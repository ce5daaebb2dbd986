"""Batch -> per-sequence summed log-probs, computed from hidden states.

The backbone runs to hidden states; only the positions that predict scored tokens go through
the LM head, in chunks: the [batch, length, vocab] logits tensor never exists and prompt positions
never touch the LM head. With a frozen head (LoRA) the forward also computes each chunk's gradient
with respect to its hidden states (one more product with the head's weight, what the backward would
compute anyway), so no logits are kept or recomputed; with a trained head (full fine-tuning) the
backward recomputes one chunk's logits at a time from the saved log-normalisers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from prefalign.data.layout import Batch, Segments
from prefalign.model.attention import as_model_reads, attention_inputs, use_segment_attention
from prefalign.model.unwrap import unwrap


@dataclass(frozen=True)
class LogpsOptions:
    """What the objective needs from the log-probs beyond plain sums (policy and reference alike).

    ld_alpha: LD-DPO (Liu et al. 2024, arXiv:2409.06411, eq. 9): in each pair, answer tokens past the
        shorter answer's length count with weight alpha.
    wpo: WPO (Zhou et al. 2024, arXiv:2406.11827, eq. 2): also return, per sequence, the detached weight
        exp(mean_t(log p(y_t) − log Σ_v p(v)²)).
    """

    ld_alpha: float | None = None
    wpo: bool = False


PLAIN = LogpsOptions()  # plain sums


@dataclass
class SequenceLogps:
    """Per-sequence summed log-probs [N] and scored-token counts [N] of a batch of B examples.

    Paired batches: sequences 0..B-1 are the chosen answers, B..2B-1 the rejected ones. Unpaired
    batches: 0..B-1 each example's completion, B..2B-1 (when present) mismatched completions for KTO's
    KL estimate.
    """

    logps: torch.Tensor
    lengths: torch.Tensor
    num_examples: int
    wpo_weights: torch.Tensor | None = None

    @classmethod
    def pairs(cls, chosen: torch.Tensor, rejected: torch.Tensor, chosen_lengths, rejected_lengths) -> SequenceLogps:
        return cls(torch.cat([chosen, rejected]), torch.cat([chosen_lengths, rejected_lengths]), len(chosen))

    def _half(self, values: torch.Tensor | None, second: bool) -> torch.Tensor | None:
        b = self.num_examples
        return None if values is None else (values[b : 2 * b] if second else values[:b])

    chosen_logps = property(lambda self: self._half(self.logps, False))
    rejected_logps = property(lambda self: self._half(self.logps, True))
    chosen_lengths = property(lambda self: self._half(self.lengths, False))
    rejected_lengths = property(lambda self: self._half(self.lengths, True))

    def detach(self) -> SequenceLogps:
        return SequenceLogps(self.logps.detach(), self.lengths, self.num_examples, self.wpo_weights)


def _logit_transform(config) -> tuple[float | None, float | None]:
    """(scale, softcap) the model applies to its logits: Cohere's logit_scale, Gemma 2's soft-capping."""
    return getattr(config, "logit_scale", None), getattr(config, "final_logit_softcapping", None)


# Float32 logits of one LM-head chunk: its logits, their gradient and the softmax are alive together in backward,
# at the peak of the step's memory. 48 MiB is 256 positions of a 49k vocabulary (SmolLM2), 96 of Llama 3's
# 128k; a larger chunk is no faster on CPU (one SmolLM2 step timed the same with 256 and 1024) and peaked
# 0.6–0.7 GB higher with 1024.
CHUNK_LOGITS_BYTES = 48 * 2**20


def default_chunk_size(vocab_size: int) -> int:
    """Positions per LM-head chunk whose float32 logits fit CHUNK_LOGITS_BYTES (at least 16)."""
    return max(16, CHUNK_LOGITS_BYTES // (4 * vocab_size))


def _transform(logits: torch.Tensor, scale: float | None, softcap: float | None):
    """The model's logit transform, in place where it can be, and its elementwise derivative (None: 1)."""
    derivative: torch.Tensor | float | None = None
    if scale is not None:
        logits.mul_(scale)
        derivative = scale
    if softcap is not None:
        logits.div_(softcap).tanh_()
        tanh_derivative = 1 - logits.square()
        derivative = tanh_derivative if derivative is None else tanh_derivative.mul_(derivative)
        logits.mul_(softcap)
    return logits, derivative


def _dlogp_dz(logits: torch.Tensor, lse: torch.Tensor, labels: torch.Tensor, derivative) -> torch.Tensor:
    """d log p(y) / d z for the chunk's pre-transform logits z: (onehot(y) − softmax) · dl/dz, in place on `logits`."""
    grad = logits.sub_(lse[:, None]).exp_().neg_()
    grad.scatter_add_(1, labels[:, None], torch.ones_like(grad[:, :1]))
    if derivative is not None:
        grad.mul_(derivative)
    return grad


class _LinearLogps(torch.autograd.Function):
    """log p(y_t) = l_{t,y_t} − logsumexp_v l_{t,v}, with l = transform(h_t Wᵀ + b), a chunk of positions at a time.

    Matrix products run in the autocast dtype where autocast is on (as the LM head's own call would), the
    log-softmax in float32. The gradient with respect to h_t is g_t · ((onehot(y_t) − p_t) · dl/dz) W.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk_size: int, scale, softcap):
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        trained_head = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        with torch.autocast(device, enabled=False):
            w = weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            logps, lses, units = [], [], []
            for h, y in zip(hidden.to(dtype).split(chunk_size), labels.split(chunk_size), strict=True):
                logits, derivative = _transform(F.linear(h, w, b).float(), scale, softcap)
                lse = torch.logsumexp(logits, dim=-1)
                logps.append(logits.gather(-1, y[:, None]).squeeze(-1) - lse)
                lses.append(lse)
                if ctx.needs_input_grad[0] and not trained_head:  # the backward's product, now: logits die here
                    units.append((_dlogp_dz(logits, lse, y, derivative).to(dtype) @ w).to(hidden.dtype))
        ctx.chunk_size, ctx.scale, ctx.softcap, ctx.dtype = chunk_size, scale, softcap, dtype
        ctx.trained_head = trained_head
        if trained_head:
            ctx.save_for_backward(hidden, weight, bias, labels, torch.cat(lses))
        elif units:
            ctx.save_for_backward(torch.cat(units))
        return torch.cat(logps) if logps else hidden.new_zeros(0, dtype=torch.float32)

    @staticmethod
    def backward(ctx, grad_logps):
        if not ctx.trained_head:
            (unit,) = ctx.saved_tensors
            return unit * grad_logps[:, None].to(unit.dtype), None, None, None, None, None, None
        hidden, weight, bias, labels, lse = ctx.saved_tensors
        dtype, size = ctx.dtype, ctx.chunk_size
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if ctx.needs_input_grad[2] else None
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            for start in range(0, len(labels), size):
                h = hidden[start : start + size].to(dtype)
                y, g = labels[start : start + size], grad_logps[start : start + size]
                logits, derivative = _transform(F.linear(h, w, b).float(), ctx.scale, ctx.softcap)
                grad_z = _dlogp_dz(logits, lse[start : start + size], y, derivative).mul_(g[:, None])
                if grad_hidden is not None:
                    grad_hidden[start : start + size] = grad_z.to(dtype) @ w
                if grad_weight is not None:
                    grad_weight += (grad_z.to(dtype).T @ h).float()
                if grad_bias is not None:
                    grad_bias += grad_z.sum(0)
        grad_weight = None if grad_weight is None else grad_weight.to(weight.dtype)
        grad_bias = None if grad_bias is None else grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


class SequenceScorer(nn.Module):
    """Wraps a causal LM so that its forward returns the log-prob of each scored token.

    Being an nn.Module whose forward does all the work, it is what accelerate wraps for DDP. An SDPA model is
    switched to prefalign's segment attention (model/attention.py), unless `segment_attention=False` (the
    masked layouts then reach SDPA as a dense mask).
    """

    def __init__(self, model: nn.Module, chunk_size: int | None = None, segment_attention: bool = True):
        super().__init__()
        self.model = model
        base = unwrap(model)
        self.chunk_size = chunk_size or default_chunk_size(base.config.get_text_config().vocab_size)
        self.scale, self.softcap = _logit_transform(base.config)
        if segment_attention:
            use_segment_attention(model)

    @property
    def _no_split_modules(self) -> list[str] | None:
        """The model's decoder layer classes: what accelerate's FSDP auto-wrap shards one at a time."""
        return getattr(unwrap(self.model), "_no_split_modules", None)

    @property
    def backbone(self) -> nn.Module:
        base = unwrap(self.model)
        return getattr(base, base.base_model_prefix)

    @property
    def lm_head(self) -> nn.Module:
        return unwrap(self.model).get_output_embeddings()

    def head_weights(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """(weight, bias) of an LM head that is a plain linear layer; None for any other (a PEFT-wrapped or
        quantised head), which is then run as a module, each chunk under activation checkpointing. So is a head
        partitioned by DeepSpeed ZeRO-3 (its weight has a `ds_id`): ZeRO-3 gathers weights only inside their module."""
        head = self.lm_head
        return (head.weight, head.bias) if type(head) is nn.Linear and not hasattr(head.weight, "ds_id") else None

    def _chunk_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden).float()
        if self.scale is not None:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def _chunk_logps(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self._chunk_logits(hidden)
        return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)

    @torch.no_grad()
    def _chunk_log_sum_sq(self, hidden: torch.Tensor) -> torch.Tensor:
        """log Σ_v p(v)² at each position (WPO's normaliser), without gradient."""
        logps = torch.log_softmax(self._chunk_logits(hidden), dim=-1)
        return torch.logsumexp(2 * logps, dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        token_mask: torch.Tensor,
        segments: Segments | None,
        score_index: torch.Tensor,
        score_labels: torch.Tensor,
        with_log_sum_sq: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Log-prob of each scored token [S]; with `with_log_sum_sq` also log Σ_v p(v)² there (detached)."""
        hidden = self.hidden_states(input_ids, position_ids, token_mask, segments)
        return self.token_logps(hidden, score_index, score_labels, with_log_sum_sq)

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        token_mask: torch.Tensor,
        segments: Segments | None = None,
    ) -> torch.Tensor:
        """The backbone's last hidden states, flattened to [R·T, hidden] (rows of the batch one after another).

        Padded rows reach the backbone with their padding mask; a masked layout's segments in the form the
        model's attention reads (`attention_inputs`).
        """
        hidden = self.backbone(
            input_ids=input_ids,
            position_ids=position_ids,
            use_cache=False,
            **attention_inputs(self.model, token_mask, segments),
        ).last_hidden_state
        return hidden.reshape(-1, hidden.shape[-1])

    def token_logps(
        self,
        hidden: torch.Tensor,
        score_index: torch.Tensor,
        score_labels: torch.Tensor,
        with_log_sum_sq: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Log-probs of the scored tokens from flat hidden states, through the LM head one chunk at a time."""
        hidden = hidden.index_select(0, score_index)
        head = self.head_weights()
        if head is not None:
            token_logps = _LinearLogps.apply(hidden, *head, score_labels, self.chunk_size, self.scale, self.softcap)
        else:
            out = []
            for h, y in zip(hidden.split(self.chunk_size), score_labels.split(self.chunk_size), strict=True):
                if torch.is_grad_enabled():
                    out.append(checkpoint(self._chunk_logps, h, y, use_reentrant=False))
                else:
                    out.append(self._chunk_logps(h, y))
            token_logps = torch.cat(out) if out else hidden.new_zeros(0)
        if with_log_sum_sq:
            sq = [self._chunk_log_sum_sq(h.detach()) for h in hidden.split(self.chunk_size)]
            return token_logps, torch.cat(sq) if sq else hidden.new_zeros(0)
        return token_logps


def _position_in_sequence(score_seq: torch.Tensor) -> torch.Tensor:
    """0-based index of each scored token within its sequence (tokens of a sequence appear in order)."""
    order = torch.sort(score_seq, stable=True).indices
    counts = torch.bincount(score_seq)
    starts = counts.cumsum(0) - counts
    position = torch.empty_like(score_seq)
    position[order] = torch.arange(len(score_seq), device=score_seq.device) - starts[score_seq[order]]
    return position


def per_sequence(
    token_logps: torch.Tensor,
    batch: Batch,
    options: LogpsOptions = PLAIN,
    token_log_sum_sq: torch.Tensor | None = None,
) -> SequenceLogps:
    """Sum per-token log-probs [S] into per-sequence values by `batch.score_seq`."""
    n, b = batch.num_sequences, batch.num_examples
    counts = torch.bincount(batch.score_seq, minlength=n)
    weighted = token_logps
    if options.ld_alpha is not None:
        # The pair's shared length is the shorter answer's; sequence s pairs with s ± B.
        partner = torch.cat([counts[b : 2 * b], counts[:b]])
        shared = torch.minimum(counts[: 2 * b], partner)
        tail = _position_in_sequence(batch.score_seq) >= shared[batch.score_seq]
        weighted = torch.where(tail, options.ld_alpha * token_logps, token_logps)
    sums = token_logps.new_zeros(n).index_add(0, batch.score_seq, weighted)
    wpo = None
    if token_log_sum_sq is not None:
        aligned = (token_logps - token_log_sum_sq).detach()
        means = aligned.new_zeros(n).index_add(0, batch.score_seq, aligned) / counts.clamp(min=1)
        wpo = means.exp()
    return SequenceLogps(sums, counts, b, wpo)


def sequence_logps(scorer: nn.Module, batch: Batch, options: LogpsOptions = PLAIN) -> SequenceLogps:
    """Summed log-prob and scored-token count of every sequence in `batch`."""
    out = scorer(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        token_mask=batch.token_mask,
        segments=batch.segments,
        score_index=batch.score_index,
        score_labels=batch.score_labels,
        with_log_sum_sq=options.wpo,
    )
    token_logps, log_sum_sq = out if options.wpo else (out, None)
    return per_sequence(token_logps, batch, options, log_sum_sq)


def naive_sequence_logps(model: nn.Module, batch: Batch) -> SequenceLogps:
    """The textbook computation through full logits (a masked layout as its dense mask); the tests compare
    `sequence_logps` to it."""
    mask = as_model_reads(model, batch.attention_mask)
    logits = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids).logits
    logps = F.log_softmax(logits.float(), dim=-1).reshape(-1, logits.shape[-1])
    token_logps = logps[batch.score_index, batch.score_labels]
    return per_sequence(token_logps, batch)
