"""The metric table: every metric a bench scores, declared once.

An entry says what the metric measures, which way is better, its family, what it needs beyond the maps and the
model's prediction (ground-truth boxes, lesion masks, extra forwards), the per-image record it reads back from
``predictions/<row>.json``, the bounds of its intervals and how it is bootstrapped from those records. The
leaderboard (cells, best-cell direction, combined intervals), the ``--metric`` and ``--faithfulness`` choices,
the table titles and rule texts, the report's menus and ``camkit list metrics`` all read the table.

A new metric is its function in :mod:`camkit.metrics` plus one :class:`MetricSpec` passed to :func:`register`
(camkit's own metrics are the entries of :data:`BUILTIN`). Its ``bootstrap`` turns one pairing's stored
per-image records into ``{name: BootstrapResult}``; a run benched before the entry existed is scored from its
stored predictions, so the metric shows in the leaderboard of every run whose records it can read.

The table is data: it imports nothing from the bench. Its bootstrap kinds are implemented beside the records
they read (camkit.bench.scoring, wsol, faithful) and dispatched by :func:`camkit.bench.scoring.bootstrap_metric`,
so those modules can read the table without an import cycle.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from camkit.errors import OptionError

Direction = Literal["higher", "lower"]
Family = Literal["detection", "localization", "faithfulness", "complexity", "classification"]
FAMILIES: tuple[str, ...] = ("detection", "localization", "faithfulness", "complexity", "classification")
NEEDS: tuple[str, ...] = ("boxes", "masks", "forwards")
#: families scored per (row, test-cam) pairing: the detection leaderboard's metrics
PAIRING_FAMILIES: tuple[str, ...] = ("detection", "localization", "faithfulness", "complexity")
#: the headline metric: what ``camkit bench`` and ``camkit leaderboard`` print unless ``--metric`` says
#: otherwise, and the metric ``camkit report``'s page opens on
DEFAULT_METRIC = "tpr@1"
#: the key an operating-point metric's bootstrap adds: the FPPI at which its value is reached
OPERATING_FPPI = "best_fppi"
PROPORTION = (0.0, 1.0)


@dataclass(frozen=True)
class CellData:
    """What a metric's bootstrap reads: one pairing's stored predictions (one stratum of them, or all)."""

    per_image: Mapping[str, Any]          # image id -> its stored record (boxes, scores, per-image values)
    images: Sequence[Mapping[str, Any]]   # the evaluation records (image_id, study_id, gt, label, prob, ...)
    n: int                                # bootstrap resamples
    seed: int
    config: Any                           # the run's camkit.bench.config.BenchConfig
    stratum: Any = None                   # a camkit.bench.strata.Stratum, or None for the whole test set
    where: str = ""                       # the run's folder, for messages
    threshold: float = 0.5                # classification: positive when p >= threshold

    def per_image_images(self) -> list[Mapping[str, Any]]:
        """The evaluation records a per-image metric averages over: the stratum's per-image images, or all
        (camkit.bench.strata: under ``size`` an image belongs to the stratum of its largest lesion)."""
        ids = self.stratum.per_image_ids() if self.stratum is not None else None
        return list(self.images) if ids is None else [r for r in self.images if r["image_id"] in ids]


#: the bootstrap kinds camkit implements (camkit.bench.scoring.bootstrap_metric dispatches them): ``froc``
#: (camkit.metrics.bootstrap_froc of the stored boxes), ``localization`` (the stored per-image localisation
#: values, camkit.bench.wsol), ``faithfulness`` (the stored per-image faithfulness values, camkit.bench.faithful),
#: ``mean`` (the mean of the per-image number at the entry's ``record``, over the images whose record holds one:
#: camkit.bench.scoring.mean_bootstrap), ``classification`` (the stored image probabilities)
BOOTSTRAP_KINDS: tuple[str, ...] = ("froc", "localization", "faithfulness", "mean", "classification")
#: a metric's own bootstrap: ``(spec, data) -> {spec.name: camkit.metrics.BootstrapResult, ...}``
Bootstrap = Callable[["MetricSpec", CellData], dict[str, Any]]
Rule = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the table.

    ``record``: the per-image key it reads from the stored predictions (dots step into nested records, e.g.
    ``faithfulness.drop``; classification metrics read each image's ``prob``). ``bootstrap``: one of
    :data:`BOOTSTRAP_KINDS`, or a callable ``(spec, data: CellData) -> {spec.name: BootstrapResult}``.
    ``source``: its name in what ``bootstrap`` computes (camkit.metrics' name, or the per-image key), default
    ``name``. ``value_key``: where ``results.json`` keeps the number inside the metric's entry.
    ``operating_point``: the value is read where the FROC reaches it, so cells also show that FPPI.
    ``option``: the ``camkit bench --faithfulness`` family that computes it (metrics that cost extra forwards
    are computed only when asked). ``settings``: the run's configuration fields (with their defaults) the
    number depends on, echoed beside it in JSON. ``rule``: the table title's "how it is counted" text for a
    run's configuration (default: its family's). ``label``: its name in prose and column heads (PxAP, AUC).
    """

    name: str
    description: str
    family: Family
    bootstrap: str | Bootstrap
    record: str
    direction: Direction = "higher"
    needs: frozenset[str] = frozenset()
    bounds: tuple[float, float] | None = None
    source: str = ""
    label: str = ""
    value_key: str = "value"
    operating_point: bool = False
    option: str | None = None
    settings: tuple[tuple[str, Any], ...] = ()
    rule: Rule | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"metric {self.name!r}: family {self.family!r} is not one of {', '.join(FAMILIES)}")
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"metric {self.name!r}: direction must be 'higher' or 'lower', got {self.direction!r}")
        if isinstance(self.bootstrap, str) and self.bootstrap not in BOOTSTRAP_KINDS:
            raise ValueError(f"metric {self.name!r}: bootstrap {self.bootstrap!r} is neither a callable nor one of "
                             f"{', '.join(BOOTSTRAP_KINDS)}")
        unknown = sorted(set(self.needs) - set(NEEDS))
        if unknown:
            raise ValueError(f"metric {self.name!r}: needs {unknown} (known: {', '.join(NEEDS)})")
        object.__setattr__(self, "needs", frozenset(self.needs))
        object.__setattr__(self, "source", self.source or self.name)
        object.__setattr__(self, "label", self.label or self.name)

    @property
    def lower_is_better(self) -> bool:
        """Whether the best cell is the lowest (the leaderboard's marks, the report's ordering)."""
        return self.direction == "lower"

    @property
    def arrow(self) -> str:
        """The title's direction mark."""
        return "↓" if self.lower_is_better else "↑"

    def rule_text(self, config: Mapping[str, Any]) -> str:
        """How the metric is counted under a run's ``config`` (its ``results.json`` ``config``)."""
        return (self.rule or _FAMILY_RULES[self.family])(config)

    def settings_of(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The configuration fields the number depends on, as ``config`` sets them (defaults where absent)."""
        return {key: config.get(key, default) for key, default in self.settings}

    def has_records(self, per_image: Mapping[str, Any]) -> bool:
        """Whether any stored per-image record carries this metric's values."""
        return any(_record(p, self.record) is not None for p in per_image.values())

    def value_of(self, record: Any) -> Any:
        """This metric's value in one image's stored record (None where the record does not hold it)."""
        return _record(record, self.record)

    def missing_message(self) -> str:
        """Why runs hold no value of this metric, and what to do about it."""
        if "masks" in self.needs:
            return (f"these runs have no {self.label}: it needs lesion masks, which their dataset does not give "
                    "(synthetic, cbis-ddsm and inbreast give them; a synthetic run from before camkit stored them: "
                    "bench again with a new --out)")
        if "forwards" in self.needs:
            return (f"these runs have no {self.name}: the faithfulness metrics cost extra forwards and are "
                    f"computed only when asked; bench again with --faithfulness {self.option} and a new --out "
                    "beside this one (the model store is shared: nothing retrains)")
        return (f"these runs have no {self.name} (benches from before camkit stored it); bench again with a new "
                "--out beside this one (the model store is shared: nothing retrains)")

    def describe(self) -> dict[str, Any]:
        """A plain row for ``camkit list metrics``."""
        return {"name": self.name, "family": self.family, "direction": self.direction,
                "needs": " ".join(n for n in NEEDS if n in self.needs), "record": self.record,
                "bootstrap": _bootstrap_name(self.bootstrap), "bounds": list(self.bounds) if self.bounds else None,
                "option": self.option, "description": self.description}


def _record(per_image: Any, path: str) -> Any:
    value = per_image
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _bootstrap_name(fn: str | Bootstrap) -> str:
    return fn if isinstance(fn, str) else getattr(fn, "__qualname__", type(fn).__name__)


# -- how each family is counted (the table titles' rule texts) ------------------------------------------------
def detection_rule(config: Mapping[str, Any]) -> str:
    """FROC metrics: the match rule, how maps became boxes, which images count in FPPI."""
    cut = f"boxes at {config.get('box_threshold', 0.5)} x the map's maximum"
    if config.get("boxes") == "peaks":
        cut = f"a box per map peak at {config.get('box_threshold', 0.5)} x its height, NMS IoU 0.5"
    elif config.get("box_threshold") == "auto":
        cut = "boxes at each pairing's validation-chosen threshold"
    return (f"IoU > {config.get('iou_threshold', 0.3)}, {cut}, FPPI over {config.get('fppi_images', 'positive')} "
            "test images")


def localization_rule(config: Mapping[str, Any]) -> str:
    """Threshold-free localisation metrics: per lesion image, in the maps' grid."""
    return "over the test images with a lesion, in the maps' grid; map thresholds 0 .. 0.99 (docs/metrics.md)"


def maxboxacc_rule(config: Mapping[str, Any]) -> str:
    """MaxBoxAcc: the localisation rule and the convention its hits were computed by."""
    return f"{localization_rule(config)}; {config.get('maxboxacc_convention', 'camkit')} convention"


def faithfulness_rule(config: Mapping[str, Any]) -> str:
    """Faithfulness metrics: per mass image, on the model's mass probability."""
    return "over the test images with a mass, the model's mass probability (docs/metrics.md section 6)"


def complexity_rule(config: Mapping[str, Any]) -> str:
    """Complexity metrics: per test image, on the map as the CAM engine returns it."""
    return ("over every test image, each map in the model input's grid as the CAM engine returns it "
            "(docs/metrics.md section 7)")


def classification_rule(config: Mapping[str, Any]) -> str:
    """Classification metrics: the image-level probability against the label."""
    return "positive when p >= 0.5"


_FAMILY_RULES: dict[str, Rule] = {"detection": detection_rule, "localization": localization_rule,
                                  "faithfulness": faithfulness_rule, "complexity": complexity_rule,
                                  "classification": classification_rule}


def _froc(name: str, description: str, **kw: Any) -> MetricSpec:
    return MetricSpec(name, description, "detection", "froc", "boxes", needs=frozenset({"boxes"}),
                      bounds=PROPORTION, **kw)


def _local(name: str, description: str, record: str, **kw: Any) -> MetricSpec:
    return MetricSpec(name, description, "localization", "localization", record,
                      needs=frozenset({"boxes", *kw.pop("needs", ())}), bounds=PROPORTION, **kw)


def _faith(name: str, description: str, option: str, source: str = "", **kw: Any) -> MetricSpec:
    return MetricSpec(name, description, "faithfulness", "faithfulness",
                      f"faithfulness.{source or name}", needs=frozenset({"forwards"}), source=source,
                      option=option, **kw)


def _classify(name: str, description: str, label: str) -> MetricSpec:
    return MetricSpec(name, description, "classification", "classification", "prob", bounds=PROPORTION,
                      label=label)


#: camkit's own metrics, in the leaderboard's order
BUILTIN: tuple[MetricSpec, ...] = (
    _froc("tpr@0.5", "TPR at <= 0.5 false positives per image"),
    _froc("tpr@1", "TPR at <= 1 false positive per image"),
    _froc("tpr@2", "TPR at <= 2 false positives per image"),
    _froc("best", "highest TPR reached, at the FPPI where it is first reached (the paper's Table II)",
          source="best_tpr", value_key="tpr", operating_point=True),
    _froc("cpm", "mean TPR over FPPI 1/8 .. 8 (competition performance metric)"),
    _local("maxboxacc", "MaxBoxAccV2: best box accuracy over map thresholds, mean over IoU 0.3/0.5/0.7",
           "box_hits", label="MaxBoxAcc", settings=(("maxboxacc_convention", "camkit"),), rule=maxboxacc_rule),
    _local("pointing", "pointing game: the map's maximum inside a lesion box", "pointing"),
    _local("energy", "energy pointing game: share of the map's mass inside the lesion boxes", "energy"),
    _local("pxap", "PxAP: pixel average precision of the map against the lesion masks (thresholds 0 .. 0.99)",
           "pxap_hist", needs=("masks",), label="PxAP"),
    _faith("deletion", "deletion area: the mass probability as the most relevant pixels go (lower is better)",
           "deletion-insertion", direction="lower"),
    _faith("insertion", "insertion area: the mass probability as the most relevant pixels come back",
           "deletion-insertion"),
    _faith("average_drop", "average drop in confidence on the image times its map (lower is better)",
           "confidence", source="drop", direction="lower"),
    _faith("increase", "increase in confidence: share of images scored higher on the image times its map",
           "confidence"),
    _faith("road", "ROAD combined: mean of (LeRF - MoRF) / 2 over percentiles 10 .. 90", "road"),
    # no ground truth, no forward: each test image's map, while the bench holds it (camkit.bench.complexity)
    MetricSpec("sparseness", "sparseness: Gini index of the map's absolute values (Chalasani et al. 2020), higher "
               "is more concentrated", "complexity", "mean", "sparseness", bounds=PROPORTION),
    MetricSpec("complexity", "complexity: entropy in nats of the map's absolute values as a distribution (Bhatt et "
               "al. 2020), lower is simpler", "complexity", "mean", "complexity", direction="lower"),
    _classify("accuracy", "share of test images classified right (positive when p >= the threshold, 0.5)", "accuracy"),
    _classify("auc", "area under the ROC curve of the image-level mass probability", "AUC"),
    _classify("tpr", "sensitivity: share of mass images classified positive", "TPR"),
    _classify("tnr", "specificity: share of normal images classified negative", "TNR"),
)

_TABLE: dict[str, MetricSpec] = {spec.name: spec for spec in BUILTIN}


# -- lookups ---------------------------------------------------------------------------------------------------
def register(spec: MetricSpec, replace: bool = False) -> MetricSpec:
    """Add ``spec`` to the table (after the metrics of its family); a taken name is refused unless ``replace``."""
    if spec.name in _TABLE and not replace:
        raise ValueError(f"a metric named {spec.name!r} is already in the table")
    _TABLE[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered metric (camkit's own stay)."""
    if name in {s.name for s in BUILTIN}:
        raise ValueError(f"{name!r} is one of camkit's own metrics")
    _TABLE.pop(name, None)


def metrics(*families: str) -> tuple[MetricSpec, ...]:
    """The table's entries of ``families`` (every family when none is given), family by family in
    :data:`FAMILIES` order, each in declaration order."""
    chosen = families or FAMILIES
    return tuple(s for f in FAMILIES if f in chosen for s in _TABLE.values() if s.family == f)


def names(*families: str) -> tuple[str, ...]:
    """The names of :func:`metrics`."""
    return tuple(s.name for s in metrics(*families))


def pairing_metrics() -> tuple[MetricSpec, ...]:
    """The detection leaderboard's metrics (scored per row and test-cam), in its order."""
    return metrics(*PAIRING_FAMILIES)


def get(name: str, *families: str) -> MetricSpec:
    """The entry of ``name`` (among ``families`` when given); an unknown name is an OptionError naming the
    choices."""
    spec = _TABLE.get(name)
    if spec is None or (families and spec.family not in families):
        raise OptionError(f"unknown metric {name!r}; choose one of {', '.join(names(*families))}")
    return spec


def faithfulness_options() -> tuple[str, ...]:
    """The ``camkit bench --faithfulness`` families, in the table's order."""
    return tuple(dict.fromkeys(s.option for s in metrics("faithfulness") if s.option))


def describe(pattern: str | None = None) -> list[dict[str, Any]]:
    """Rows of the table for ``camkit list metrics`` (``pattern``: a glob on the name)."""
    return [s.describe() for s in metrics() if pattern is None or fnmatch.fnmatchcase(s.name, pattern)]
