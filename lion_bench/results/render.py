"""One report, two renderings: markdown (report.md, the terminal) and HTML (report.html) from the same blocks.

Blocks are (kind, content): ``h2``/``h3`` (a title), ``text`` (markdown lines: paragraphs and ``- `` lists),
``table`` (a DataFrame whose cells may hold **bold** and `code`), ``image`` (a file name). The HTML renders
that markdown subset and colours cells that open with an answer by who wins (Lion better, AdamW better,
equivalent, inconclusive).
"""

from __future__ import annotations

import html
import re

import pandas as pd

# Cells are coloured by who wins, never by whether a claim held ("supported" can mean "Lion is much worse").
ANSWER_CLASSES = {"Lion better": "lion", "AdamW better": "adamw", "equivalent": "equivalent",
                  "inconclusive": "inconclusive"}
CLASS_COLOURS = {"lion": "#d6f5d6", "adamw": "#fde0c5", "equivalent": "#dde7f3", "inconclusive": "#f3efd2"}
STYLE = ("body{font-family:sans-serif;max-width:1500px;margin:auto;padding:0 1em}"
         "table{border-collapse:collapse;font-size:13px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;"
         "vertical-align:top;text-align:left}code{background:#f2f2f2;padding:0 2px}img{max-width:100%}"
         + "".join(f"td.{name}{{background:{colour}}}" for name, colour in CLASS_COLOURS.items()))


def inline(text: str) -> str:
    """Escaped HTML of one line of markdown: **bold** and `code`."""
    parts = re.split(r"(`[^`]*`)", str(text))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part)))
    return "".join(out)


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(none)_"
    return frame.to_markdown(index=False, disable_numparse=True)


def _verdict_class(cell: str) -> str:
    text = str(cell).lstrip("*")
    for answer, name in ANSWER_CLASSES.items():
        if text.startswith(answer):
            return f' class="{name}"'
    return ""


def html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{inline(column)}</th>" for column in frame.columns)
    rows = []
    for values in frame.astype(str).itertuples(index=False):
        rows.append("<tr>" + "".join(f"<td{_verdict_class(value)}>{inline(value)}</td>" for value in values) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def html_text(lines: list[str]) -> str:
    """Paragraphs and ``- `` lists (continuation lines indented by two spaces)."""
    out, items, paragraph = [], [], []

    def flush() -> None:
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>")
            items.clear()
        if paragraph:
            out.append(f"<p>{inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    for line in lines:
        if line.startswith("- "):
            if paragraph:
                flush()
            items.append(line[2:])
        elif line.startswith("  ") and items:
            items[-1] += " " + line.strip()
        elif not line.strip():
            flush()
        else:
            if items:
                flush()
            paragraph.append(line)
    flush()
    return "".join(out)


def render(blocks: list[tuple[str, object]], title: str) -> tuple[str, str]:
    """Blocks -> (markdown, html)."""
    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for kind, content in blocks:
        if kind in ("h2", "h3"):
            md += [f"{'#' * int(kind[1])} {content}", ""]
            body.append(f"<{kind}>{inline(content)}</{kind}>")
        elif kind == "text":
            md += [*content, ""]
            body.append(html_text(content))
        elif kind == "table":
            md += [markdown_table(content), ""]
            body.append(html_table(content))
        elif kind == "image":
            md += [f"![{content}]({content})", ""]
            body.append(f'<p><img src="{html.escape(str(content))}" alt="{html.escape(str(content))}"></p>')
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    return "\n".join(md), page
