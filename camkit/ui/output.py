"""Rendering rows for people (rich tables on a terminal) and for scripts (json, csv, markdown, plain)."""
from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

FORMATS = ("auto", "table", "plain", "json", "csv", "markdown")


def resolve_format(fmt: str, stream=None) -> str:
    """``auto`` becomes a rich ``table`` on a terminal and ``plain`` text otherwise."""
    if fmt != "auto":
        return fmt
    stream = stream or sys.stdout
    return "table" if getattr(stream, "isatty", lambda: False)() else "plain"


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, fmt: str = "auto",
           title: str | None = None, stream=None) -> None:
    """Write ``rows`` (dicts) to ``stream`` in ``fmt``; json keeps every key, the others ``columns``.

    ``title`` (which metric, which rule) heads the table in every human format: rich, plain and markdown.
    """
    stream = stream or sys.stdout
    fmt = resolve_format(fmt, stream)
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        stream.write(json.dumps(list(rows), indent=2, default=str) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        stream.write(buf.getvalue())
    elif fmt == "markdown":
        stream.write((f"**{title}**\n\n" if title else "") + markdown_table(rows, columns))
    elif fmt == "plain":
        stream.write((f"{title}\n" if title else "") + plain_table(rows, columns))
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        Console(file=stream).print(table)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c)).replace("|", "\\|") for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plain_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [list(columns)] + [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells) + "\n"
