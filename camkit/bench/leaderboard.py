"""Leaderboards from one or several bench runs: the paper's Table II (detection) and Table I (classification).

One run: each cell is the metric with its study-level bootstrap CI. Several runs (training seeds) of the same
configuration: each cell is the mean over runs with a random-effects t interval over the runs (test studies the
runs share resampled with one index; camkit.metrics.combine_runs) and the spread (sd) across runs, recomputed
from each run's stored predictions. Runs whose configurations differ in anything but the seed are not averaged: :func:`group_runs`
separates them, and :func:`check_same_recipe` refuses to mix them, naming the fields that differ.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camkit.bench import metric_table
from camkit.bench.metric_table import DEFAULT_METRIC, OPERATING_FPPI, CellData, MetricSpec
from camkit.bench.scoring import bootstrap_metric
from camkit.errors import OptionError

SEED_FIELDS = ("seed",)


@dataclass
class Run:
    """One bench run directory: its results document (and, on demand, its stored predictions)."""

    path: Path | None
    results: dict[str, Any]
    # each file parsed and the config built once per run (a combined table reads them for every cell)
    _predictions: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _config: Any = field(default=None, repr=False, compare=False)
    _strata: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    boots: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)  # cell_bootstraps

    @property
    def seed(self) -> Any:
        return self.results.get("config", {}).get("seed")

    def predictions(self, train_cam: str) -> dict[str, Any]:
        """The stored per-image predictions of ``train_cam`` (what combined intervals are recomputed from)."""
        if train_cam not in self._predictions:
            file = self.path / "predictions" / f"{train_cam}.json" if self.path is not None else None
            if file is None or not file.is_file():
                raise OptionError(f"{self.path}: predictions/{train_cam}.json is missing; combining runs needs "
                                  "every run's stored predictions (re-run its bench to write them)")
            self._predictions[train_cam] = read_predictions(file)
        return self._predictions[train_cam]

    def strata(self, by: str) -> dict[str, Any]:
        """``{name: camkit.bench.strata.Stratum}`` of this run's test images (every row shares them)."""
        from camkit.bench.strata import make_strata

        if by not in self._strata:
            first = next(iter(self.results.get("detection", {})), None)
            if first is None:
                raise OptionError(f"{self.path}: no scored row to break down")
            self._strata[by] = {s.name: s for s in make_strata(self.predictions(first)["images"], by)}
        return self._strata[by]

    def config(self) -> Any:
        from camkit.bench.config import BenchConfig

        if self._config is None:
            self._config = BenchConfig(**self.results["config"])
        return self._config


class DamagedPredictions(OptionError):
    """A row's stored predictions cannot be read (unlike missing ones, never passed over in silence)."""


def read_predictions(file: Path) -> dict[str, Any]:
    """A row's stored predictions; a damaged file is one line naming it and the way out (the bench writes it
    again: the model is reused, only the evaluation runs)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("predictions"), dict):
            raise ValueError("it is not an object with images and predictions")
        return data
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DamagedPredictions(f"{file} is damaged ({type(exc).__name__}: {exc}); re-run the same camkit bench (same "
                          "--out): it evaluates that row again from its stored model and rewrites the file") from None


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """The runs at ``paths``; a folder written by ``camkit bench --seeds`` stands for its ``seed-*`` runs."""
    from camkit.bench.results import RESULTS_FILE, load_results

    out = []
    for p in map(Path, paths):
        seeds = sorted(p.glob(f"seed-*/{RESULTS_FILE}"), key=lambda f: _seed_order(f.parent.name))
        if p.is_dir() and not (p / RESULTS_FILE).is_file() and seeds:
            out += [Run(f.parent, load_results(f)) for f in seeds]
        else:
            out.append(Run(p if p.is_dir() else p.parent, load_results(p)))
    for run in out:
        if not run.results.get("detection"):  # two empty tables with exit 0 told nothing
            status, error = run.results.get("status", "unknown"), run.results.get("error")
            raise OptionError(f"{run.path}: no row was scored (status {status}{': ' + error if error else ''}); "
                              "fix the cause and re-run `camkit bench` with the same --out to resume")
    return out


def _seed_order(name: str) -> tuple[int, str]:
    tail = name.partition("-")[2]
    return (int(tail), "") if tail.lstrip("-").isdigit() else (0, tail)


MAX_SEEDS = 1000  # a seed study trains every train-cam once per seed: more is a typo, not a study


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (inclusive) -> a list of distinct seeds, in order (each a valid --seed; at most
    :data:`MAX_SEEDS` of them)."""
    from camkit.bench.config import MAX_SEED

    spans: list[tuple[int, int]] = []  # inclusive ranges, counted before any is expanded
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part[0] + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1]
                spans.append((int(lo), int(hi)))
            elif part:
                spans.append((int(part), int(part)))
    except ValueError:
        raise OptionError(f"--seeds {text!r}: give seeds as 0,1,2 or a range 0-4") from None
    count = sum(max(0, hi - lo + 1) for lo, hi in spans)
    if count > MAX_SEEDS:
        raise OptionError(f"--seeds {text!r} asks for {count:,} seeds, each a full training per train-cam; give at "
                          f"most {MAX_SEEDS} (5 is usual)")
    seeds = [s for lo, hi in spans for s in range(lo, hi + 1)]
    if not seeds or len(set(seeds)) != len(seeds):
        raise OptionError(f"--seeds {text!r}: give distinct seeds, e.g. 0,1,2 or 0-4")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise OptionError(f"--seeds {text!r}: seed {bad[0]} is out of range; seeds are integers 0 .. {MAX_SEED}")
    return seeds


