"""Leaderboards for people and scripts: the display rows and flat records of the tables that
:mod:`camkit.bench.leaderboard` builds (from the results documents; nothing is scored here), and the printed
Tables I and II of ``camkit bench`` and ``camkit leaderboard``."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from camkit.bench import metric_table
from camkit.bench.board import leaderboard_tables
from camkit.bench.leaderboard import Cell, row_header, row_meta
from camkit.ui.output import render, resolve_format

MARKS = {1: "▲", -1: "▼"}  # significantly above / below the baseline (camkit.bench.significance)


def detection_records(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat records of a detection table, for json and csv."""
    out = []
    sig = table.get("significance") or {}
    for (r, c), cell in table["cells"].items():
        meta = table["meta"][r]
        vs = sig.get("cells", {}).get((r, c), {})
        out.append({"table": "detection", "train_cam": meta["train_cam"], "test_cam": c, "metric": table["metric"],
                    "value": cell.value, "ci_low": cell.ci[0], "ci_high": cell.ci[1], "fppi": cell.fppi,
                    "sd": cell.sd, "runs": cell.runs, "best_in_row": table["best_row"].get(r) == c,
                    "best_overall": table["best_all"] == (r, c), "not_applicable": cell.not_applicable,
                    "row": r, "model": meta["model"],
                    "baseline": sig.get("baseline") == (r, c) if sig else None,
                    "difference": vs.get("difference"), "p_value": vs.get("p_value"), "p_holm": vs.get("p_holm"),
                    "significant": vs.get("significant")})
    return out


def detection_rows(table: dict[str, Any], marks: tuple[str, str] = ("*", "**")) -> list[dict[str, str]]:
    """Display rows: one per row (train-cam, or model), a text cell per test-cam; best in row ``*``, best
    overall ``**``; with ``table["significance"]`` (camkit.bench.significance), ``▲``/``▼`` where a cell is
    significantly above/below the baseline, which reads ``(baseline)``. The first column is titled
    ``table["header"]``."""
    out = []
    sig = table.get("significance") or {}
    for r in table["rows"]:
        row = {table["header"]: r}
        for c in table["cols"]:
            cell = table["cells"].get((r, c))
            text = cell.text() if cell else ""
            direction = sig.get("cells", {}).get((r, c), {}).get("direction", 0)
            if direction:
                text += f" {MARKS[direction]}"
            if sig and sig["baseline"] == (r, c):
                text += " (baseline)"
            if table["best_all"] == (r, c):
                text += f" {marks[1]}"
            elif table["best_row"].get(r) == c:
                text += f" {marks[0]}"
            row[c] = text
        out.append(row)
    return out


def classification_rows(table: dict[str, dict[str, Cell]], header: str = "train-cam") -> list[dict[str, Any]]:
    """Display rows of :func:`classification_table` (text cells plus the bare values); the first column is
    titled ``header`` (:func:`row_header`)."""
    rows = []
    for tc, cells in table.items():
        row: dict[str, Any] = {header: tc}
        for m in metric_table.names("classification"):
            row[m] = cells[m].text()
            row[f"{m}_value"] = cells[m].value
        rows.append(row)
    return rows


