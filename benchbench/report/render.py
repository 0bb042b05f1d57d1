"""Markdown and self-contained HTML from one Document, through the templates in ``templates/``.

HTML is autoescaped (model text shows as text, never as markup); Markdown escapes its own
specials and fences code with more backticks than the text contains. Images go into the HTML
as data URLs, so report.html is a single file.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import jinja2

from benchbench.markdown import md_text
from benchbench.report.document import Document

TEMPLATES = Path(__file__).parent / "templates"
MD_MARKS = {"bad": "✖ ", "warn": "⚠ ", "good": "✔ "}


def render_html(document: Document) -> str:
    env = _environment(autoescape=True)
    env.filters["data_url"] = lambda path: "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()
    css = (TEMPLATES / "style.css").read_text(encoding="utf-8")
    return env.get_template("report.html.j2").render(doc=document, css=css)


def render_markdown(document: Document) -> str:
    env = _environment(autoescape=False)
    env.filters.update(md_text=md_text, md_cell=md_cell, md_mark=lambda tone: MD_MARKS.get(tone, ""), md_fence=md_fence)
    return env.get_template("report.md.j2").render(doc=document)


def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def md_cell(text: str, tone: str) -> str:
    """A table cell: escaped, on one line, marked and bold when it flags a problem."""
    value = md_text(text)
    mark = MD_MARKS.get(tone, "")
    return f"**{mark}{value}**" if tone == "bad" else f"{mark}{value}"


def md_fence(text: str) -> str:
    """A fenced code block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"
