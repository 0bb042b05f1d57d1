"""The report as plain blocks, rendered twice (Markdown and HTML) so both say the same thing.

Builders put raw text in blocks; escaping is the renderers' job, so model output can never turn
into markup by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

Tone = Literal["", "bad", "warn", "good", "muted"]


@dataclass(frozen=True)
class Cell:
    text: str
    tone: Tone = ""


@dataclass(frozen=True)
class Note:
    kind: ClassVar[str] = "note"
    text: str
    tone: Tone = ""
    label: str = ""


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"
    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    kind: ClassVar[str] = "figure"
    path: Path
    alt: str
    caption: str = ""


@dataclass(frozen=True)
class Code:
    kind: ClassVar[str] = "code"
    text: str
    caption: str = ""


@dataclass(frozen=True)
class Side:
    """One output of a diverging pair: the text up to the first difference and the rest."""

    label: str
    agreed: str
    differing: str
    tokens: str = ""


@dataclass(frozen=True)
class SideBySide:
    kind: ClassVar[str] = "diff"
    title: str
    left: Side
    right: Side
    caption: str = ""


Block = Note | Table | Figure | Code | SideBySide


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    generated: str
    """The single line that differs between two builds of the same report."""
    sections: list[Section]


def cells(*values: object, tone: Tone = "") -> list[Cell]:
    """A table row from plain values (Cells pass through unchanged)."""
    return [value if isinstance(value, Cell) else Cell("" if value is None else str(value), tone) for value in values]


def number(value: float | int | None, digits: int = 4) -> str:
    """A readable number: ``n/a`` for missing, integers as is, floats to ``digits`` significant digits."""
    if value is None or value != value:
        return "n/a"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"
