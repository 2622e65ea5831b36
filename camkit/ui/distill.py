"""The distill leaderboard for people and scripts: three rows (cam-boxes, detector, oracle) x the FROC metrics,
the weak-to-strong gain and the pseudo-boxes' quality, from a ``distill.json`` document."""
from __future__ import annotations

import json
from typing import Any

import click

from camkit.ui.output import render, resolve_format


def distill_records(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per (row, metric): value and 95% interval."""
    out = []
    for row, metrics in document["rows"].items():
        for name, m in metrics.items():
            if isinstance(m, dict) and "ci" in m:
                value = m.get("value", m.get("tpr"))
                out.append({"row": row, "metric": name, "value": value, "ci_low": m["ci"][0], "ci_high": m["ci"][1],
                            **({"sd": m["sd"], "runs": m["runs"]} if "runs" in m else {})})
    return out


def print_distill(document: dict[str, Any], fmt: str = "auto") -> None:
    """The leaderboard (rows x metrics), then the gain and the pseudo-boxes' quality."""
    fmt = resolve_format(fmt)
    records = distill_records(document)
    gain, quality = document.get("gain"), document.get("pseudo_boxes") or {}
    if fmt == "json":
        extra = {"seeds": document["seeds"]} if "seeds" in document else {"pseudo_boxes": quality,
                                                                           "oracle": document.get("oracle")}
        click.echo(json.dumps({"records": records, "gain": gain, **extra}, indent=2))
        return
    if fmt == "csv":
        seeds = ["sd", "runs"] if "seeds" in document else []
        render(records, ["row", "metric", "value", "ci_low", "ci_high", *seeds], "csv")
        return
    metrics = list(dict.fromkeys(r["metric"] for r in records))
    rows = []
    for row in document["rows"]:
        cells = {r["metric"]: r for r in records if r["row"] == row}
        rows.append({"row": row, **{m: _text(cells.get(m)) for m in metrics}})
    how = (f"mean over seeds {', '.join(map(str, document['seeds']))}, 95% random-effects t interval"
           if "seeds" in document else "95% bootstrap CI over studies")
    render(rows, ["row", *metrics], fmt, title="Distill: the teacher's CAM boxes, the detector trained on them, "
                                               f"and the oracle (true boxes) ↑ ({how})")
    pairing = document.get("pairing")
    if pairing:
        best = pairing["validation"][pairing["train_cam"]][pairing["test_cam"]]
        click.echo(f"pairing chosen on {pairing['n_images']} validation images: train-cam {pairing['train_cam']} x "
                   f"test-cam {pairing['test_cam']} (TPR@1FPPI {best['tpr@1']:.2f}, CPM {best['cpm']:.2f})")
    if document.get("pairings"):
        click.echo(f"pairings by seed: {', '.join(document['pairings'])}")
    if gain and "per_seed" in gain:
        per = ", ".join(f"{g['value']:.2f}" if g.get("value") is not None else "n/a" for g in gain["per_seed"])
        value = "undefined (the oracle ties the teacher)" if gain["value"] is None else f"{gain['value']:.2f}"
        click.echo(f"weak-to-strong gain ({gain['metric']}) of the means: {value}; per seed: {per}")
    elif gain:
        ci = gain["ci"]
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci[0] is not None else ""
        click.echo(f"weak-to-strong gain ({gain['metric']}): (detector - teacher) / (oracle - teacher) = "
                   f"{gain['value']:.2f}{interval}")
    elif document.get("oracle"):
        click.echo(f"oracle: {document['oracle']}")
    if quality.get("corloc") is not None:
        click.echo(f"pseudo-boxes on the training split: CorLoc {quality['corloc']:.2f}, precision "
                   f"{quality['precision'] or 0:.2f}, recall {quality['recall']:.2f} (IoU > {quality['iou']}), "
                   f"{quality['left_out']} mass image(s) left out")
    for entry in document.get("rounds") or []:
        q = entry["pseudo_boxes"]
        if q.get("corloc") is not None:
            click.echo(f"round {entry['round']}: the detector's boxes as labels: CorLoc {q['corloc']:.2f}, precision "
                       f"{q['precision'] or 0:.2f}, recall {q['recall']:.2f}")


def _text(record: dict[str, Any] | None) -> str:
    if record is None or record["value"] is None:
        return "n/a"
    lo, hi = record["ci_low"], record["ci_high"]
    return f"{record['value']:.2f} [{lo:.2f}, {hi:.2f}]" if lo is not None else f"{record['value']:.2f}"
