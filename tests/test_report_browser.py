"""report.html in a real browser: Debian's chromium, headless, loads the page from disk; no console errors, a
screenshot that is not blank, every plot drawn, and a plotted point read back against metrics.jsonl.

PREFALIGN_REPORT_RUN=DIR renders and checks that run instead of the tiny one, and PREFALIGN_SCREENSHOT=PNG keeps
the screenshot (the README's picture is made this way from the quickstart run)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from prefalign.report.render import render_report
from tests.chromium import Browser, chromium_path

if chromium_path() is None:
    if os.environ.get("CI"):
        pytest.fail("chromium is missing on CI: `make test` installs it (apt-get install chromium)", pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

# The DOM facts the test reads: per figure, its metric, axis limits, the axes' box and each line's path.
FIGURES_JS = """
Array.from(document.querySelectorAll('figure.plot')).map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const axes = f.querySelector('g[id$="-axes"] path');
  return {
    metric: f.dataset.metric, xlim: f.dataset.xlim, ylim: f.dataset.ylim,
    width: box.width, height: box.height,
    axes: axes ? axes.getAttribute('d') : null,
    lines: Object.fromEntries(Array.from(f.querySelectorAll('g[id] > path')).map(p =>
      [p.parentElement.id, p.getAttribute('d')])),
  };
})
"""


def _numbers(path: str) -> list[tuple[float, float]]:
    values = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", path)]
    return list(zip(values[0::2], values[1::2], strict=True))


def _to_data(point: tuple[float, float], axes: str, xlim: str, ylim: str) -> tuple[float, float]:
    """An SVG vertex back to data coordinates, through the axes' box and its limits (SVG's y grows downwards)."""
    corners = _numbers(axes)
    left, right = min(x for x, _ in corners), max(x for x, _ in corners)
    top, bottom = min(y for _, y in corners), max(y for _, y in corners)
    (x0, x1), (y0, y1) = (map(float, xlim.split(",")), map(float, ylim.split(",")))
    x = x0 + (point[0] - left) / (right - left) * (x1 - x0)
    y = y0 + (bottom - point[1]) / (bottom - top) * (y1 - y0)
    return x, y


@pytest.fixture
def report_run(request, tmp_path) -> Path:
    if os.environ.get("PREFALIGN_REPORT_RUN"):
        return Path(os.environ["PREFALIGN_REPORT_RUN"])
    run = shutil.copytree(request.getfixturevalue("policy_run"), tmp_path / "run")  # trained only when needed
    (run / "warnings.jsonl").write_text(json.dumps({"step": 6, "message": "a likelihood-watch finding"}) + "\n")
    return run


def test_report_in_chromium(report_run, tmp_path):
    page = render_report(report_run)
    metrics = [json.loads(line) for line in (report_run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    screenshot = Path(os.environ.get("PREFALIGN_SCREENSHOT") or tmp_path / "report.png")
    with Browser(width=1280, height=900) as browser:
        browser.open(page)
        assert browser.evaluate("document.body.dataset.prefalign") == "report"  # our page, not an error page
        figures = browser.evaluate(FIGURES_JS)
        browser.screenshot(screenshot)
        problems = [m for m in browser.console if m["level"] in ("error", "warning")]
    assert problems == []

    # Every plot is there and drawn: a visible SVG, an axes box and at least one line with vertices.
    expected = {"loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected", "lr"}
    assert expected <= {f["metric"] for f in figures}
    logged = {split: {k for r in metrics if r["split"] == split for k in r} for split in ("train", "eval")}
    for figure in figures:
        assert figure["width"] > 100 and figure["height"] > 50, figure["metric"]
        assert figure["axes"], figure["metric"]
        # A metric held-out evaluation alone logs (the probe's general_nll) has only its eval line.
        split = "train" if figure["metric"] in logged["train"] else "eval"
        drawn = [d for name, d in figure["lines"].items() if name.endswith(f"-{split}") and len(_numbers(d)) >= 2]
        assert drawn, f"{figure['metric']}: no {split} line drawn"

    # A plotted value read back from the drawing: the train loss at the last logged step.
    loss = next(f for f in figures if f["metric"] == "loss")
    train = [r for r in metrics if r["split"] == "train"]
    vertices = _numbers(loss["lines"]["loss-train"])
    assert len(vertices) == len(train)
    step, value = _to_data(vertices[-1], loss["axes"], loss["xlim"], loss["ylim"])
    y0, y1 = map(float, loss["ylim"].split(","))
    assert step == pytest.approx(train[-1]["step"], abs=0.01)
    assert value == pytest.approx(train[-1]["loss"], abs=0.002 * (y1 - y0))

    # The screenshot is a page, not a blank: many colours, and far from all white.
    from PIL import Image

    image = Image.open(screenshot).convert("RGB")
    assert image.width >= 1000 and image.height > 1500
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 50
    white = sum(count for count, rgb in colours if rgb == (255, 255, 255))
    assert white < 0.97 * image.width * image.height
