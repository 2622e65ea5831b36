"""A leaderboard as data: the tables of :mod:`camkit.bench.leaderboard` with their significance
(:mod:`camkit.bench.significance`), ready for a renderer (camkit.ui.leaderboard, the report)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from camkit.bench.leaderboard import (Run, classification_table, detection_table, missing_metric_message,
                                      strata_names, unscored)
from camkit.bench.metric_table import DEFAULT_METRIC
from camkit.bench.significance import significance_for
from camkit.errors import OptionError


def leaderboard_tables(runs: Sequence[Run], metric: str = DEFAULT_METRIC, baseline: str | None = None,
                       alpha: float = 0.05, by: str | None = None) -> dict[str, Any]:
    """Everything a printed leaderboard shows, as data: the detection table of ``metric`` (one per ``by``
    stratum of the test set) with its significance against ``baseline`` (the stored one when the run holds it,
    camkit.bench.significance.significance_for), and the classification table. A metric none of the runs holds
    is an OptionError saying why; one that needs lesion boxes, for runs whose test set has none, gives no
    detection table and ``not_scored`` saying why."""
    not_scored = unscored(runs, metric)
    if not_scored:  # a test set without lesion boxes: classification (and box-free map metrics) only
        return {"metric": metric, "by": by, "detection": [], "classification": classification_table(runs),
                "not_scored": not_scored}
    parts = [(None, None)] if by is None else [((by, name), desc) for name, desc in strata_names(runs, by)]
    detection = []
    for stratum, description in parts:
        table = detection_table(runs, metric, stratum=stratum)
        missing = missing_metric_message(table)
        if missing:
            raise OptionError(missing)
        table["significance"] = significance_for(runs, table, baseline, alpha)
        table["description"] = description
        detection.append(table)
    return {"metric": metric, "by": by, "detection": detection, "classification": classification_table(runs),
            "not_scored": None}

