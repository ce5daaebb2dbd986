"""Token ids -> a Batch: the model's inputs plus, for every sequence, the positions and labels to score.

Every layout produces the same `Batch` fields, so `logps` and the losses cannot tell them apart.
A batch of B paired examples has 2B sequences: 0..B-1 the chosen answers, B..2B-1 the rejected ones.
A batch of B unpaired examples has B sequences (the completions), or 2B when KTO's KL estimate needs
mismatched completions: B..2B-1 pair example i's prompt with example i−1's completion (cycled in the batch).

Layouts (`LAYOUTS`), all scoring the same sequences in that numbering:

- padded: one right-padded row per sequence, a [R, T] padding mask. The reference layout; any attention
  implementation takes it.
- packed: several sequences per row, up to a token budget (`pack_length`, else the longest sequence),
  attending block-diagonally causal, with `position_ids` that restart at 0 for each sequence, so each token
  sees exactly what it sees in its own padded row.
- prefix_shared: the sequences of a batch that have the same prompt (a pair's chosen and rejected answers;
  an unpaired example's completion and its KL completion) share one copy of it: `prompt | answer 1 |
  answer 2 ...` in one row. An answer's tokens attend to the prompt and causally to themselves, never to
  another answer; their positions continue from the end of the prompt. The prompt's last position scores
  the first token of every answer.
- prefix_shared_packed: those prompt-sharing groups packed several to a row.

The masked layouts describe their attention as `Segments`: per row, the blocks of positions that attend
causally to themselves and fully to the prompt before them (`Batch.attention_mask` is the same as a
[R, 1, T, T] boolean mask, True = attend). `model/attention.py` gives it to the model's attention in the
form that attention reads: per-block SDPA calls that compute no masked score, a FlexAttention block mask,
or the dense mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass(frozen=True)
class Block:
    """Positions [start, end) of a row that attend causally to themselves and fully to the prompt
    [prompt_start, prompt_end) earlier in the row: a group's prompt with its first answer (no separate prompt),
    or a later answer of the group and the group's prompt. Every query of a block sees exactly the keys of
    its own sequence."""

    start: int
    end: int
    prompt_start: int = 0
    prompt_end: int = 0


@dataclass(frozen=True)
class Segments:
    """The attention of a masked layout's rows: per row, its blocks in position order, tiling the row from 0;
    the positions after the last block are padding, which attends to itself only."""

    rows: tuple[tuple[Block, ...], ...]
    width: int
    _masks: dict = field(default_factory=dict, compare=False, repr=False)  # dense masks built, per device

    def __post_init__(self):
        for r, blocks in enumerate(self.rows):
            position = 0
            for block in blocks:
                if block.start != position or block.end <= block.start or block.prompt_end > block.start:
                    raise ValueError(f"row {r}: blocks must tile the row in order, each after its prompt: {blocks}")
                position = block.end
            if position > self.width:
                raise ValueError(f"row {r}: blocks end at {position}, past the row width {self.width}")

    def bounds(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per position [R, T]: where its block starts, and its prompt's [start, end); a position t sees the keys
        k with block_start <= k <= t or prompt_start <= k < prompt_end (padding: its own block of one)."""
        shape = (len(self.rows), self.width)
        block_start = torch.arange(self.width).expand(shape).clone()
        prompt_start = torch.zeros(shape, dtype=torch.long)
        prompt_end = torch.zeros(shape, dtype=torch.long)
        for r, blocks in enumerate(self.rows):
            for b in blocks:
                block_start[r, b.start : b.end] = b.start
                prompt_start[r, b.start : b.end] = b.prompt_start
                prompt_end[r, b.start : b.end] = b.prompt_end
        return block_start.to(device), prompt_start.to(device), prompt_end.to(device)

    def dense_mask(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The [R, 1, T, T] boolean mask (True = attend) of the blocks."""
        key = str(device)
        if key not in self._masks:
            block_start, prompt_start, prompt_end = (b[:, :, None] for b in self.bounds(device))
            keys = torch.arange(self.width, device=device)
            queries = keys[:, None]
            mask = ((keys >= block_start) & (keys <= queries)) | ((keys >= prompt_start) & (keys < prompt_end))
            self._masks[key] = mask[:, None]
        return self._masks[key]


@dataclass
class Batch:
    input_ids: torch.Tensor  # [R, T]
    position_ids: torch.Tensor  # [R, T]
    # [R, T] 1 at real (non-padding) positions; in the padded layout also the attention's padding mask.
    token_mask: torch.Tensor
    score_index: torch.Tensor  # [S] flat index row*T + t of each position that predicts a scored token
    score_labels: torch.Tensor  # [S] the token predicted there
    score_seq: torch.Tensor  # [S] which sequence the scored token belongs to (its tokens in order)
    num_examples: int  # B, examples in the batch (pairs, or unpaired examples)
    num_sequences: int  # 2B paired; B or 2B unpaired
    segments: Segments | None = None  # the masked layouts' attention; None: padded rows, causal under token_mask
    labels: torch.Tensor | None = None  # [B] bool, unpaired: desirable completion
    margin: torch.Tensor | None = None  # [B] float, the data's margin column where it has one
    # [N] flat index of each sequence's last token (the EOS ending its answer): where a reward model reads its value.
    # Not the last of score_index: that position *predicts* the last token and has not seen it.
    end_index: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device)
        return Batch(**moved)

    @property
    def attention_mask(self) -> torch.Tensor:
        """The attention as one tensor: the [R, T] padding mask, or the masked layouts' [R, 1, T, T] boolean mask."""
        if self.segments is None:
            return self.token_mask
        return self.segments.dense_mask(self.input_ids.device)

    @property
    def num_scored_tokens(self) -> int:
        return int(self.score_labels.numel())

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) positions the model runs: a prompt shared by several answers counts once."""
        return int(self.token_mask.sum())


def sequences_of(examples: list[dict], kl_completions: bool = False) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, scored ids) of every sequence of a batch, in the numbering the module docstring gives."""
    if "chosen_ids" in examples[0]:
        sequences = [(ex["prompt_ids"], ex["chosen_ids"]) for ex in examples]
        return sequences + [(ex["prompt_ids"], ex["rejected_ids"]) for ex in examples]
    sequences = [(ex["prompt_ids"], ex["completion_ids"]) for ex in examples]
    if kl_completions:  # KTO's KL estimate: each prompt with another example's completion
        # The training loop names each example's partner (kl_completion_ids) when it lies in another process's
        # share of the step; otherwise the partner is the previous example of the batch, cycled.
        shifted = [ex.get("kl_completion_ids", other["completion_ids"]) for ex, other in
                   zip(examples, examples[-1:] + examples[:-1], strict=True)]  # fmt: skip
        sequences += [(ex["prompt_ids"], other) for ex, other in zip(examples, shifted, strict=True)]
    return sequences


