"""Token ids -> a Batch: the model's inputs plus, for every sequence, the positions and labels to score.

Every layout produces the same `Batch` fields, so `logps` and the losses cannot tell them apart.
A batch of B paired examples has 2B sequences: 0..B-1 the chosen answers, B..2B-1 the rejected ones.
A batch of B unpaired examples has B sequences (the completions), or 2B when KTO's KL estimate needs
mismatched completions: B..2B-1 pair example i's prompt with example i−1's completion (cycled in the batch).

Layouts (`LAYOUTS`), all scoring the same sequences in that numbering:

- padded: one right-padded row per sequence, a [R, T] padding mask. The reference layout; any attention
  implementation takes it.
- packed: several sequences per row, up to a token budget (`pack_length`, else the longest sequence), with
  a [R, 1, T, T] boolean mask (True = attend) that is block-diagonal causal, and `position_ids` that restart
  at 0 for each sequence, so each token sees exactly what it sees in its own padded row.
- prefix_shared: the sequences of a batch that have the same prompt (a pair's chosen and rejected answers;
  an unpaired example's completion and its KL completion) share one copy of it: `prompt | answer 1 |
  answer 2 ...` in one row. An answer's tokens attend to the prompt and causally to themselves, never to
  another answer; their positions continue from the end of the prompt. The prompt's last position scores
  the first token of every answer.
- prefix_shared_packed: those prompt-sharing groups packed several to a row.

4-D masks need an attention implementation that applies an arbitrary mask: SDPA and eager
(`supports_4d_mask`); transformers passes a 4-D mask to the attention as it is, with the explicit
`position_ids`. SDPA reads a boolean mask; eager adds the mask to the scores, so `model_attention_mask`
turns it into an additive one there.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from prefalign.config import ConfigError


@dataclass
class Batch:
    input_ids: torch.Tensor  # [R, T]
    position_ids: torch.Tensor  # [R, T]
    attention_mask: torch.Tensor  # [R, T] padding mask (1 = real token), or [R, 1, T, T] bool (True = attend)
    score_index: torch.Tensor  # [S] flat index row*T + t of each position that predicts a scored token
    score_labels: torch.Tensor  # [S] the token predicted there
    score_seq: torch.Tensor  # [S] which sequence the scored token belongs to (its tokens in order)
    num_pairs: int  # B, examples in the batch (pairs, or unpaired examples)
    num_sequences: int  # 2B paired; B or 2B unpaired
    labels: torch.Tensor | None = None  # [B] bool, unpaired: desirable completion
    margin: torch.Tensor | None = None  # [B] float, the data's margin column where it has one
    # [N] flat index of each sequence's last token (the EOS ending its answer): where a reward model reads its value.
    # Not the last of score_index: that position *predicts* the last token and has not seen it.
    end_index: torch.Tensor | None = None
    # [R, T] 1 at real (non-padding) positions, for layouts whose attention_mask is 4-D.
    token_mask: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device)
        return Batch(**moved)

    @property
    def num_scored_tokens(self) -> int:
        return int(self.score_labels.numel())

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) positions the model runs: a prompt shared by several answers counts once."""
        mask = self.token_mask if self.token_mask is not None else self.attention_mask
        return int(mask.sum())


