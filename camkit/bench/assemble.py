"""Assembling a run's results document from its cells' documents (``cells/<label>.json``), and the one step
that scores across cells: the significance of every pairing against the baseline, Holm-corrected across the
matrix. What is computed here is stored; the leaderboard, the CLI and the report render it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from camkit.bench.cell import CellSpec, read_document, read_failure
from camkit.bench.results import config_hash
from camkit.errors import OptionError


def assemble(results: dict[str, Any], out: str | Path, cells: list[CellSpec], final: bool = False) -> None:
    """Fill ``results`` (in place) from the finished cells' documents, in row order: training, detection,
    classification, timings and warnings of each; ``cells`` says which are finished. With ``final`` (every
    cell ran), the significance of each leaderboard metric the run holds against ``results["settings"]``'s
    baseline and alpha (:func:`significance_documents`)."""
    digest = config_hash(results["config"])
    total = results.get("timings", {}).get("total_s")
    for key in ("training", "detection", "classification", "timings"):
        results[key] = {}
    warnings, status = [], {}
    for spec in cells:
        doc = read_document(spec, digest)
        status[spec.row] = {"status": "complete" if doc else "pending", "document": f"cells/{spec.row}.json"}
        if doc is None:
            failed = read_failure(spec)
            if failed:
                status[spec.row].update(status="failed", error=failed.get("error"), log=failed.get("log"))
            continue
        for key in ("training", "detection", "classification", "timings"):
            results[key][spec.row] = doc[key]
        if doc.get("warning"):
            warnings.append(doc["warning"])
    if total is not None:
        results["timings"]["total_s"] = total
    results["cells"] = status
    results["warnings"] = list(results.get("notes", [])) + warnings
    if final:
        settings = results.get("settings") or {}
        results["significance"] = significance_documents(results, out, settings.get("baseline"),
                                                         settings.get("alpha", 0.05))


def significance_documents(results: dict[str, Any], out: str | Path, baseline: str | None = None,
                           alpha: float = 0.05) -> dict[str, Any] | None:
    """``{metric: significance document}`` for every leaderboard metric the run holds a value for
    (:func:`camkit.bench.significance.to_document`), or None when the baseline pairing is not in the run."""
    from camkit.bench.leaderboard import Run, detection_table, missing_metric_message
    from camkit.bench.metric_table import pairing_metrics
    from camkit.bench.significance import parse_baseline, significance, to_document

    run = Run(Path(out), results)
    found: dict[str, Any] = {}
    for spec in pairing_metrics():
        table = detection_table([run], spec.name)
        if not table["cells"] or missing_metric_message(table) or all(
                c.value is None for c in table["cells"].values()):
            continue
        try:
            sig = significance([run], table, parse_baseline(baseline), alpha)
        except OptionError:  # the asked baseline is not applicable: the leaderboard says so when it is printed
            return None
        if sig is None:
            return None
        found[spec.name] = to_document(sig, baseline)
    return found or None
