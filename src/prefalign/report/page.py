"""One self-contained HTML page: inline styles, inline SVG figures, no script and nothing fetched.

Shared by the run report, `prefalign eval`'s page and `prefalign runs --compare`, so they read alike.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px;
       padding: 0 16px; color: #1b1f24; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; }
.sub { color: #57606a; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
figure.plot { margin: 0; border: 1px solid #d0d7de; border-radius: 6px; padding: 4px; background: #fff; }
figure.plot figcaption { font-size: 12px; color: #57606a; text-align: center; }
figure.plot svg { display: block; width: 360px; height: auto; }
table.wide { width: 100%; table-layout: fixed; }
.side { display: grid; grid-template-columns: 1fr 1fr 1fr; gap: 0; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font: 12.5px/1.4 ui-monospace, monospace; }
pre.config { background: #f6f8fa; padding: 10px; border-radius: 6px; max-height: 480px; overflow: auto; }
.warn { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 6px 10px; margin: 4px 0; }
.empty { background: #f6f8fa; border: 1px dashed #8c959f; border-radius: 6px; padding: 16px; color: #57606a; }
.up { color: #1a7f37; } .down { color: #cf222e; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: object, digits: int = 4) -> str:
    """A number for a table cell: a few significant digits; anything else as text; missing as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        return f"{value:.{digits}g}"
    return str(value)


def table(header: Iterable[str] | None, rows: Iterable[Iterable[object]], numeric_from: int = 1, cls: str = "") -> str:
    """An HTML table; cells from column `numeric_from` on are right-aligned numbers."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header) if header is not None else ""
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if isinstance(cell, Raw):
                cells.append(f"<td>{cell.html}</td>")
            elif i >= numeric_from and isinstance(cell, int | float | type(None)):
                cells.append(f'<td class="num">{esc(fmt(cell))}</td>')
            else:
                cells.append(f"<td>{esc(fmt(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    klass = f' class="{cls}"' if cls else ""
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table{klass}>{thead}<tbody>{''.join(body)}</tbody></table>"


class Raw:
    """Markup that `table` puts in a cell as it is (already escaped by whoever made it)."""

    def __init__(self, markup: str):
        self.html = markup


def pre(text: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f"<pre{klass}>{esc(text)}</pre>"


def document(title: str, subtitle: str, sections: list[str]) -> str:
    # `data-prefalign` lets the browser test tell our page from a Chromium error page.
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f'<style>{STYLE}</style></head><body data-prefalign="report">'
        f'<h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>{"".join(sections)}</body></html>\n'
    )
