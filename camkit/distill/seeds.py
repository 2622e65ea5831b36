"""Several seeds of one distill combined, as the bench combines seeds (``camkit bench --seeds``).

Each seed is a whole distill: its own teacher, pseudo-boxes, detector and oracle, scored on the same test split.
A row's metric over the seeds is the mean of the seeds' values with the bench's random-effects t interval
(camkit.metrics.combine_runs): every seed's study bootstrap is redrawn from its stored predictions with one
shared resample plan, so the test studies the seeds share are counted as shared error, not as independent
evidence (the interval the README's seeds table once got wrong by ignoring it).

The weak-to-strong gain is a ratio of differences; over seeds it is given as the ratio of the combined means,
beside each seed's own value and interval, without an interval of its own.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from camkit.errors import OptionError

SCHEMA = "camkit.distill-seeds/1"


def combine_seeds(runs: list[str | Path], n: int | None = None) -> dict[str, Any]:
    """The combined document of several finished distill runs (folders holding ``distill.json`` and
    ``predictions.json``) that differ by their seed alone: ``{"rows": {row: {metric: {value, ci, sd, runs}}},
    "gain": {value, per_seed}, "seeds": [...]}``. ``n``: bootstrap resamples (default: the first run's)."""
    from camkit.bench import metric_table
    from camkit.bench.metric_table import CellData
    from camkit.bench.scoring import froc_bootstraps
    from camkit.distill.run import METRICS, ROWS, DistillConfig
    from camkit.metrics import combine_runs

    docs = [_read(Path(r)) for r in runs]
    _same_recipe(docs, runs)
    cfgs = [DistillConfig(**doc["config"]).bench_config() for doc, _ in docs]
    n = int(n or cfgs[0].bootstrap)
    shared_seed = int(cfgs[0].seed)  # one resample plan for every seed: shared test studies are measured
    specs = [s for s in metric_table.metrics("detection") if s.bootstrap == "froc" and s.name in METRICS]
    rows: dict[str, dict[str, Any]] = {}
    for role in ROWS:
        have = [(cfg, records[role]) for cfg, (_, records) in zip(cfgs, docs) if role in records]
        if not have:
            continue
        boots = [froc_bootstraps(specs, CellData(rec["predictions"], rec["images"], n, shared_seed, cfg))
                 for cfg, rec in have]
        rows[role] = {}
        for spec in specs:
            c = combine_runs([b[spec.name] for b in boots], n=n, seed=shared_seed, bounds=spec.bounds)
            rows[role][spec.name] = {"value": c.estimate, "ci": [c.low, c.high],
                                     "sd": None if c.sd != c.sd else c.sd, "runs": len(boots),
                                     "per_seed": [float(v) for v in c.values]}
    return {"schema": SCHEMA, "seeds": [doc["config"]["seed"] for doc, _ in docs],
            "runs": [str(r) for r in runs], "rows": rows,
            "pairings": [f"{doc['config']['train_cam']} x {doc['config']['test_cam']}" for doc, _ in docs],
            "gain": _gain(rows, [doc for doc, _ in docs]),
            "method": "mean over seeds, random-effects t interval (camkit.metrics.combine_runs)"}


def _gain(rows: dict[str, Any], docs: list[dict[str, Any]], metric: str = "tpr@1") -> dict[str, Any] | None:
    if "oracle" not in rows:
        return None
    t, d, o = (rows[r][metric]["value"] for r in ("cam-boxes", "detector", "oracle"))
    return {"metric": metric, "value": (d - t) / (o - t) if o != t else None,
            "per_seed": [{"seed": doc["config"]["seed"], **_seed_gain(doc)}
                         for doc in docs]}


def _seed_gain(doc: dict[str, Any]) -> dict[str, Any]:
    gain = doc.get("gain") or {}
    return {"value": gain.get("value"), "ci": gain.get("ci")}


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        doc = json.loads((folder / "distill.json").read_text())
        records = json.loads((folder / "predictions.json").read_text())
    except FileNotFoundError as exc:
        raise OptionError(f"{folder}: not a finished camkit distill run ({Path(exc.filename).name} is missing); "
                          "run it (again) to finish it") from None
    except json.JSONDecodeError as exc:
        raise OptionError(f"{folder}: its distill.json or predictions.json is damaged ({exc}); run that seed again "
                          "into a new --out") from None
    return doc, records


def _asked(doc: dict[str, Any]) -> dict[str, Any]:
    """A run's configuration as it was asked for, less its seed: ``auto`` cams as ``auto`` (each seed may choose
    another pairing on its validation split)."""
    asked = {k: v for k, v in doc["config"].items() if k != "seed"}
    return {**asked, **((doc.get("pairing") or {}).get("requested") or {})}


def _same_recipe(docs: list[tuple[dict[str, Any], dict[str, Any]]], runs: list[str | Path]) -> None:
    """Seeds combine only when nothing but the seed differs."""
    first = _asked(docs[0][0])
    for (doc, _), run in zip(docs[1:], runs[1:]):
        other = _asked(doc)
        differ = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if differ:
            raise OptionError(f"{run}: differs from {runs[0]} in {', '.join(differ)}, not only in its seed; "
                              "combine runs of one configuration")
