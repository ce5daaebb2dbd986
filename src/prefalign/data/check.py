"""`prefalign data preview` and `prefalign data validate`: the rows as training will see them, without training.

Both read and convert rows as `prepare_data` does (the same readers, `data.*` settings and seed) and render
them with the same Renderer and limits, so what they show is what training gets. They need the tokenizer
only, never the model's weights, and write nothing but the `datasets` cache. Unlike training, they go on
past bad rows and unreadable sources, collecting every problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from prefalign.config import ConfigError, RunConfig
from prefalign.data import check_kind
from prefalign.data.load import DataError, DataReport, canonical_rows, rows_kind, unpair_rows
from prefalign.data.render import Renderer, RenderSettings, render_report, render_settings

if TYPE_CHECKING:
    import datasets

# Printed where the prompt ends and the scored tokens begin.
BOUNDARY = "⟦scored→⟧"
PERCENTILES = (50, 90, 99)


def completion_names(columns: Any) -> tuple[str, ...]:
    """The completions named by a canonical row's columns (or a measured row's): ("chosen", "rejected") or
    ("completion",)."""
    return ("completion",) if "completion" in columns or "completion_tokens" in columns else ("chosen", "rejected")


# --- preview -------------------------------------------------------------------------------------


@dataclass
class PreviewRow:
    origin: str
    prompt_ids: list[int]  # before truncation
    completion_ids: dict[str, list[int]]  # "chosen"/"rejected" or "completion": before truncation
    label: bool | None  # unpaired rows: is the completion desirable
    rendered: dict[str, Any]  # Renderer.truncate's row: what training gets, and `drop`
    error: str = ""  # why the row cannot be rendered ("" if it can)


@dataclass
class Preview:
    rows: list[PreviewRow]
    report: DataReport  # the sources' formats, and the bad rows among the rows read


def preview_rows(config: RunConfig, tokenizer: Any, n: int) -> Preview:
    """The first `n` training rows, read, converted and rendered as training would (bad rows are reported)."""
    d = config.data
    # Each source is read only as far as the preview needs (after `fraction` picks its rows, as in training).
    sources = [s.model_copy(update={"max_rows": min(s.max_rows or n, n)}) for s in d.train]
    rows, report = canonical_rows(
        sources, d.format, skip_bad_rows=True, split_pairs=d.split_pairs, seed=config.train.seed
    )
    if d.split_pairs:
        rows = unpair_rows(rows)
    renderer = Renderer(tokenizer, render_settings(d))
    shown = []
    for row in rows.select(range(min(n, len(rows)))):
        names = completion_names(row)
        try:
            prompt_ids, completions = renderer.untruncated(row)
        except DataError:  # the settings, not the row: no chat template to render with
            raise
        except ValueError as exc:
            shown.append(PreviewRow(row["origin"], [], {}, row.get("label"), {}, error=str(exc)))
            continue
        rendered = renderer.truncate(row, prompt_ids, completions)
        full = {name: completions[f"{name}_ids"] for name in names}
        shown.append(PreviewRow(row["origin"], prompt_ids, full, row.get("label"), rendered))
    return Preview(shown, report)


def _snippet(text: str, width: int = 70) -> str:
    """`text` as a Python literal (newlines visible), its middle elided past `width` characters."""
    if len(text) > width:
        text = f"{text[: width // 2]}…{text[-width // 2 :]}"
    return repr(text)


def truncation_lines(row: PreviewRow, tokenizer: Any, settings: RenderSettings) -> list[str]:
    """What the limits do to `row`: which tokens of the prompt and of each completion are cut, or nothing."""
    rendered = row.rendered
    if rendered["drop"]:
        return [f"dropped: {rendered['drop']} (training skips this row and counts it)"]
    lines = []
    prompt_cut = len(row.prompt_ids) - len(rendered["prompt_ids"])
    if prompt_cut:
        cut = tokenizer.decode(row.prompt_ids[:prompt_cut])
        lines.append(
            f"prompt: {len(row.prompt_ids)} → {len(rendered['prompt_ids'])} tokens (max_prompt_length "
            f"{settings.max_prompt_length} keeps its end): cuts its first {prompt_cut}: {_snippet(cut)}"
        )
    for name, ids in row.completion_ids.items():
        kept = len(rendered[f"{name}_ids"])
        if kept < len(ids):
            limit = f"max_length {settings.max_length} − prompt {len(rendered['prompt_ids'])}"
            if settings.max_completion_length is not None and settings.max_completion_length <= kept:
                limit = f"max_completion_length {settings.max_completion_length}"
            cut = tokenizer.decode(ids[kept:])
            lines.append(
                f"{name}: {len(ids)} → {kept} tokens ({limit}; no end-of-turn left): "
                f"cuts its last {len(ids) - kept}: {_snippet(cut)}"
            )
    if not lines:
        longest = max(len(ids) for ids in row.completion_ids.values())
        return [
            f"no truncation (prompt {len(row.prompt_ids)} + longest answer {longest} = "
            f"{len(row.prompt_ids) + longest} tokens ≤ max_length {settings.max_length})"
        ]
    return lines


# --- validate ------------------------------------------------------------------------------------


@dataclass
class Validation:
    report: DataReport
    kinds: dict[str, str] = field(default_factory=dict)  # "data.train" (, "data.eval"): "paired" or "unpaired"
    usable: dict[str, int] = field(default_factory=dict)  # rows training would use, per key
    lengths: dict[str, dict[str, int]] = field(default_factory=dict)  # "prompt": {"p50": …, "max": …}, untruncated
    loss: str = ""  # the loss training would use on this data, and why when the data chose it

    @property
    def problems(self) -> int:
        """Bad rows, sources or settings that stop a run, and a training set left empty."""
        return len(self.report.bad_rows) + len(self.report.errors) + (self.usable.get("data.train", 0) == 0)


def _measure_batch(batch: dict, *, renderer: Renderer) -> dict:
    """Per row: the untruncated lengths, whether the limits truncate or drop it, or why it cannot be rendered."""
    names = completion_names(batch)
    columns = [name for name in batch if name != "origin"]
    out: dict[str, list] = {
        name: [] for name in ("prompt_tokens", *(f"{n}_tokens" for n in names), "truncated", "drop", "error")
    }
    for i, origin in enumerate(batch["origin"]):
        row = {name: batch[name][i] for name in columns}
        try:
            prompt_ids, completions = renderer.untruncated(row)
        except DataError:  # the settings, not the row: no chat template to render with
            raise
        except ValueError as exc:
            out["prompt_tokens"].append(-1)
            for name in names:
                out[f"{name}_tokens"].append(-1)
            out["truncated"].append(False)
            out["drop"].append("")
            out["error"].append(f"{origin}: {exc}")
            continue
        rendered = renderer.truncate(row, prompt_ids, completions)
        out["prompt_tokens"].append(len(prompt_ids))
        for name in names:
            out[f"{name}_tokens"].append(len(completions[f"{name}_ids"]))
        out["truncated"].append(rendered["truncated"])
        out["drop"].append(rendered["drop"])
        out["error"].append("")
    return out


def _percentiles(values: np.ndarray) -> dict[str, int]:
    if len(values) == 0:
        return {}
    picked = np.percentile(values, PERCENTILES, method="inverted_cdf")  # nearest rank: a length that occurs
    return {**{f"p{q}": int(v) for q, v in zip(PERCENTILES, picked, strict=True)}, "max": int(values.max())}


def validate_data(config: RunConfig, tokenizer: Any) -> Validation:
    """Read, convert and render every row of data.train and data.eval, counting every problem on the way."""
    d = config.data
    renderer = Renderer(tokenizer, render_settings(d))
    report = DataReport()
    validation = Validation(report)
    lengths: dict[str, list[np.ndarray]] = {}
    for key, sources in (("data.train", d.train), ("data.eval", d.eval or [])):
        if not sources:
            continue
        parts = _read_sources(sources, d, config.train.seed, report)
        kinds = {rows_kind(rows) for rows in parts}
        if len(kinds) > 1 and not d.split_pairs:
            report.errors.append(
                f"{key}: sources mix pairs and unpaired rows; set data.split_pairs: true to split the pairs"
            )
        kind = "unpaired" if d.split_pairs or kinds == {"unpaired"} else "paired"
        validation.kinds[key] = kind
        if key == "data.train" and parts:
            # With no loss named, the loss follows the data (unpaired rows: kto), as training does.
            config = config.for_data(kind)
            names = " + ".join(spec.name for spec, _ in config.method.terms())
            validation.loss = config.method.loss_note or (
                f"{names} (the recipe: no loss named)" if config.method.loss_from_default else f"{names} (named)"
            )
        if parts:
            try:
                check_kind(kind, config.method, key)
            except ConfigError as exc:
                report.errors.append(str(exc))
        validation.usable[key] = sum(_measure_rows(rows, key, d, renderer, report, lengths) for rows in parts)
    percentiles = {name: _percentiles(np.concatenate(parts)) for name, parts in lengths.items()}
    validation.lengths = {name: values for name, values in percentiles.items() if values}  # none if nothing rendered
    return validation


def _read_sources(sources: list, d: Any, seed: int, report: DataReport) -> list[datasets.Dataset]:
    """Each source's canonical rows, one at a time, so that a source that cannot be read does not hide the
    others: its error joins the report."""
    parts = []
    for source in sources:
        try:
            rows, read = canonical_rows(
                [source], d.format, skip_bad_rows=True, num_proc=d.num_proc, seed=seed,
                drop_duplicates=d.skip_bad_rows,  # usable rows as training counts them
            )  # fmt: skip
        except DataError as exc:
            report.errors.append(str(exc))
            continue
        report.merge(read)
        parts.append(rows)
    return parts


def _measure_rows(
    rows: datasets.Dataset, key: str, d: Any, renderer: Renderer, report: DataReport, lengths: dict[str, list]
) -> int:
    """Render one source's rows: their problems join the report, their token lengths `lengths`; returns how
    many rows training would keep."""
    if d.split_pairs:
        rows = unpair_rows(rows, d.num_proc)
    measured = rows.map(
        _measure_batch,
        batched=True,
        fn_kwargs={"renderer": renderer},
        remove_columns=rows.column_names,
        num_proc=d.num_proc,
        desc=f"Validating {key}",
    )
    columns = measured.with_format("numpy")[:]
    errors, drops, truncated = columns["error"], columns["drop"], columns["truncated"]
    report.bad_rows += [str(e) for e in errors if e]
    report.merge(render_report(truncated, drops))  # a row that failed to render is neither cut nor dropped
    rendered = errors == ""
    for name in ("prompt", *completion_names(measured.column_names)):
        lengths.setdefault(name, []).append(columns[f"{name}_tokens"][rendered])
    return int((rendered & (drops == "")).sum())
