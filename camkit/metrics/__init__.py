"""Scoring: maps to boxes, detection (matching, FROC, TPR@FPPI, CPM), threshold-free localisation (PxAP,
MaxBoxAcc, the pointing games), faithfulness (deletion/insertion, average drop, ROAD), complexity (sparseness,
entropy), classification, bootstrap CIs
(over studies, and over training runs), paired comparisons and Holm's correction.

See docs/metrics.md for the exact rules (strict IoU > 0.3, which images count in FPPI, ties, the bootstrap).
"""
from __future__ import annotations

from camkit.metrics.bootstrap import (BootstrapResult, PairedResult, ResamplePlan, bootstrap,
                                      bootstrap_classification, bootstrap_froc, bootstrap_localization,
                                      bootstrap_means, bootstrap_p_value, compare, paired_bootstrap, resample_plan)
from camkit.metrics.classify import ClassificationResult, classification, roc_auc
from camkit.metrics.detection import (CPM_FPPIS, FROCOptions, FROCResult, MatchTable, OperatingPoint, froc,
                                      iou_matrix, match_image, match_table)
from camkit.metrics.faithfulness import DeletionInsertion, confidence_change, deletion_insertion
from camkit.metrics.localization import (box_hits, energy_inside, energy_pointing_game, max_box_acc,
                                         pointing_game, pointing_hits, pxap)
from camkit.metrics.imputation import ROADResult, road
from camkit.metrics.map_complexity import complexity, sparseness
from camkit.metrics.runs import CombinedResult, combine_runs
from camkit.metrics.significance import combine_paired, holm

__all__ = [
    "BootstrapResult", "CombinedResult", "PairedResult", "ResamplePlan", "bootstrap", "bootstrap_classification",
    "bootstrap_froc", "bootstrap_localization", "bootstrap_means", "bootstrap_p_value", "combine_runs", "compare", "paired_bootstrap", "resample_plan",
    "ClassificationResult",
    "classification", "roc_auc", "CPM_FPPIS", "FROCOptions", "FROCResult", "MatchTable", "OperatingPoint", "froc",
    "iou_matrix",
    "match_image", "match_table", "DeletionInsertion", "confidence_change", "deletion_insertion", "box_hits",
    "energy_inside", "energy_pointing_game", "max_box_acc", "pointing_game", "pointing_hits", "pxap", "combine_paired", "holm", "ROADResult", "road",
    "complexity", "sparseness",
]
