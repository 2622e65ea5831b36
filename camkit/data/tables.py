"""Reading a dataset's CSV the way spreadsheets write them, with errors that name the file, line and fix.

UTF-8 (with or without the byte-order mark Excel adds) is read; another encoding is refused naming the line of
the first undecodable byte. The delimiter is sniffed from the header: comma, semicolon (European spreadsheet
exports) or tab.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from camkit.errors import DataError

DELIMITERS = ",;\t"


def read_rows(path: str | Path) -> tuple[list[str], list[tuple[int, dict[str, str | None]]]]:
    """The header and ``(line number, {column: value})`` rows of a CSV file."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8 "
                        "(in Excel: 'CSV UTF-8 (Comma delimited)'; or iconv -f latin1 -t utf-8)") from None
    header_line = text.split("\n", 1)[0]
    delimiter = ","
    if header_line.count(",") == 0:
        delimiter = max(DELIMITERS, key=header_line.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    rows = [(reader.line_num, row) for row in reader]
    return header, rows
