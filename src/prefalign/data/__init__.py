"""Data: sources -> canonical rows (formats, load) -> token ids (render) -> batches (layout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import datasets

from prefalign.config import ConfigError, DataConfig, MethodConfig
from prefalign.data.formats import FORMATS, detect_format
from prefalign.data.load import DataError, DataReport, canonical_rows, read_source, rows_kind, unpair_rows
from prefalign.data.render import render_settings, tokenize_rows
from prefalign.losses import LOSSES

__all__ = ["DataError", "DataReport", "PreparedData", "data_kind", "prepare_data"]


@dataclass
class PreparedData:
    # columns prompt_ids, chosen_ids, rejected_ids, truncated (pairs) or prompt_ids, completion_ids, label, truncated
    train: datasets.Dataset
    eval: datasets.Dataset | None
    eval_prompts: datasets.Dataset | None  # canonical rows of the eval split (for generations)
    report: DataReport

    @property
    def paired(self) -> bool:
        return "chosen_ids" in self.train.column_names


def check_kind(kind: str, method: MethodConfig, key: str) -> None:
    """A config error when the rows under `key` (data.train, data.eval) are not the kind the loss trains on."""
    loss = " + ".join(method.names)
    if method.paired and kind == "unpaired":
        unpaired = ", ".join(spec.name for spec in LOSSES.values() if not spec.paired)
        raise ConfigError(
            f"method.loss: {loss} needs pairs (prompt, chosen, rejected), and {key} holds unpaired rows "
            f"(prompt, completion, label); use an unpaired loss ({unpaired})"
        )
    if not method.paired and kind == "paired":
        raise ConfigError(
            f"method.loss: {loss} needs unpaired rows (prompt, completion, label), and {key} holds pairs; "
            "set data.split_pairs: true to train on each chosen answer as desirable and each rejected one as not"
        )


def data_kind(config: DataConfig) -> str | None:
    """What data.train holds, "paired" or "unpaired", told from each source's format (its first row when the
    format is auto); None when it cannot be told here (a source that cannot be read, or sources of both kinds):
    reading the data proper then says why. For `RunConfig.for_data`, before anything is written."""
    kinds = set()
    for source in config.train:
        name = source.format if source.format != "auto" else config.format
        try:
            if name == "auto":
                kinds.add(detect_format(read_source(source)[0], source.path, source).kind)
            else:
                kinds.add(FORMATS[name].kind)
        except (DataError, ValueError, KeyError, IndexError):
            return None
    return kinds.pop() if len(kinds) == 1 else None


def prepare_data(config: DataConfig, tokenizer: Any, seed: int, method: MethodConfig | None = None) -> PreparedData:
    """Read, convert, split and tokenise the training and held-out data.

    With `method`, rows of a kind its loss cannot train on (pairs for kto, unpaired rows for sigmoid) are a
    config error, raised as soon as the rows are read.
    """
    read = dict(skip_bad_rows=config.skip_bad_rows, num_proc=config.num_proc, split_pairs=config.split_pairs, seed=seed)
    train_rows, report = canonical_rows(config.train, config.format, **read)
    eval_rows = None
    if config.eval:
        eval_rows, eval_report = canonical_rows(config.eval, config.format, **read)
        report.merge(eval_report)
    if method is not None:
        for key, rows in (("data.train", train_rows), ("data.eval", eval_rows)):
            if rows is not None:
                check_kind("unpaired" if config.split_pairs else rows_kind(rows), method, key)
    if not config.eval and config.eval_fraction > 0:
        split = train_rows.train_test_split(test_size=config.eval_fraction, seed=seed)
        train_rows, eval_rows = split["train"], split["test"]
    if config.split_pairs:  # after holding out, so that both answers of a pair land on the same side
        train_rows = unpair_rows(train_rows, config.num_proc)
        eval_rows = unpair_rows(eval_rows, config.num_proc) if eval_rows is not None else None
    settings = render_settings(config)
    train, train_report = tokenize_rows(train_rows, tokenizer, settings, num_proc=config.num_proc)
    report.merge(train_report)
    if len(train) == 0:
        raise DataError("data.train: no usable rows after tokenisation")
    evaluation = None
    if eval_rows is not None:
        evaluation, eval_report = tokenize_rows(eval_rows, tokenizer, settings, num_proc=config.num_proc)
        report.merge(eval_report)
    return PreparedData(train, evaluation, eval_rows, report)
