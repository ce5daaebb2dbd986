"""Token ids -> a Batch: the model's inputs plus, for every sequence, the positions and labels to score.

Every layout produces the same `Batch` fields, so `logps` and the losses cannot tell them apart.
A batch of B paired examples has 2B sequences: 0..B-1 the chosen answers, B..2B-1 the rejected ones.
A batch of B unpaired examples has B sequences (the completions), or 2B when KTO's KL estimate needs
mismatched completions: B..2B-1 pair example i's prompt with example i−1's completion (cycled in the batch).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Batch:
    input_ids: torch.Tensor  # [R, T]
    position_ids: torch.Tensor  # [R, T]
    attention_mask: torch.Tensor  # [R, T] padding mask (1 = real token)
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
        return int(self.attention_mask.sum())


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


LAYOUTS = {"padded": padded}


def make_batch(examples, pad_id: int, layout: str = "padded", kl: bool = False) -> Batch:
    """A batch from a list of tokenised examples (or a datasets.Dataset of them)."""
    return LAYOUTS[layout](list(examples), pad_id, kl)