def _example_columns(examples: list[dict]) -> dict:
    columns = {}
    if "label" in examples[0]:
        columns["labels"] = torch.tensor([bool(ex["label"]) for ex in examples])
    if any(ex.get("margin") is not None for ex in examples):
        columns["margin"] = torch.tensor([float(ex.get("margin") or 0.0) for ex in examples])
    return columns


def padded(examples: list[dict], pad_id: int, kl_completions: bool = False) -> Batch:
    """The reference layout: one row per sequence (prompt + answer), right-padded."""
    sequences = sequences_of(examples, kl_completions)
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
        token_mask=attention_mask,
        score_index=torch.tensor(score_index, dtype=torch.long),
        score_labels=torch.tensor(score_labels, dtype=torch.long),
        score_seq=torch.tensor(score_seq, dtype=torch.long),
        num_examples=len(examples),
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


# data.pack_length for one row per batch: where the attention computes no masked score (segments, FlexAttention),
# a wider row costs nothing, and a single row has no padding at all.
ONE_ROW = 2**62


def _pack(groups: list[_Group], budget: int | None) -> list[list[_Group]]:
    """Rows of groups, each row at most `budget` tokens (None: the longest group's; a longer group gets a row of
    its own): first-fit decreasing, stable for equal lengths, so the same batch always packs the same way."""
    budget = budget or max(len(group) for group in groups)
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
    examples: list[dict], pad_id: int, kl_completions: bool, *, share_prompts: bool, pack: bool, pack_length: int | None
) -> Batch:
    """Rows of prompt-sharing groups (or single sequences) and their attention blocks; see the module docstring."""
    sequences = sequences_of(examples, kl_completions)
    groups = _groups(sequences, share_prompts)
    rows = _pack(groups, pack_length) if pack else [[group] for group in groups]
    width = max(sum(len(group) for group in row) for row in rows)
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    token_mask = torch.zeros(shape, dtype=torch.long)
    blocks: list[tuple[Block, ...]] = []
    score_index = [[] for _ in sequences]
    score_labels = [[] for _ in sequences]
    end_index = [0] * len(sequences)
    for r, row in enumerate(rows):
        t = 0
        row_blocks = []
        for group in row:
            n = len(group.prompt)
            input_ids[r, t : t + n] = torch.tensor(group.prompt)
            position_ids[r, t : t + n] = torch.arange(n)
            prompt_start, last_prompt = t, r * width + t + n - 1
            t += n
            for k, (seq, answer) in enumerate(group.answers):
                m = len(answer)
                input_ids[r, t : t + m] = torch.tensor(answer)
                # Positions continue from the end of the prompt, so RoPE sees the offsets of the answer's own sequence.
                position_ids[r, t : t + m] = torch.arange(n, n + m)
                # The first answer runs on from its prompt (one causal block); a later one sees the prompt whole and
                # itself causally, never an earlier answer.
                if k == 0:
                    row_blocks.append(Block(prompt_start, t + m))
                elif m:
                    row_blocks.append(Block(t, t + m, prompt_start, prompt_start + n))
                # Token j of the answer is predicted at the position before it: the prompt's last for j = 0.
                score_index[seq] = [r * width + t + j - 1 if j else last_prompt for j in range(m)]
                score_labels[seq] = answer
                end_index[seq] = r * width + t + m - 1 if m else last_prompt
                t += m
        token_mask[r, :t] = 1
        blocks.append(tuple(row_blocks))
    return Batch(
        input_ids=input_ids,
        position_ids=position_ids,
        token_mask=token_mask,
        segments=Segments(tuple(blocks), width),
        score_index=torch.tensor([i for seq in score_index for i in seq], dtype=torch.long),
        score_labels=torch.tensor([y for seq in score_labels for y in seq], dtype=torch.long),
        score_seq=torch.tensor([s for s, seq in enumerate(score_labels) for _ in seq], dtype=torch.long),
        num_examples=len(examples),
        num_sequences=len(sequences),
        end_index=torch.tensor(end_index, dtype=torch.long),
        **_example_columns(examples),
    )


