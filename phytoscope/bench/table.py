"""The one table model every front end renders: the report (Markdown and HTML), the
command line (plain text) and the window's Benchmark page (a Qt table).

A table is columns and rows of cells. A cell carries its text and what a renderer needs to
show it honestly: whether the figure is an **estimate** (the window greys it and explains
why in a tooltip, the text says "estimated"), and a column says which part of the work
its figures cover (engine-only, end-to-end, whole run), so no front end invents a label.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

ENGINE = "engine-only"
"""Inference alone on pre-processed tensors (the study's FPS)."""
E2E = "end-to-end"
"""Decoding the files + pre-processing + inference + softmax."""
WHOLE_RUN = "whole run"
"""Load to exit of the variant's process (the study's whole-run power)."""

ESTIMATED_TIP = (
    "estimated — CPU load × rated power, not a measurement: no power sensor is readable "
    "here. Compare variants on this machine only; do not rank machines by it."
)


@dataclass(frozen=True)
class Cell:
    text: str
    value: float | None = None
    """the number behind the text (for sorting and charts), when there is one"""
    estimated: bool = False
    strong: bool = False
    """a verdict: bold in the report"""
    tone: str = ""
    """"" (normal), "muted" (not available here) or "error" (failed)"""
    tooltip: str = ""


@dataclass(frozen=True)
class Column:
    title: str
    """the header as the report prints it"""
    short: str = ""
    """a compact header for the window (may hold line breaks); the title when empty"""
    scope: str = ""
    """:data:`ENGINE`, :data:`E2E`, :data:`WHOLE_RUN` or "" (not a throughput figure)"""
    estimated: bool = False
    tooltip: str = ""

    @property
    def header(self) -> str:
        return self.short or self.title


CellLike = Cell | str


def power_cell(text: str, estimated: bool, value: float | None = None) -> Cell:
    """A power-derived figure, marked and explained when the power is an estimate."""
    return Cell(text, value, estimated=estimated, tooltip=ESTIMATED_TIP if estimated else "")


def fmt(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    """A figure for a table or a sentence: thousands separated, "—" when missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value * scale:,.{digits}f}"


def cell(value: CellLike) -> Cell:
    return value if isinstance(value, Cell) else Cell(str(value))


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""

    @classmethod
    def of(
        cls,
        columns: Sequence[Column | str],
        rows: Iterable[Sequence[CellLike]],
        caption: str = "",
    ) -> Table:
        cols = tuple(c if isinstance(c, Column) else Column(c) for c in columns)
        body = tuple(tuple(cell(c) for c in row) for row in rows)
        for row in body:
            if len(row) != len(cols):
                raise ValueError(f"a row of {len(row)} cells in a table of {len(cols)} columns")
        return cls(cols, body, caption)

    @property
    def headers(self) -> list[str]:
        return [c.title for c in self.columns]

    def texts(self) -> list[list[str]]:
        return [[c.text for c in row] for row in self.rows]

    def column(self, title: str) -> list[Cell]:
        index = self.headers.index(title)
        return [row[index] for row in self.rows]

    def transposed(self) -> Table:
        """Columns become rows (the first column's cells become the headers): a few
        variants side by side read better in a terminal than a dozen columns."""
        first = self.columns[0].title
        headers = [Column(first), *(Column(row[0].text) for row in self.rows)]
        rows = [
            [Cell(col.title, tooltip=col.tooltip), *(row[i] for row in self.rows)]
            for i, col in enumerate(self.columns)
            if i > 0
        ]
        return Table.of(headers, rows, self.caption)

    def where(self, keep: Sequence[bool]) -> Table:
        return replace(self, rows=tuple(r for r, k in zip(self.rows, keep, strict=True) if k))


def render_text(table: Table, width: int = 100) -> str:
    """Plain text with aligned columns for a terminal; long cells wrap within their column
    and estimated figures are marked with "*" and explained under the table."""
    cells = [[c.header.replace("\n", " ") for c in table.columns]] + [
        [c.text + (" *" if c.estimated else "") for c in row] for row in table.rows
    ]
    n = len(table.columns)
    natural = [max(len(r[i]) for r in cells) for i in range(n)]
    budget = max(width - 3 * (n - 1), 10 * n)
    widths = natural[:]
    while sum(widths) > budget and max(widths) > 12:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    lines: list[str] = []
    for k, row in enumerate(cells):
        wrapped = [textwrap.wrap(text, w) or [""] for text, w in zip(row, widths, strict=True)]
        for j in range(max(len(w) for w in wrapped)):
            parts = [(w[j] if j < len(w) else "").ljust(widths[i]) for i, w in enumerate(wrapped)]
            lines.append("   ".join(parts).rstrip())
        if k == 0:
            lines.append("   ".join("-" * w for w in widths))
    if any(c.estimated for row in table.rows for c in row):
        lines.append(textwrap.fill(f"* {ESTIMATED_TIP}", width, subsequent_indent="  "))
    if table.caption:
        lines.append(textwrap.fill(table.caption, width))
    return "\n".join(lines)