def recipe_key(run: Run) -> str:
    """The run's configuration without the seed: runs with equal keys differ only by their seed."""
    conf = {k: v for k, v in run.results.get("config", {}).items() if k not in SEED_FIELDS}
    return json.dumps(conf, sort_keys=True)


def config_differences(runs: Sequence[Run]) -> dict[str, list[Any]]:
    """Configuration fields (other than the seed) whose values differ between ``runs``, with those values."""
    confs = [r.results.get("config", {}) for r in runs]
    keys = sorted({k for c in confs for k in c} - set(SEED_FIELDS))
    out = {}
    for k in keys:
        values = [c.get(k) for c in confs]
        if any(json.dumps(v, sort_keys=True) != json.dumps(values[0], sort_keys=True) for v in values):
            out[k] = values
    return out


def check_same_recipe(runs: Sequence[Run]) -> None:
    """Raise OptionError unless ``runs`` differ by their seed alone (only those may be averaged)."""
    diff = config_differences(runs)
    if diff:
        fields = "; ".join(f"{k}: {', '.join(json.dumps(v) for v in vals)}" for k, vals in list(diff.items())[:4])
        raise OptionError(f"these runs differ in more than the seed ({fields}); averaging them would mix "
                          "methods. Pass runs of one configuration, or --group to print one table per "
                          "configuration")
    seeds = [r.seed for r in runs]
    if len(set(map(str, seeds))) != len(seeds):
        raise OptionError(f"the same seed appears twice among the runs ({seeds}); each run must be another seed")


