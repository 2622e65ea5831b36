"""Which pairings of a leaderboard differ from the baseline pairing, beyond what resampling the studies explains.

Every cell of the detection table is compared with one baseline cell (by default the released GMIC's own
pairing, train-cam CAM x test-cam CAM) by a paired study bootstrap: both cells' metric on the same resamples
of the test studies, so that what the images share cancels out. Several seeds of one configuration combine the
runs' paired differences with the random-effects t interval over runs (camkit.metrics.combine_paired). The p-values of all the cells are
then Holm-corrected together (camkit.metrics.holm): a marked cell differs at family-wise level alpha across the
whole matrix. docs/metrics.md, "Significance", has the definitions.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from camkit.errors import OptionError

DEFAULT_BASELINE = ("cam", "cam")  # the released GMIC's own pairing


def parse_baseline(text: str | None) -> tuple[str, str] | None:
    """``"ROW:TEST_CAM"`` (ROW: a train-cam, or a row label of mixed models) -> a tuple; None stays None."""
    if text is None:
        return None
    row, sep, col = text.partition(":")
    if not sep or not row or not col:
        raise OptionError(f"--baseline {text!r}: give ROW:TEST_CAM, e.g. cam:cam (a leaderboard row, then a "
                          "test-cam column)")
    return row, col


def baseline_cell(table: dict[str, Any], baseline: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """The table's (row, column) of ``baseline``: its row named by label, or by train-cam (the first such row).

    An explicit baseline that is not in the table is an OptionError; the default one may be absent (None).
    """
    want = baseline or DEFAULT_BASELINE
    row = want[0] if want[0] in table["rows"] else next(
        (r for r in table["rows"] if table["meta"][r].get("train_cam") == want[0]), None)
    if row is None or want[1] not in table["cols"] or (row, want[1]) not in table["cells"] \
            or table["cells"][(row, want[1])].value is None:
        if baseline is None:
            return None
        raise OptionError(f"--baseline {want[0]}:{want[1]} is not a scored cell of this leaderboard (rows: "
                          f"{', '.join(table['rows'])}; test-cams: {', '.join(table['cols'])})")
    return row, want[1]


def significance(runs: Sequence[Any], table: dict[str, Any], baseline: tuple[str, str] | None = None,
                 alpha: float = 0.05, n: int | None = None) -> dict[str, Any] | None:
    """Paired comparisons of every scored cell of ``table`` (camkit.bench.leaderboard.detection_table over
    ``runs``) with the baseline cell, Holm-corrected across the matrix.

    Returns ``{"baseline": (row, col), "alpha", "metric", "method", "cells": {(row, col): {"difference", "ci",
    "p_value", "p_holm", "significant", "direction"}}}`` (the baseline's own cell is left out), or None when
    the default baseline is not in the table or the runs' predictions are not stored.
    """
    from camkit.bench.leaderboard import DamagedPredictions, cell_bootstraps, shared_plan_seed
    from camkit.metrics import compare
    from camkit.metrics.significance import combine_paired, holm

    if not 0.0 < alpha < 1.0:
        raise OptionError(f"--alpha must be in (0, 1), got {alpha!r}")
    base = baseline_cell(table, baseline)
    if base is None:
        return None
    metric, part = table["metric"], table.get("stratum")
    cells = [k for k, cell in table["cells"].items() if cell.value is not None and k != base]
    seed = shared_plan_seed(runs)
    try:
        base_boot = [cell_bootstraps(run, *base, metric, n, part, seed)[metric] for run in runs]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for key in cells:
            paired = [compare(cell_bootstraps(run, *key, metric, n, part, seed)[metric], b)
                      for run, b in zip(runs, base_boot)]
            if len(runs) == 1:
                c = paired[0]
                found[key] = {"difference": c.difference, "ci": [c.low, c.high], "p_value": c.p_value}
            else:
                combined = combine_paired(paired)
                found[key] = {k: combined[k] for k in ("difference", "ci", "p_value")}
    except DamagedPredictions:
        raise
    except OptionError:
        if baseline is not None:
            raise
        return None  # a results document without its predictions: no paired test, the table stays as it is
    adjusted = holm([found[k]["p_value"] for k in cells])
    for key, p in zip(cells, adjusted):
        f = found[key]
        f["p_holm"] = float(p)
        f["significant"] = bool(p <= alpha)  # Holm 1979: reject when the adjusted p is at most alpha
        f["direction"] = (1 if f["difference"] > 0 else -1) if f["significant"] else 0
    what = "paired study bootstrap" if len(runs) == 1 else "paired random-effects t test over seeds"
    out = {"baseline": base, "alpha": alpha, "metric": metric, "cells": found,
           "method": f"{what}, Holm-corrected over {len(cells)} comparison{'' if len(cells) == 1 else 's'}",
           "note": None}
    resamples = n or base_boot[0].n
    floor = 2.0 / (resamples + 1)  # the smallest bootstrap p-value (one run; over seeds p comes from a t)
    if cells and len(runs) == 1 and floor * len(cells) > alpha:
        out["note"] = (f"with {resamples} bootstrap resamples no p-value is below {floor:.4f}, so after Holm over "
                       f"{len(cells)} comparisons none can reach alpha {alpha:g}; bench with --bootstrap "
                       f"{int(2 * len(cells) / alpha) + 1} or more to resolve them")
    return out


def to_document(sig: dict[str, Any], asked: str | None = None) -> dict[str, Any]:
    """:func:`significance`'s result as JSON (cells as a list of ``{row, test_cam, ...}``); ``asked``: the
    ``--baseline`` text it answered (None: the default baseline), so a stored result is reused only for the
    same question (:func:`from_document`)."""
    return {"metric": sig["metric"], "baseline": list(sig["baseline"]), "asked": asked, "alpha": sig["alpha"],
            "method": sig["method"], "note": sig.get("note"),
            "cells": [{"row": r, "test_cam": c, **v} for (r, c), v in sig["cells"].items()]}


def from_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored significance document back in :func:`significance`'s shape (tuple keys)."""
    cells = {(c["row"], c["test_cam"]): {k: v for k, v in c.items() if k not in ("row", "test_cam")}
             for c in doc["cells"]}
    return {"baseline": tuple(doc["baseline"]), "alpha": doc["alpha"], "metric": doc["metric"], "cells": cells,
            "method": doc["method"], "note": doc.get("note")}


def stored_significance(runs: Sequence[Any], metric: str, baseline: str | None, alpha: float,
                        stratum: Any = None) -> dict[str, Any] | None:
    """The significance a single run's results document holds for this question (metric, ``--baseline``
    text, alpha; whole test set), or None when it holds none (several runs, a stratum, another question)."""
    if len(runs) != 1 or stratum is not None:
        return None
    stored = (runs[0].results.get("significance") or {}).get(metric)
    if not stored or stored.get("asked") != baseline or stored.get("alpha") != alpha:
        return None
    return from_document(stored)


def significance_for(runs: Sequence[Any], table: dict[str, Any], baseline: str | None = None,
                     alpha: float = 0.05) -> dict[str, Any] | None:
    """The table's significance: the stored one when the run holds it for this question, else computed
    (a scoring step: several runs, a stratum, another baseline or alpha)."""
    stored = stored_significance(runs, table["metric"], baseline, alpha, table.get("stratum"))
    if stored is not None:
        return stored
    return significance(runs, table, parse_baseline(baseline), alpha)