def packed(examples: list[dict], pad_id: int, kl_completions: bool = False, pack_length: int | None = None) -> Batch:
    """Sequences (prompt + answer each) packed into rows of at most `pack_length` tokens (default: the longest)."""
    return _masked_layout(examples, pad_id, kl_completions, share_prompts=False, pack=True, pack_length=pack_length)


def prefix_shared(
    examples: list[dict], pad_id: int, kl_completions: bool = False, pack_length: int | None = None
) -> Batch:
    """One row per distinct prompt: the prompt once, then every answer to it (chosen, then rejected)."""
    return _masked_layout(examples, pad_id, kl_completions, share_prompts=True, pack=False, pack_length=None)


def prefix_shared_packed(
    examples: list[dict], pad_id: int, kl_completions: bool = False, pack_length: int | None = None
) -> Batch:
    """Prefix-shared groups packed into rows of at most `pack_length` tokens (default: the longest group)."""
    return _masked_layout(examples, pad_id, kl_completions, share_prompts=True, pack=True, pack_length=pack_length)


def _padded(examples: list[dict], pad_id: int, kl_completions: bool = False, pack_length: int | None = None) -> Batch:
    return padded(examples, pad_id, kl_completions)


LAYOUTS = {
    "padded": _padded,
    "packed": packed,
    "prefix_shared": prefix_shared,
    "prefix_shared_packed": prefix_shared_packed,
}


def make_batch(
    examples, pad_id: int, layout: str = "padded", kl_completions: bool = False, pack_length: int | None = None
) -> Batch:
    """A batch from a list of tokenised examples (or a datasets.Dataset of them), in a resolved layout."""
    return LAYOUTS[layout](list(examples), pad_id, kl_completions, pack_length)