def sequences_of(examples: list[dict], kl: bool = False) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, scored ids) of every sequence of a batch, in the numbering the module docstring gives."""
    if "chosen_ids" in examples[0]:
        sequences = [(ex["prompt_ids"], ex["chosen_ids"]) for ex in examples]
        return sequences + [(ex["prompt_ids"], ex["rejected_ids"]) for ex in examples]
    sequences = [(ex["prompt_ids"], ex["completion_ids"]) for ex in examples]
    if kl:
        shifted = examples[-1:] + examples[:-1]
        sequences += [(ex["prompt_ids"], other["completion_ids"]) for ex, other in zip(examples, shifted, strict=True)]
    return sequences


def _example_columns(examples: list[dict]) -> dict:
    columns = {}
    if "label" in examples[0]:
        columns["labels"] = torch.tensor([bool(ex["label"]) for ex in examples])
    if any(ex.get("margin") is not None for ex in examples):
        columns["margin"] = torch.tensor([float(ex.get("margin") or 0.0) for ex in examples])
    return columns


def padded(examples: list[dict], pad_id: int, kl: bool = False) -> Batch:
    """The reference layout: one row per sequence (prompt + answer), right-padded."""
    sequences = sequences_of(examples, kl)
    width = max(len(p) + len(c) for p, c in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    score_index, score_labels, score_seq, end_index = [], [], [], []
    for row, (prompt, completion) in enumerate(sequences):
        ids = list(prompt) + list(completion)
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        start = len(prompt)
        # The logits at position t predict token t+1: the last prompt position scores the first answer token.
        score_index += [row * width + t - 1 for t in range(start, len(ids))]
        score_labels += ids[start:]
        score_seq += [row] * len(completion)
        end_index.append(row * width + len(ids) - 1)
    position_ids = torch.arange(width).expand(len(sequences), width).contiguous()
    return Batch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=attention_mask,
        score_index=torch.tensor(score_index, dtype=torch.long),
        score_labels=torch.tensor(score_labels, dtype=torch.long),
        score_seq=torch.tensor(score_seq, dtype=torch.long),
        num_pairs=len(examples),
        num_sequences=len(sequences),
        end_index=torch.tensor(end_index, dtype=torch.long),
        **_example_columns(examples),
    )


@dataclass
class _Group:
    """Sequences that share one copy of their prompt in a row: the prompt, then each answer in turn."""

    prompt: list[int]
    answers: list[tuple[int, list[int]]]  # (sequence number, answer ids)

    def __len__(self) -> int:
        return len(self.prompt) + sum(len(answer) for _, answer in self.answers)


def _groups(sequences: list[tuple[list[int], list[int]]], share_prompts: bool) -> list[_Group]:
    """One group per sequence, or (share_prompts) one per distinct prompt, in order of first appearance."""
    groups: dict[tuple[int, ...], _Group] = {}
    for seq, (prompt, answer) in enumerate(sequences):
        if not prompt:  # the last prompt position scores an answer's first token
            raise ValueError(f"sequence {seq} has an empty prompt: it needs at least one token (BOS) to be scored")
        key = tuple(prompt) if share_prompts else (seq,)
        groups.setdefault(key, _Group(list(prompt), [])).answers.append((seq, list(answer)))
    return list(groups.values())


def _pack(groups: list[_Group], budget: int) -> list[list[_Group]]:
    """Rows of groups, each row at most `budget` tokens (a longer group gets a row of its own): first-fit
    decreasing, stable for equal lengths, so the same batch always packs the same way."""
    rows: list[list[_Group]] = []
    free: list[int] = []
    for group in sorted(groups, key=len, reverse=True):
        row = next((r for r, room in enumerate(free) if len(group) <= room), None)
        if row is None:
            rows.append([])
            free.append(max(budget, len(group)))
            row = len(rows) - 1
        rows[row].append(group)
        free[row] -= len(group)
    return rows


def _masked_layout(
    examples: list[dict], pad_id: int, kl: bool, *, share_prompts: bool, pack: bool, pack_length: int | None
) -> Batch:
    """Rows of prompt-sharing groups (or single sequences) under a 4-D block mask; see the module docstring."""
    sequences = sequences_of(examples, kl)
    groups = _groups(sequences, share_prompts)
    longest = max(len(group) for group in groups)
    rows = _pack(groups, pack_length or longest) if pack else [[group] for group in groups]
    width = max(sum(len(group) for group in row) for row in rows)
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    # Which group (block) and which branch of it (0: the prompt, k: the k-th answer) each position holds.
    block = torch.full(shape, -1, dtype=torch.long)
    branch = torch.zeros(shape, dtype=torch.long)
    score_index = [[] for _ in sequences]
    score_labels = [[] for _ in sequences]
    end_index = [0] * len(sequences)
    for r, row in enumerate(rows):
        t = 0
        for g, group in enumerate(row):
            n = len(group.prompt)
            input_ids[r, t : t + n] = torch.tensor(group.prompt)
            position_ids[r, t : t + n] = torch.arange(n)
            block[r, t : t + n] = g
            last_prompt = r * width + t + n - 1
            t += n
            for k, (seq, answer) in enumerate(group.answers, start=1):
                m = len(answer)
                input_ids[r, t : t + m] = torch.tensor(answer)
                # Positions continue from the end of the prompt, so RoPE sees the offsets of the answer's own sequence.
                position_ids[r, t : t + m] = torch.arange(n, n + m)
                block[r, t : t + m] = g
                branch[r, t : t + m] = k
                # Token j of the answer is predicted at the position before it: the prompt's last for j = 0.
                score_index[seq] = [r * width + t + j - 1 if j else last_prompt for j in range(m)]
                score_labels[seq] = answer
                end_index[seq] = r * width + t + m - 1 if m else last_prompt
                t += m
    token_mask = block >= 0
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same_block = (block[:, :, None] == block[:, None, :]) & token_mask[:, :, None]
    # A key in the prompt is visible to the whole group; a key in an answer only to that answer's later tokens.
    visible_branch = (branch[:, None, :] == 0) | (branch[:, :, None] == branch[:, None, :])
    attention_mask = same_block & visible_branch & causal
    # Padding attends to itself only: a query that sees nothing gives NaN in SDPA (and in its backward).
    attention_mask |= torch.eye(width, dtype=torch.bool)
    return Batch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=attention_mask[:, None],
        score_index=torch.tensor([i for seq in score_index for i in seq], dtype=torch.long),
        score_labels=torch.tensor([y for seq in score_labels for y in seq], dtype=torch.long),
        score_seq=torch.tensor([s for s, seq in enumerate(score_labels) for _ in seq], dtype=torch.long),
        num_pairs=len(examples),
        num_sequences=len(sequences),
        end_index=torch.tensor(end_index, dtype=torch.long),
        token_mask=token_mask.long(),
        **_example_columns(examples),
    )


def packed(examples: list[dict], pad_id: int, kl: bool = False, pack_length: int | None = None) -> Batch:
    """Sequences (prompt + answer each) packed into rows of at most `pack_length` tokens (default: the longest)."""
    return _masked_layout(examples, pad_id, kl, share_prompts=False, pack=True, pack_length=pack_length)


def prefix_shared(examples: list[dict], pad_id: int, kl: bool = False, pack_length: int | None = None) -> Batch:
    """One row per distinct prompt: the prompt once, then every answer to it (chosen, then rejected)."""
    return _masked_layout(examples, pad_id, kl, share_prompts=True, pack=False, pack_length=None)


def prefix_shared_packed(examples: list[dict], pad_id: int, kl: bool = False, pack_length: int | None = None) -> Batch:
    """Prefix-shared groups packed into rows of at most `pack_length` tokens (default: the longest group)."""
    return _masked_layout(examples, pad_id, kl, share_prompts=True, pack=True, pack_length=pack_length)


def _padded(examples: list[dict], pad_id: int, kl: bool = False, pack_length: int | None = None) -> Batch:
    return padded(examples, pad_id, kl)


LAYOUTS = {
    "padded": _padded,
    "packed": packed,
    "prefix_shared": prefix_shared,
    "prefix_shared_packed": prefix_shared_packed,
}
LAYOUT_NAMES = ("auto", *LAYOUTS)  # what data.layout accepts

# Attention implementations that apply an arbitrary [R, 1, T, T] mask given as a tensor. flash-attention
# takes only padding masks (varlen), flex_attention a BlockMask.
_MASKED_ATTENTION = ("sdpa", "eager")


def attention_implementation(model) -> str:
    """The attention implementation a (possibly PEFT-wrapped) transformers model runs."""
    get_base = getattr(model, "get_base_model", None)
    base = get_base() if callable(get_base) else model
    return str(getattr(base.config, "_attn_implementation", None) or "eager")


def _sliding_window(model) -> bool:
    """Whether some layer attends through a sliding window, which a 4-D mask given as it is would not apply."""
    get_base = getattr(model, "get_base_model", None)
    config = (get_base() if callable(get_base) else model).config.get_text_config()
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return any("sliding" in kind for kind in layer_types)
    return getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", True)


def supports_4d_mask(model) -> bool:
    """Whether the model's attention applies a [R, 1, T, T] mask exactly as padded rows would be attended."""
    return attention_implementation(model) in _MASKED_ATTENTION and not _sliding_window(model)