def group_runs(runs: Sequence[Run]) -> list[list[Run]]:
    """``runs`` split into groups that differ by the seed alone, in first-seen order."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(recipe_key(r), []).append(r)
    return list(groups.values())


@dataclass
class Cell:
    """One figure: a single run's value with its CI, or several runs' mean with its interval and sd."""

    value: float | None = None
    ci: tuple[float | None, float | None] = (None, None)
    fppi: float | None = None
    sd: float | None = None
    runs: int = 1
    not_applicable: str | None = None  # why the test-cam gives no map for this model (the cell shows n/a)

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        s = f"{self.value:.2f}"
        if self.fppi is not None:
            s += f"@{self.fppi:.2f}"
        if self.ci[0] is not None and self.ci[1] is not None:
            s += f" [{self.ci[0]:.2f}, {self.ci[1]:.2f}]"
        if self.runs > 1 and self.sd is not None:
            s += f" sd {self.sd:.2f}"
        return s


def _single(entry: dict[str, Any], spec: MetricSpec) -> Cell:
    if "not_applicable" in entry:
        return Cell(not_applicable=entry["not_applicable"])
    m = entry.get(spec.name) or {}
    ci = tuple(m.get("ci") or (None, None))
    return Cell(m.get(spec.value_key), ci, m.get("fppi") if spec.operating_point else None)


def _stored_cell(run: Run, row: str, test_cam: str, entry: dict[str, Any], spec: MetricSpec) -> Cell:
    """A single run's cell as its results document stores it; a metric the document does not hold (one added
    to the metric table after the bench) is scored from the stored predictions when they carry its records,
    else the cell stays empty (:func:`missing_metric_message` says why)."""
    if "not_applicable" in entry or spec.name in entry:
        return _single(entry, spec)
    try:
        if not spec.has_records(run.predictions(row)["predictions"].get(test_cam, {})):
            return Cell()
        return _boot_cell(cell_bootstraps(run, row, test_cam, spec.name), spec)
    except DamagedPredictions:
        raise
    except OptionError:
        return Cell()


def _combined_cell(c: Any, runs: int, fppi: float | None = None) -> Cell:
    """A Cell from a camkit.metrics.CombinedResult (its sd is NaN with one usable run: shown as none)."""
    return Cell(c.estimate, (c.low, c.high), fppi, None if c.sd != c.sd else c.sd, runs)


def row_meta(results: dict[str, Any], label: str) -> dict[str, Any]:
    """A row's model and train-cam (every document has them: camkit.bench.results.migrate fills in older ones)."""
    return dict(results["rows"][label])


def unfinished(run: Run) -> str | None:
    """Why ``run`` is not a finished bench, in one line with what to do, or None when it is complete.

    A run whose document still says ``running`` while no live process holds its folder was killed (SIGKILL, a
    crash, a node lost): it can only say so when someone reads it."""
    from camkit.storage.lock import FolderLock

    status = run.results.get("status")
    if status == "complete":
        return None
    if status == "running" and run.path is not None and FolderLock(run.path, "--out").holder() is not None:
        state = "is still running (another camkit process holds it)"
    elif status == "running":
        state = "was stopped without a word (killed, or its machine went down)"
    elif status == "submitted":
        state = "was submitted with --detach: its cells may still run (camkit status shows them)"
    else:
        state = f"ended {status}" + (f" ({run.results['error']})" if run.results.get("error") else "")
    pending = [r for r, c in (run.results.get("cells") or {}).items() if c.get("status") != "complete"]
    rows = f"; rows not scored: {', '.join(pending)}" if pending else ""
    return (f"{run.path} {state}{rows}: re-run the same camkit bench (same --out) to finish it; the finished rows "
            "are kept")


def row_header(results: dict[str, Any]) -> str:
    """The rows' column title: ``train-cam`` (one model's train-cams), ``model`` or ``model+train-cam``."""
    metas = [row_meta(results, label) for label in results.get("detection", {})]
    if all(m["train_cam"] == label for m, label in zip(metas, results.get("detection", {}))):
        return "train-cam"
    return "model" if all(m["train_cam"] is None for m in metas) else "model+train-cam"


