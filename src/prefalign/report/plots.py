"""Figures as inline SVG, drawn by matplotlib.

Why matplotlib to SVG and not plotly: the page must work from disk with no network, and plotly's offline bundle
inlined is ~3.5 MB of JavaScript per file (the report is rewritten at every eval); an SVG curve is a few KB, needs
no script at all (so there is nothing to fail in the browser's console), and prints. Text stays text
(`svg.fonttype: none`) and paths are not simplified, so every logged point is a vertex of its line: the browser
test reads a vertex back and checks it against metrics.jsonl.

Each figure is wrapped in `<figure class="plot" data-metric=… data-xlim=… data-ylim=…>`; the axes' background
has the SVG id `{slug}-axes` and each line `{slug}-{series}`, so a test (or a user's script) can map a vertex to
data coordinates.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from prefalign.report.page import esc

Points = Sequence[tuple[float, float]]

COLOURS = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#6e7781", "#bf3989")
WARNING_COLOUR = "#d4a72c"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "plot"


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4, 2.9), dpi=100)
    # Fixed margins instead of a constrained layout: a layout engine doubles the time to draw a figure, and the
    # report is redrawn at every eval while training waits.
    fig.subplots_adjust(left=0.15, right=0.97, top=0.9, bottom=0.16)
    return fig, fig.add_subplot()


def _svg(fig, key: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    # A salt per figure keeps matplotlib's clip-path ids unique across the figures of one page.
    settings = {"svg.fonttype": "none", "path.simplify": False, "svg.hashsalt": key}
    with matplotlib.rc_context(settings):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # drop the XML declaration and doctype: the SVG is inlined in HTML
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF licence boilerplate


def _wrap(fig, ax, key: str, title: str, caption: str, svg: str) -> str:
    (x0, x1), (y0, y1) = (map(float, ax.get_xlim()), map(float, ax.get_ylim()))  # numpy scalars print as np.float64
    return (
        f'<figure class="plot" id="plot-{key}" data-metric="{esc(title)}" data-xlim="{x0!r},{x1!r}" '
        f'data-ylim="{y0!r},{y1!r}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'
    )


def _style(ax, title: str, xlabel: str = "step") -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, color="#eaeef2", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def curve(
    title: str,
    series: dict[str, Points],
    *,
    markers: Sequence[float] = (),
    marker_label: str = "warning",
    caption: str = "",
) -> str:
    """One metric against the step: a line per series (train, eval, or one per run), vertical marks at `markers`."""
    key = slug(title)
    fig, ax = _figure()
    _style(ax, title)
    for i, (name, points) in enumerate(series.items()):
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        eval_like = name.startswith("eval") and len(series) <= 3
        (line,) = ax.plot(
            xs,
            ys,
            color=COLOURS[i % len(COLOURS)],
            linewidth=1.4,
            marker="o" if eval_like or len(points) == 1 else None,
            markersize=3.5,
            label=name,
        )
        line.set_gid(f"{key}-{slug(name)}")
    for j, step in enumerate(markers):
        ax.axvline(step, color=WARNING_COLOUR, linestyle="--", linewidth=1.2, label=marker_label if j == 0 else None)
        ax.lines[-1].set_gid(f"{key}-{slug(marker_label)}-{j}")
    ax.patch.set_gid(f"{key}-axes")
    if len([s for s in series.values() if s]) > 1 or markers:
        ax.legend(fontsize=7, frameon=False)
    return _wrap(fig, ax, key, title, caption, _svg(fig, key))


def histogram(title: str, groups: dict[str, Sequence[float]], *, caption: str = "", bins: int = 20) -> str:
    """Overlaid histograms on shared bins (reward of chosen vs rejected answers, before and after)."""
    import numpy as np

    key = slug(title)
    fig, ax = _figure()
    _style(ax, title, xlabel="reward")
    values = [v for group in groups.values() for v in group]
    edges = np.histogram_bin_edges(values or [0.0], bins=bins)
    for i, (name, group) in enumerate(groups.items()):
        if not len(group):
            continue
        _, _, patches = ax.hist(group, bins=edges, alpha=0.45, color=COLOURS[i % len(COLOURS)], label=name)
        for j, patch in enumerate(patches):
            patch.set_gid(f"{key}-{slug(name)}-bar-{j}")
    ax.set_ylabel("answers", fontsize=8)
    ax.patch.set_gid(f"{key}-axes")
    ax.legend(fontsize=7, frameon=False)
    return _wrap(fig, ax, key, title, caption, _svg(fig, key))
