"""Token ids -> a Batch: the model's inputs plus, for every sequence, the positions and labels to score.

Every layout produces the same `Batch` fields, so `logps` and the losses cannot tell them apart.
Sequences are numbered 0..B-1 for the chosen answers and B..2B-1 for the rejected ones.
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
    score_seq: torch.Tensor  # [S] which sequence (0..2B-1) the scored token belongs to
    num_pairs: int

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


def padded(examples: list[dict], pad_id: int) -> Batch:
    """The reference layout: chosen rows then rejected rows (2B rows), each prompt + answer, right-padded."""
    sequences = [(ex["prompt_ids"], ex["chosen_ids"]) for ex in examples]
    sequences += [(ex["prompt_ids"], ex["rejected_ids"]) for ex in examples]
    width = max(len(p) + len(c) for p, c in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    score_index, score_labels, score_seq = [], [], []
    for row, (prompt, completion) in enumerate(sequences):
        ids = list(prompt) + list(completion)
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        start = len(prompt)
        # The logits at position t predict token t+1: the last prompt position scores the first answer token.
        score_index += [row * width + t - 1 for t in range(start, len(ids))]
        score_labels += ids[start:]
        score_seq += [row] * len(completion)
    position_ids = torch.arange(width).expand(len(sequences), width).contiguous()
    return Batch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=attention_mask,
        score_index=torch.tensor(score_index, dtype=torch.long),
        score_labels=torch.tensor(score_labels, dtype=torch.long),
        score_seq=torch.tensor(score_seq, dtype=torch.long),
        num_pairs=len(examples),
    )


LAYOUTS = {"padded": padded}


def make_batch(examples: list[dict], pad_id: int, layout: str = "padded") -> Batch:
    return LAYOUTS[layout](examples, pad_id)