def detection_table(runs: Sequence[Run | dict[str, Any]], metric: str = DEFAULT_METRIC,
                    n: int | None = None, stratum: tuple[str, str] | None = None) -> dict[str, Any]:
    """Rows train-cam x columns test-cam of ``metric``; best per row and overall (ties: the lower FPPI).

    Several runs must share their configuration but the seed; their cells are combined from the stored
    predictions (camkit.metrics.combine_runs; ``n`` resamples per run, default the runs' own bootstrap count).
    ``stratum`` ``(by, name)`` (camkit.bench.strata) scores that part of the test set only, from the stored
    predictions.
    """
    spec = metric_table.get(metric, *metric_table.PAIRING_FAMILIES)
    runs = [r if isinstance(r, Run) else Run(None, r) for r in runs]
    if len(runs) > 1:
        check_same_recipe(runs)
    rows: list[str] = []
    cols: list[str] = []
    for run in runs:
        for train_cam, per_test in run.results.get("detection", {}).items():
            rows += [train_cam] if train_cam not in rows else []
            cols += [c for c in per_test if c not in cols]
    cells: dict[tuple[str, str], Cell] = {}
    boxless = unscored(runs, metric) is not None  # a test set without boxes: nothing to score, nothing to redo
    for r in rows:
        for c in cols:
            entries = [run.results.get("detection", {}).get(r, {}).get(c) for run in runs]
            if any(e is None for e in entries):
                continue
            na = next((e for e in entries if "not_applicable" in e), None)
            if na is not None:
                cells[(r, c)] = Cell(not_applicable=na["not_applicable"], runs=len(runs))
            elif boxless:
                cells[(r, c)] = Cell(runs=len(runs))
            elif len(runs) == 1 and stratum is None:
                cells[(r, c)] = _stored_cell(runs[0], r, c, entries[0], spec)
            elif len(runs) == 1:
                cells[(r, c)] = _boot_cell(cell_bootstraps(runs[0], r, c, metric, n, stratum), spec)
            else:
                cells[(r, c)] = _combined_detection(runs, r, c, spec, n, stratum)
    best_row = {}
    sign = -1.0 if spec.lower_is_better else 1.0
    # a best mark on nothing found (0 where higher is better) would single out one of a row of zeros
    marked = [k for k, cell in cells.items() if cell.value is not None and (spec.lower_is_better or cell.value > 0)]
    for r in rows:
        scored = [(sign * cells[k].value, -(cells[k].fppi or 0), k[1]) for k in marked if k[0] == r]
        if scored:
            best_row[r] = max(scored)[2]
    scored_all = [(sign * cells[k].value, -(cells[k].fppi or 0), k) for k in marked]
    best_all = max(scored_all)[2] if scored_all else None
    return {"metric": metric, "rows": rows, "cols": cols, "cells": cells, "best_row": best_row,
            "best_all": best_all, "runs": len(runs), "seeds": [run.seed for run in runs], "stratum": stratum,
            "header": row_header(runs[0].results), "meta": {r: row_meta(runs[0].results, r) for r in rows}}


def _boot_cell(boot: dict[str, Any], spec: MetricSpec) -> Cell:
    b = boot[spec.name]
    value = None if b.estimate != b.estimate else b.estimate
    ci = (None, None) if b.low != b.low else (b.low, b.high)
    fppi = boot[metric_table.OPERATING_FPPI].estimate if spec.operating_point and value is not None else None
    return Cell(value, ci, fppi)


def shared_plan_seed(runs: Sequence[Run]) -> int | None:
    """The bootstrap seed every run of a combined table is resampled with (the first run's seed), so that runs
    scored on the same test studies get the same draws and their shared test-set error can be measured
    (camkit.metrics.runs); None for a single run, which keeps its own seed."""
    return None if len(runs) < 2 else int(runs[0].config().seed)


def _combined_detection(runs: list[Run], train_cam: str, test_cam: str, spec: MetricSpec, n: int | None,
                        stratum: tuple[str, str] | None = None) -> Cell:
    from camkit.metrics import combine_runs

    per_run, fppis = [], []
    seed = shared_plan_seed(runs)
    for run in runs:
        boot = cell_bootstraps(run, train_cam, test_cam, spec.name, n, stratum, seed)
        per_run.append(boot[spec.name])
        if spec.operating_point:
            fppis.append(boot[metric_table.OPERATING_FPPI].estimate)
    # a proportion's interval is clipped to its bounds, [0, 1] (camkit.metrics.combine_runs)
    c = combine_runs(per_run, n=n or per_run[0].n, seed=seed or 0, bounds=spec.bounds)
    fppi = sum(fppis) / len(fppis) if fppis else None
    return _combined_cell(c, len(runs), fppi)


def cell_bootstraps(run: Run, row: str, test_cam: str, metric: str, n: int | None = None,
                    stratum: tuple[str, str] | None = None, seed: int | None = None) -> dict[str, Any]:
    """The study-level bootstrap of one cell's ``metric`` (key ``metric``; an operating-point metric such as
    ``"best"`` adds ``"best_fppi"``, camkit.bench.metric_table.OPERATING_FPPI),
    recomputed from the run's stored predictions with the run's own seed, or ``seed`` (so cells of one run share
    their resamples and can be compared pairwise, and runs of one table share them too: :func:`shared_plan_seed`);
    ``stratum`` ``(by, name)``: that part of the test set only."""
    spec = metric_table.get(metric)
    # FROC metrics share one matching and one resample plan: the first asked computes them all
    kind = "froc" if spec.bootstrap == "froc" else metric
    key = (row, test_cam, kind, n, stratum, seed)
    if key not in run.boots:
        run.boots[key] = _cell_bootstraps(run, row, test_cam, spec, n, stratum, seed)
    boot = run.boots[key]
    if kind != "froc":
        return boot
    return {spec.name: boot[spec.name], **({OPERATING_FPPI: boot[OPERATING_FPPI]} if spec.operating_point else {})}


