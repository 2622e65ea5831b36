"""Leaderboards from one or several ``results.json``: the paper's Table II (detection) and Table I
(classification). Several runs (seeds) of the same matrix aggregate to mean and spread."""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

METRICS = {
    "tpr@0.5": "TPR at <= 0.5 false positives per image",
    "tpr@1": "TPR at <= 1 false positive per image",
    "tpr@2": "TPR at <= 2 false positives per image",
    "best": "highest TPR reached, at the FPPI where it is first reached (the paper's Table II)",
    "cpm": "mean TPR over FPPI 1/8 .. 8 (competition performance metric)",
}
CLASSIFICATION_METRICS = ("accuracy", "auc", "tpr", "tnr")


@dataclass
class Cell:
    """One pairing's figure, over one run (with its bootstrap CI) or several (mean and sd)."""

    values: list[float] = field(default_factory=list)
    cis: list[tuple[float | None, float | None]] = field(default_factory=list)
    fppis: list[float] = field(default_factory=list)

    @property
    def value(self) -> float | None:
        vals = [v for v in self.values if v is not None]
        return statistics.fmean(vals) if vals else None

    @property
    def spread(self) -> float | None:
        vals = [v for v in self.values if v is not None]
        return statistics.stdev(vals) if len(vals) > 1 else None

    @property
    def ci(self) -> tuple[float | None, float | None]:
        return self.cis[0] if len(self.cis) == 1 else (None, None)

    @property
    def fppi(self) -> float | None:
        vals = [v for v in self.fppis if v is not None]
        return statistics.fmean(vals) if vals else None

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        s = f"{self.value:.2f}"
        if self.fppi is not None:
            s += f"@{self.fppi:.2f}"
        if self.spread is not None:
            s += f" ± {self.spread:.2f} (n={len(self.values)})"
        elif self.ci[0] is not None and self.ci[1] is not None:
            s += f" [{self.ci[0]:.2f}, {self.ci[1]:.2f}]"
        return s


def _metric_of(entry: dict[str, Any], metric: str) -> tuple[float | None, tuple, float | None]:
    m = entry.get(metric)
    if m is None:
        return None, (None, None), None
    ci = tuple(m.get("ci") or (None, None))
    if metric == "best":
        return m.get("tpr"), ci, m.get("fppi")
    return m.get("value"), ci, None


def detection_table(runs: Sequence[dict[str, Any]], metric: str = "tpr@1") -> dict[str, Any]:
    """Rows train-cam x columns test-cam of ``metric`` aggregated over ``runs``, best per row and overall."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    rows: list[str] = []
    cols: list[str] = []
    cells: dict[tuple[str, str], Cell] = {}
    for run in runs:
        for train_cam, per_test in run.get("detection", {}).items():
            if train_cam not in rows:
                rows.append(train_cam)
            for test_cam, entry in per_test.items():
                if test_cam not in cols:
                    cols.append(test_cam)
                value, ci, fppi = _metric_of(entry, metric)
                cell = cells.setdefault((train_cam, test_cam), Cell())
                cell.values.append(value)
                cell.cis.append(ci)
                if fppi is not None:
                    cell.fppis.append(fppi)
    best_row = {}
    for r in rows:
        scored = [(cells[(r, c)].value, -(cells[(r, c)].fppi or 0), c) for c in cols
                  if (r, c) in cells and cells[(r, c)].value is not None]
        if scored:
            best_row[r] = max(scored)[2]
    scored_all = [(cell.value, -(cell.fppi or 0), key) for key, cell in cells.items() if cell.value is not None]
    best_all = max(scored_all)[2] if scored_all else None
    return {"metric": metric, "rows": rows, "cols": cols, "cells": cells, "best_row": best_row,
            "best_all": best_all, "runs": len(runs)}


def detection_records(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat records of a detection table, for json and csv."""
    out = []
    for (r, c), cell in table["cells"].items():
        out.append({"train_cam": r, "test_cam": c, "metric": table["metric"], "value": cell.value,
                    "ci_low": cell.ci[0], "ci_high": cell.ci[1], "fppi": cell.fppi, "sd": cell.spread,
                    "runs": len(cell.values), "best_in_row": table["best_row"].get(r) == c,
                    "best_overall": table["best_all"] == (r, c)})
    return out


def detection_rows(table: dict[str, Any], marks: tuple[str, str] = ("*", "**")) -> list[dict[str, str]]:
    """Display rows: one per train-cam, a text cell per test-cam; best in row ``*``, best overall ``**``."""
    out = []
    for r in table["rows"]:
        row = {"train-cam": r}
        for c in table["cols"]:
            cell = table["cells"].get((r, c))
            text = cell.text() if cell else ""
            if table["best_all"] == (r, c):
                text += f" {marks[1]}"
            elif table["best_row"].get(r) == c:
                text += f" {marks[0]}"
            row[c] = text
        out.append(row)
    return out


def classification_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table I: one row per train-cam with accuracy, AUC, TPR and TNR (CI or mean ± sd over runs)."""
    grouped: dict[str, dict[str, Cell]] = {}
    for run in runs:
        for train_cam, metrics in run.get("classification", {}).items():
            for name in CLASSIFICATION_METRICS:
                m = metrics.get(name) or {}
                cell = grouped.setdefault(train_cam, {}).setdefault(name, Cell())
                cell.values.append(m.get("value"))
                cell.cis.append(tuple(m.get("ci") or (None, None)))
    rows = []
    for train_cam, cells in grouped.items():
        row: dict[str, Any] = {"train-cam": train_cam}
        for name in CLASSIFICATION_METRICS:
            row[name] = cells[name].text() if name in cells else "n/a"
            row[f"{name}_value"] = cells[name].value if name in cells else None
        rows.append(row)
    return rows
