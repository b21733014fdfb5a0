"""The benchmark report, built once as blocks and rendered to Markdown and to HTML.

Blocks are (kind, ...) tuples: ``("h1", text)``, ``("h2", text)``, ``("p", text)`` (``**``
marks bold), ``("table", Table)``, ``("img", file, name)``, ``("code", text)``. Both
renderings say exactly the same; every table comes from :mod:`phytoscope.bench.tables`, so
the report shows the same figures, estimates and scopes as the command line and the window.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from phytoscope.bench import tables
from phytoscope.bench.notes import notices
from phytoscope.bench.results import BenchResult
from phytoscope.bench.summary import summary_table
from phytoscope.bench.table import Cell, Table, fmt

Block = tuple[Any, ...]


def report_blocks(result: BenchResult, images: dict[str, str]) -> list[Block]:
    """The whole report, section by section."""
    blocks: list[Block] = []
    for section in (
        _intro,
        _summary,
        _study,
        _variants,
        _timing,
        _accuracy,
        _memory,
    ):
        blocks.extend(section(result))
    blocks.extend(_plots(result, images))
    blocks.extend(_setup(result))
    return blocks


def _intro(result: BenchResult) -> list[Block]:
    b: list[Block] = [("h1", f"phytoscope benchmark — {result.machine_name}")]
    b.append(
        (
            "p",
            f"Started {result.started_utc}, {result.duration_s:.0f} s in all. "
            "Each variant ran in a fresh process through the four phases of Meireles et al., "
            "SAC '23 (1 load, 2 engine extraction / first batch, 3 warm-up until latency is "
            "stable, 4 measured rounds), with telemetry sampled throughout.",
        )
    )
    warnings = notices(result)
    for notice in warnings:
        if notice.kind == "estimated":
            b.append(("p", notice.markdown))
            b.append(
                (
                    "p",
                    "Where power is estimated from whole-machine CPU load, anything else "
                    "running inflates every variant alike, so the report also gives each "
                    "variant's own share (rated power × its process's CPU % / (100 × logical "
                    "CPUs)); the findings use that share. Both are estimates.",
                )
            )
    if result.power.kind == "none":
        b.append(
            (
                "p",
                "No power figure was available on this machine: power, energy and FPS/W are blank.",
            )
        )
    elif result.power.kind == "measured":
        b.append(("p", f"Power was measured by {', '.join(result.power.sources)}."))
    b.extend(("p", n.markdown) for n in warnings if n.kind != "estimated")
    b.extend(("p", f"Note: {note}") for note in result.notes)
    return b


def _summary(result: BenchResult) -> list[Block]:
    table = summary_table(result)
    return [("h2", "Summary"), ("p", table.caption), ("table", table)]


def _study(result: BenchResult) -> list[Block]:
    return [
        ("h2", "The study's Table 2 beside this run"),
        (
            "p",
            "Study: MobileNetV2 on a Jetson Nano (GPU, TensorRT), "
            f"{result.study.source}. Here: the figures of this run. "
            "Throughput is engine-only at the best batch size (median of the measured rounds); "
            "FPS/W divides it by the mean power of the whole run or of the inference phase "
            "(phase 4), as the study does.",
        ),
        ("table", tables.comparison_table(result)),
        ("h2", "Which of the study's findings hold here"),
        ("table", tables.findings_table(result)),
    ]


def _variants(result: BenchResult) -> list[Block]:
    b: list[Block] = [("h2", "Variants"), ("table", tables.variants_table(result))]
    if result.failed:
        b.append(("p", "A failed variant's log is in `work/<variant>.log`."))
    return b


def _timing(result: BenchResult) -> list[Block]:
    if not result.ran:
        return []
    return [
        ("h2", "Time per phase"),
        ("table", tables.phase_table(result)),
        ("h2", "Throughput and latency by batch size (engine-only)"),
        (
            "p",
            "Rounds interleave the batch sizes; throughput is the median over rounds with its "
            "interquartile range; latency percentiles pool every call (one call = one batch).",
        ),
        ("table", tables.batch_table(result)),
        ("h2", "Engine-only and end-to-end side by side"),
        (
            "p",
            "End-to-end = decoding the image files + pre-processing (grey, letterbox, "
            "normalise) + inference + softmax, over the labelled images.",
        ),
        ("table", tables.e2e_table(result)),
    ]


def _accuracy(result: BenchResult) -> list[Block]:
    if not result.ran:
        return []
    b: list[Block] = [
        ("h2", "Accuracy and agreement with the base model"),
        ("table", tables.accuracy_table(result)),
    ]
    flips = tables.flips_table(result)
    if flips.rows:
        b.append(("p", "Images whose top-1 class differs from the base model's:"))
        b.append(("table", flips))
    return b


def _memory(result: BenchResult) -> list[Block]:
    if not result.ran:
        return []
    est, idle = result.power_word, result.idle
    return [
        ("h2", f"Memory and power{est}"),
        ("table", tables.memory_power_table(result)),
        (
            "p",
            f"Idle baseline{est}: {fmt(idle.mean_power_w, 2)} W over "
            f"{fmt(idle.seconds, 0)} s before the variants (machine CPU use then: "
            f"{fmt(idle.machine_cpu_percent_median, 0)} %). Energy per image net of idle "
            "subtracts this baseline × the phase's duration.",
        ),
    ]


def _plots(result: BenchResult, images: dict[str, str]) -> list[Block]:
    if images:
        return [("h2", "Plots"), *(("img", file, name) for name, file in images.items())]
    if result.plots.note:
        return [("p", f"Plots: {result.plots.note}.")]
    return []


def _setup(result: BenchResult) -> list[Block]:
    lab = result.labelled_set
    return [
        ("h2", "Labelled set"),
        ("p", f"{lab.images} images, {lab.source}. {lab.note or ''}"),
        ("table", tables.classes_table(result)),
        ("h2", "Machine, versions and settings (to repeat this run)"),
        ("table", tables.machine_table(result)),
        ("p", "Command line:"),
        ("code", result.command_line or "(run from Python)"),
        ("p", "Settings:"),
        ("code", json.dumps(result.settings.to_dict(), indent=1)),
    ]


# -- rendering ----------------------------------------------------------------------------


def _md_cell(c: Cell | str) -> str:
    text = c.text if isinstance(c, Cell) else c
    text = f"**{text}**" if isinstance(c, Cell) and c.strong else text
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> list[str]:
    out = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |"]
    out.append("|" + "---|" * len(table.columns))
    out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows)
    out.append("")
    return out


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {block[1]}\n")
        elif kind == "h2":
            out.append(f"## {block[1]}\n")
        elif kind == "p":
            out.append(f"{block[1]}\n")
        elif kind == "table":
            out.extend(markdown_table(block[1]))
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})\n")
        elif kind == "code":
            out.append(f"```\n{block[1]}\n```\n")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    escaped = html.escape(str(text))
    parts = escaped.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _html_cell(c: Cell) -> str:
    text = _inline_html(c.text)
    if c.strong:
        text = f"<strong>{text}</strong>"
    cls = " class='estimated'" if c.estimated else ""
    title = f" title='{html.escape(c.tooltip)}'" if c.tooltip else ""
    return f"<td{cls}{title}>{text}</td>"


def html_table(table: Table) -> list[str]:
    out = ["<table><tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in table.headers) + "</tr>"]
    out.extend("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in table.rows)
    out.append("</table>")
    return out


STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .5em;"
    "text-align:left;vertical-align:top}th{background:#eee}img{max-width:100%}"
    "td.estimated{color:#555;font-style:italic}"
    "pre{background:#f4f4f4;padding:.5em;overflow:auto}"
)


def to_html(blocks: Sequence[Block], title: str) -> str:
    out = [
        "<!doctype html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{_inline_html(block[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "table":
            out.extend(html_table(block[1]))
        elif kind == "img":
            out.append(f"<p><img src='{html.escape(block[1])}' alt='{html.escape(block[2])}'></p>")
        elif kind == "code":
            out.append(f"<pre>{html.escape(block[1])}</pre>")
    out.append("</body></html>\n")
    return "\n".join(out)