def _cell_bootstraps(run: Run, row: str, test_cam: str, spec: MetricSpec, n: int | None,
                     stratum: tuple[str, str] | None, seed: int | None) -> dict[str, Any]:
    from camkit.bench.scoring import froc_bootstraps

    stored, cfg = run.predictions(row), run.config()
    part = None
    if stratum is not None:
        part = run.strata(stratum[0]).get(stratum[1])
        if part is None:
            raise OptionError(f"{run.path}: no {stratum[0]} stratum {stratum[1]!r} in this run")
    data = CellData(stored["predictions"][test_cam], stored["images"], n or cfg.bootstrap,
                    cfg.seed if seed is None else seed, cfg, part, str(run.path))
    if spec.bootstrap == "froc":
        return froc_bootstraps([s for s in metric_table.metrics() if s.bootstrap == "froc"], data)
    return bootstrap_metric(spec, data)


def strata_names(runs: Sequence[Run], by: str) -> list[tuple[str, str]]:
    """``(name, description)`` of the ``by`` strata, in the first run's order (others' extra ones after)."""
    out: dict[str, str] = {}
    for run in runs:
        for name, part in run.strata(by).items():
            out.setdefault(name, part.description)
    return list(out.items())


def unscored(runs: Sequence[Run], metric: str) -> str | None:
    """Why ``metric`` has no table for ``runs`` whose test set has no lesion boxes (their results document says
    so: camkit.data.annotations), or None: the metric needs boxes or masks and the runs have none."""
    why = next((r.results.get("dataset", {}).get("not_scored") for r in runs
                if r.results.get("dataset", {}).get("not_scored")), None)
    return why if why and metric_table.get(metric).needs & {"boxes", "masks"} else None


def missing_metric_message(table: dict[str, Any]) -> str | None:
    """Why a table has no value in any cell (a metric the runs did not compute), or None."""
    scored = [c for c in table["cells"].values() if c.not_applicable is None]
    if not scored or any(c.value is not None for c in scored):
        return None
    return metric_table.get(table["metric"]).missing_message()


def classification_table(runs: Sequence[Run | dict[str, Any]], n: int | None = None) -> dict[str, dict[str, Cell]]:
    """Table I: per row (train-cam, or model), accuracy / AUC / TPR / TNR cells (combined over runs as detection
    is)."""
    runs = [r if isinstance(r, Run) else Run(None, r) for r in runs]
    out: dict[str, dict[str, Cell]] = {}
    train_cams = [tc for tc in runs[0].results.get("classification", {})
                  if all(tc in r.results.get("classification", {}) for r in runs)]
    for tc in train_cams:
        if len(runs) == 1:
            out[tc] = {s.name: _single(runs[0].results["classification"][tc], s)
                       for s in metric_table.metrics("classification")}
        else:
            out[tc] = _combined_classification(runs, tc, n)
    return out


def _combined_classification(runs: list[Run], train_cam: str, n: int | None) -> dict[str, Cell]:
    from camkit.metrics import combine_runs

    specs = metric_table.metrics("classification")
    per_metric: dict[str, list[Any]] = {s.name: [] for s in specs}
    seed = shared_plan_seed(runs)
    for run in runs:
        stored, cfg = run.predictions(train_cam), run.config()
        data = CellData({}, stored["images"], n or cfg.bootstrap, cfg.seed if seed is None else seed, cfg,
                        where=str(run.path),
                        threshold=run.results["classification"][train_cam].get("threshold", 0.5))
        for s in specs:
            per_metric[s.name].append(bootstrap_metric(s, data)[s.name])
    cells = {}
    for s in specs:
        results = per_metric[s.name]
        c = combine_runs(results, n=n or results[0].n, seed=seed or 0, bounds=s.bounds)
        cells[s.name] = _combined_cell(c, len(runs))
    return cells