def resolve_layout(layout: str, model) -> str:
    """`data.layout` for `model`: auto is prefix_shared_packed where the attention takes a 4-D mask, else padded
    (flash-attention, flex attention, sliding-window layers).

    prefix_shared_packed runs each prompt once and no padding: on SmolLM2-135M with SDPA on CPU, 45% fewer
    positions than padded for the same pairs (a timing on a loaded machine agreed, too noisy to quote;
    benchmarks/speed.py measures it). An explicit 4-D layout on an attention that cannot take it is an error.
    """
    if layout not in LAYOUT_NAMES:
        raise ConfigError(f"data.layout: unknown layout {layout!r}; known: {', '.join(LAYOUT_NAMES)}")
    if layout == "auto":
        return "prefix_shared_packed" if supports_4d_mask(model) else "padded"
    if layout != "padded" and not supports_4d_mask(model):
        why = (
            "it attends through a sliding window, which transformers does not apply to a given 4-D mask"
            if _sliding_window(model)
            else f"its attention implementation {attention_implementation(model)!r} does not take one "
            f"({' and '.join(_MASKED_ATTENTION)} do)"
        )
        raise ConfigError(
            f"data.layout: {layout} needs a 4-D attention mask, and this model cannot use one: {why}; "
            "use data.layout: padded (or auto)"
        )
    return layout


def model_attention_mask(attention_mask: torch.Tensor, model, dtype: torch.dtype) -> torch.Tensor:
    """The mask as the model's attention reads it: a 4-D boolean mask becomes additive (0 / min) for eager,
    which adds the mask to the scores; SDPA takes the boolean mask (True = attend) as it is."""
    if attention_mask.dim() != 4 or attention_mask.dtype != torch.bool or attention_implementation(model) != "eager":
        return attention_mask
    return torch.zeros(attention_mask.shape, dtype=dtype, device=attention_mask.device).masked_fill(
        ~attention_mask, torch.finfo(dtype).min
    )


def make_batch(
    examples, pad_id: int, layout: str = "padded", kl: bool = False, pack_length: int | None = None
) -> Batch:
    """A batch from a list of tokenised examples (or a datasets.Dataset of them), in a resolved layout."""
    return LAYOUTS[layout](list(examples), pad_id, kl, pack_length)
