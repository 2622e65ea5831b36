"""Scoring: maps to boxes, detection (matching, FROC, TPR@FPPI, CPM), classification, bootstrap CIs (over
studies, and over training runs x studies) and paired comparisons.

See docs/metrics.md for the exact rules (strict IoU > 0.3, which images count in FPPI, ties, the bootstrap).
"""
from __future__ import annotations

from camkit.metrics.bootstrap import (BootstrapResult, CombinedResult, PairedResult, ResamplePlan, bootstrap,
                                      bootstrap_classification, bootstrap_froc, combine_runs, compare,
                                      paired_bootstrap, resample_plan)
from camkit.metrics.classify import ClassificationResult, classification, roc_auc
from camkit.metrics.detection import (CPM_FPPIS, FROCResult, MatchTable, OperatingPoint, froc, iou_matrix,
                                      match_image, match_table)

__all__ = [
    "BootstrapResult", "CombinedResult", "PairedResult", "ResamplePlan", "bootstrap", "bootstrap_classification",
    "bootstrap_froc", "combine_runs", "compare", "paired_bootstrap", "resample_plan", "ClassificationResult",
    "classification", "roc_auc", "CPM_FPPIS", "FROCResult", "MatchTable", "OperatingPoint", "froc", "iou_matrix",
    "match_image", "match_table",
]
