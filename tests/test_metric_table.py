"""The metric table (camkit.bench.metric_table): each metric declared once, and what reads it. A metric added
through one entry reaching the leaderboard, `--metric` and the report over a real run is in
tests/test_bench_e2e.py."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from camkit.bench import metric_table
from camkit.bench.metric_table import MetricSpec
from camkit.cli import main


def test_the_table_holds_the_leaderboards_facts():
    assert metric_table.names(*metric_table.PAIRING_FAMILIES) == (
        "tpr@0.5", "tpr@1", "tpr@2", "best", "cpm", "maxboxacc", "pointing", "energy", "pxap", "deletion",
        "insertion", "average_drop", "increase", "road", "sparseness", "complexity")
    assert metric_table.names("classification") == ("accuracy", "auc", "tpr", "tnr")
    assert {s.name for s in metric_table.metrics() if s.lower_is_better} == {"deletion", "average_drop",
                                                                             "complexity"}
    # combined intervals of proportions are clipped to [0, 1]; the faithfulness areas and drops are not
    assert {s.name for s in metric_table.metrics() if s.bounds == (0.0, 1.0)} == {
        "tpr@0.5", "tpr@1", "tpr@2", "best", "cpm", "maxboxacc", "pointing", "energy", "pxap", "sparseness",
        "accuracy", "auc", "tpr", "tnr"}
    assert metric_table.faithfulness_options() == ("deletion-insertion", "confidence", "road")
    assert metric_table.get("pxap").needs == {"boxes", "masks"}
    assert all("forwards" in s.needs and s.option for s in metric_table.metrics("faithfulness"))
    assert metric_table.DEFAULT_METRIC in metric_table.names("detection")


def test_cli_choices_come_from_the_table():
    from camkit.cli.bench import bench, leaderboard

    for command in (bench, leaderboard):
        metric = next(p for p in command.params if p.name == "metric")
        assert tuple(metric.type.choices) == metric_table.names(*metric_table.PAIRING_FAMILIES)
    faith = next(p for p in bench.params if p.name == "faithfulness")
    assert tuple(faith.type.choices) == (*metric_table.faithfulness_options(), "all")


def test_rule_texts_follow_the_family_and_the_runs_configuration():
    config = {"iou_threshold": 0.3, "box_threshold": "auto", "fppi_images": "positive",
              "maxboxacc_convention": "wsolevaluation"}
    assert metric_table.get("cpm").rule_text(config) == ("IoU > 0.3, boxes at each pairing's validation-chosen "
                                                          "threshold, FPPI over positive test images")
    assert metric_table.get("maxboxacc").rule_text(config).endswith("(docs/metrics.md); wsolevaluation convention")
    assert metric_table.get("maxboxacc").settings_of({}) == {"maxboxacc_convention": "camkit"}
    assert metric_table.get("road").rule_text(config).startswith("over the test images with a mass")
    assert "--faithfulness confidence" in metric_table.get("average_drop").missing_message()


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown", "plain"])
def test_camkit_list_metrics_prints_the_table_in_every_format(fmt):
    res = CliRunner().invoke(main, ["list", "metrics", "--format", fmt])
    assert res.exit_code == 0, res.output
    if fmt == "json":
        rows = json.loads(res.output)
        assert [r["name"] for r in rows] == list(metric_table.names())
        assert rows[3] == {**rows[3], "name": "best", "family": "detection", "direction": "higher",
                           "needs": "boxes", "record": "boxes", "bootstrap": "froc", "bounds": [0.0, 1.0]}
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(res.output)))
        assert [r["name"] for r in rows] == list(metric_table.names())
        assert rows[9]["name"] == "deletion" and rows[9]["direction"] == "lower"
    else:
        assert "faithfulness.drop" in res.output and "masks" in res.output
    one = CliRunner().invoke(main, ["list", "metrics", "tpr@*", "--format", "json"])
    assert [r["name"] for r in json.loads(one.output)] == ["tpr@0.5", "tpr@1", "tpr@2"]


def test_a_bad_entry_is_refused_where_it_is_declared():
    with pytest.raises(ValueError, match="family"):
        MetricSpec("x", "x", "segmentation", "froc", "boxes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bootstrap"):
        MetricSpec("x", "x", "detection", "bogus", "boxes")
    with pytest.raises(ValueError, match="needs"):
        MetricSpec("x", "x", "detection", "froc", "boxes", needs=frozenset({"labels"}))
    with pytest.raises(ValueError, match="already"):
        metric_table.register(metric_table.get("cpm"))
    with pytest.raises(ValueError, match="camkit's own"):
        metric_table.unregister("cpm")


def test_a_registered_entry_with_its_own_bootstrap_is_listed_and_scored_then_removed():
    from camkit.bench.scoring import bootstrap_metric
    from camkit.metrics import bootstrap_means

    def mean_hits(spec, data):
        rows = [(data.per_image[r["image_id"]]["hits"], r["study_id"]) for r in data.per_image_images()]
        return bootstrap_means([g for _, g in rows], {spec.name: [v for v, _ in rows]}, n=data.n, seed=data.seed)

    spec = metric_table.register(MetricSpec("hit_rate", "share of images hit", "localization", mean_hits, "hits",
                                            bounds=(0.0, 1.0)))
    try:
        assert metric_table.names("localization")[-1] == "hit_rate"
        images = [{"image_id": str(i), "study_id": str(i // 2)} for i in range(6)]
        per_image = {str(i): {"hits": float(i % 2)} for i in range(6)}
        data = metric_table.CellData(per_image, images, n=20, seed=0, config=None)
        assert spec.has_records(per_image) and not spec.has_records({"0": {"boxes": []}})
        assert bootstrap_metric(spec, data)["hit_rate"].estimate == 0.5
        listed = json.loads(CliRunner().invoke(main, ["list", "metrics", "hit_*", "--format", "json"]).output)
        assert listed[0]["bootstrap"].endswith("mean_hits")
    finally:
        metric_table.unregister("hit_rate")
    assert "hit_rate" not in metric_table.names()
