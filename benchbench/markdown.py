"""User and model text made safe for Markdown (report.md, the gate's job summary).

Labels, folder names, error messages and model answers are data: none may start a heading,
a link, an image, math (GitHub renders $...$), raw HTML, or leave the block it was put in.
"""

from __future__ import annotations

import re

MD_SPECIALS = re.compile(r"([\\`*_\[\]#|~!$])")
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def md_text(text: object) -> str:
    """Plain text safe in Markdown prose or a table cell: specials backslash-escaped, HTML characters
    as entities, line breaks as ``<br>`` so the text cannot end its quote, list item or cell."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return LINE_BREAK.sub("<br>", MD_SPECIALS.sub(r"\\\1", text))