def classification_records(table: dict[str, dict[str, Cell]],
                           results: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Flat records of :func:`classification_table`, with the same columns as :func:`detection_records`
    (``results``: the run's document, for each row's model and train-cam)."""
    meta = {tc: row_meta(results or {}, tc) for tc in table}
    return [{"table": "classification", "train_cam": meta[tc]["train_cam"], "test_cam": None, "metric": m,
             "value": cell.value,
             "ci_low": cell.ci[0], "ci_high": cell.ci[1], "fppi": None, "sd": cell.sd, "runs": cell.runs,
             "best_in_row": None, "best_overall": None, "not_applicable": None, "row": tc,
             "model": meta[tc]["model"]}
            for tc, cells in table.items() for m, cell in cells.items()]


def print_leaderboard(runs: Sequence[Any], metric: str, fmt: str, baseline: str | None = None,
                      alpha: float = 0.05, by: str | None = None) -> None:
    """Tables I and II of ``runs`` (camkit.bench.leaderboard.Run): one run, or several seeds of one
    configuration, with significance markers against ``baseline`` (ROW:TEST_CAM; default cam:cam when
    present); ``by``: one detection table per stratum of the test set (camkit.bench.strata)."""
    board = leaderboard_tables(runs, metric, baseline, alpha, by)
    tables, cls = board["detection"], board["classification"]
    fmt = resolve_format(fmt)
    interval = interval_text(runs, [run.seed for run in runs])
    if fmt in ("json", "csv"):
        _print_records(runs, board, fmt, interval)
        return
    if board.get("not_scored"):
        click.echo(f"note: {board['not_scored']}", err=True)
    for table in tables:
        _render_detection(table, runs, fmt, interval)
        click.echo("")
    n = runs[0].results.get("dataset", {}).get("counts", {}).get("test")
    header = tables[0]["header"] if tables else row_header(runs[0].results)
    render(classification_rows(cls, header), [header, *metric_table.names("classification")], fmt,
           title=f"Classification ↑ (positive when p >= 0.5; {n} test images; {interval})")


def interval_text(runs: Sequence[Any], seeds: Sequence[Any]) -> str:
    """What a cell's interval is, in words (titles and json)."""
    if len(runs) > 1:
        return (f"mean of {len(runs)} seeds ({', '.join(map(str, seeds))}); 95% CI of the mean over seeds and "
                "test studies (random-effects t interval); sd across seeds")
    return "95% bootstrap CI over studies"


def _print_records(runs: Sequence[Any], board: dict[str, Any], fmt: str, interval: str) -> None:
    """The leaderboard as json (one object: settings, significance, records) or csv (the records)."""
    tables, by, metric = board["detection"], board["by"], board["metric"]
    det = []
    for table in tables:
        extra = {} if by is None else {"by": by, "stratum": table["stratum"][1]}
        det += [{**rec, **extra} for rec in detection_records(table)]
    clsr = classification_records(board["classification"], runs[0].results)
    if fmt == "csv":
        records = det + clsr
        render(records, list(records[0]) if records else None, "csv")
        return
    doc = {"metric": metric, "runs": len(runs), "seeds": [run.seed for run in runs], "interval": interval,
           **metric_table.get(metric).settings_of(runs[0].results.get("config", {})),
           "significance": _significance_summary(tables[0]["significance"]) if by is None and tables else None}
    if board.get("not_scored"):  # a test set without lesion boxes: why there is no detection record
        doc["not_scored"] = board["not_scored"]
    if by is not None:
        doc["strata"] = [{"by": by, "stratum": t["stratum"][1], "description": t["description"],
                          "significance": _significance_summary(t["significance"])} for t in tables]
    click.echo(json.dumps({**doc, "detection": det, "classification": clsr}, indent=2))


def _render_detection(table: dict[str, Any], runs: Sequence[Any], fmt: str, interval: str) -> None:
    spec, sig = metric_table.get(table["metric"]), table["significance"]
    rule = spec.rule_text(runs[0].results.get("config", {}))
    header = table["header"]
    marks = ""
    if sig is not None:
        base = f"{sig['baseline'][0]} x {sig['baseline'][1]}"
        marks = (f"; ▲/▼ significantly above/below the baseline {base} ({sig['method']}, alpha "
                 f"{sig['alpha']:g})")
    what = f" — {table['description']}" if table.get("description") else ""
    render(detection_rows(table), [header, *table["cols"]], fmt,
           title=f"Detection{what}: {spec.description} {spec.arrow} (rows: {header}, columns: test-cam; * best in "
                 f"row, ** best overall{marks}; {rule}; {interval})")
    if sig is not None and sig.get("note"):
        click.echo(f"note: {sig['note']}", err=True)


def _significance_summary(sig: dict[str, Any] | None) -> dict[str, Any] | None:
    if sig is None:
        return None
    return {"baseline": list(sig["baseline"]), "alpha": sig["alpha"], "method": sig["method"],
            "note": sig.get("note")}
