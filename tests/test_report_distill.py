"""camkit report on camkit distill runs: a hand-made distill run (distill.json and predictions.json written here,
on the synthetic test split, so nothing trains) and, where this checkout has one, a real run; alone, with a bench
run, in one file, with a dataset that cannot be rebuilt, with hostile text; the gallery's boxes where the image's
pixels say they are."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from camkit.cli.app import main

REAL = Path("/work/runs/distill/seed-0")  # a real distill run, where this machine has one (a user's clone has none)
PAYLOAD = "<img src=x onerror=\"document.title='PWNED'\">"
ESCAPED = "&lt;img src=x onerror=&#34;document.title=&#39;PWNED&#39;&#34;&gt;"
# the rows' numbers, distinct enough that each cell is found by its text
NUMBERS = {"cam-boxes": (0.611, 0.622, 0.633, 0.604), "detector": (0.811, 0.822, 0.833, 0.804),
           "oracle": (0.911, 0.922, 0.933, 0.904)}
METRICS = ("tpr@0.5", "tpr@1", "tpr@2", "cpm")
COLOURS = {"truth": (0, 158, 115), "cam-boxes": (230, 159, 0), "detector": (0, 114, 178), "oracle": (204, 121, 167)}


@pytest.fixture(scope="module")
def split():
    """The synthetic test split the hand-made run's configuration rebuilds: 16 images stored at twice the model's
    size, right views mirrored, so a box left in the stored image's pixels would be drawn in the wrong place."""
    from camkit.distill.run import DistillConfig
    from camkit.ui.report_distill import rebuild_test_split

    config = DistillConfig(dataset_options={"n": 16, "original_size": [512, 320]}, bootstrap=100,
                           preset="cpu").to_dict()
    dataset = rebuild_test_split(DistillConfig(**config).bench_config())
    records = []
    for i in range(len(dataset)):
        s = dataset[i]
        gt = s["transform"].to_original(s["boxes"]) if len(s["boxes"]) else np.zeros((0, 4))
        records.append({"image_id": s["image_id"], "study_id": s["study_id"], "label": int(s["label"]),
                        "prob": 0.5 + 0.01 * i, "gt": np.round(gt, 2).tolist(), "view": s["view"],
                        "laterality": s["laterality"], "flipped": bool(s["transform"].flipped),
                        "model_gt": np.asarray(s["boxes"], dtype=float).reshape(-1, 4).tolist()})
    return config, records


def _row(values, froc_end):
    return {**{m: {"value": v, "ci": [v - 0.1, v + 0.05]} for m, v in zip(METRICS, values)},
            "froc": {"fppi": [0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 9.0], "tpr": [0.05, 0.1, 0.3, 0.5, froc_end, froc_end, 1.0]}}


def _predictions(records):
    """cam-boxes: the truth shifted by 4 stored pixels; detector: the truth and five weak boxes; oracle: the truth;
    on normal images one weak box each."""
    out = {}
    for role in COLOURS:
        if role == "truth":
            continue
        preds = {}
        for r in records:
            gt = np.asarray(r["gt"], dtype=float).reshape(-1, 4)
            if role == "cam-boxes":
                boxes, scores = (gt + 4).tolist(), [0.8] * len(gt)
            else:
                boxes, scores = gt.tolist(), [0.9 if role == "detector" else 0.95] * len(gt)
            if role == "detector":
                boxes += [[10.0 + 8 * k, 10.0, 40.0 + 8 * k, 40.0] for k in range(5)]
                scores += [0.01 * (k + 1) for k in range(5)]
            if not len(gt):
                boxes, scores = [[20.0, 20.0, 60.0, 60.0]], [0.2]
            preds[r["image_id"]] = {"boxes": boxes, "scores": scores}
        out[role] = {"images": [{k: v for k, v in r.items() if k not in ("flipped", "model_gt")} for r in records],
                     "predictions": preds}
    return out


def make_run(folder: Path, split, oracle: bool = True, **config_changes) -> Path:
    """A distill run folder written by hand, with the fields camkit distill writes."""
    config, records = split
    config = {**config, **config_changes}
    rows = {role: _row(v, 0.4 + 0.1 * k) for k, (role, v) in enumerate(NUMBERS.items()) if oracle or role != "oracle"}
    doc = {"schema": "camkit.distill/1", "config": config,
           "teacher": {"model": "gmic", "train_cam": config["train_cam"], "config_hash": "abc123", "reused": True,
                       "seconds": 12.5, "checkpoint": "models/teacher/best.pt"},
           "pseudo_boxes": {"corloc": 0.5731, "precision": 0.6842, "recall": 0.7953, "n_images": 8, "iou": 0.3,
                            "left_out": 2},
           "training": {"detector": {"seconds": 30.25, "epochs": 2, "best_epoch": 2, "best_val_auc": 0.8736,
                                     "reused": False, "images": 16},
                        "detector-r1": {"seconds": 31.0, "epochs": 2, "best_epoch": 1, "best_val_auc": 0.8,
                                        "reused": False, "images": 16}},
           "rows": rows,
           "gain": ({"metric": "tpr@1", "value": 0.4321, "ci": [0.1234, 0.8765], "teacher": 0.622, "detector": 0.822,
                     "oracle": 0.922, "bootstrap": {"n": 100, "seed": 0, "by": "study", "undefined": 3}}
                    if oracle else None),
           "oracle": None if oracle else "skipped: the dataset gives no training boxes",
           "rounds": [{"round": 1, "pseudo_boxes": {"corloc": 0.6419, "precision": 0.7, "recall": 0.8, "n_images": 8,
                                                    "iou": 0.3, "left_out": 0}}],
           "timings": {"pseudo_s": 3.25, "total_s": 99.5, "detector_train_s": 30.25}}
    if oracle:
        doc["training"]["oracle"] = {"seconds": 33.0, "epochs": 2, "best_epoch": 2, "best_val_auc": 0.9,
                                     "reused": True, "images": 16}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "distill.json").write_text(json.dumps(doc))
    preds = _predictions(records)
    if not oracle:
        preds.pop("oracle")
    (folder / "predictions.json").write_text(json.dumps(preds))
    return folder


def report(tmp_path: Path, *runs: Path, extra: tuple[str, ...] = (), name: str = "rep"):
    out = tmp_path / name
    res = CliRunner().invoke(main, ["report", *map(str, runs), "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return out, (out / "index.html").read_text(), res


def cell(html: str, row: str, metric: str) -> str:
    found = re.search(rf'<td data-row="{re.escape(row)}" data-metric="{re.escape(metric)}"[^>]*>([^<]*)</td>', html)
    assert found, (row, metric)
    return found.group(1)


def section(html: str, index: int = 0) -> str:
    return re.search(rf'<section class="group distill" id="d{index}".*?</section>', html, re.S).group(0)


@pytest.fixture(scope="module")
def made(split, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distill-report")
    run = make_run(tmp / "run", split, detector_options={"note": PAYLOAD})
    out, html, res = report(tmp, run)
    return run, out, html


def test_the_three_rows_the_gain_and_the_quality_are_the_documents(made):
    _, _, html = made
    for role, values in NUMBERS.items():
        for metric, v in zip(METRICS, values):
            assert cell(html, role, metric).startswith(f"{v:.2f} [{v - 0.1:.2f}, {v + 0.05:.2f}]"), (role, metric)
    # the oracle is best in every column, and only it is marked
    assert all(cell(html, "oracle", m).endswith("**") for m in METRICS)
    assert not any(cell(html, r, m).endswith("**") for r in ("cam-boxes", "detector") for m in METRICS)
    gain = re.search(r'<p class="gain" id="distill-gain-0">(.*?)</p>', html, re.S).group(1)
    assert "<strong>0.43</strong> [0.12, 0.88]" in gain and "TPR@1" in gain and "undefined on 3" in gain
    assert "teacher 0.62, detector 0.82, oracle 0.92" in gain
    # the pseudo-boxes' quality, and the self-training round's
    assert "<td>0.57</td><td>0.68</td><td>0.80</td>" in html and "round 1: the detector" in html and "0.64" in html
    assert "camkit benchmark report" in html and 'href="#d0"' in html
    for text in ("99.5 s", "detector-r1", "0.874", "gmic / xgradcam"):
        assert text in section(html), text


def test_the_froc_chart_has_the_three_rows_in_their_colours(made):
    _, _, html = made
    svg = re.search(r'<svg [^>]*id="froc-svg-d0">(.*?)</svg>', section(html), re.S).group(1)
    lines = re.findall(r'<polyline id="(froc-\d-d0)" class="curve" points="([^"]+)" stroke="([^"]+)"', svg)
    assert [(i, c) for i, _, c in lines] == [("froc-0-d0", "#E69F00"), ("froc-1-d0", "#0072B2"),
                                             ("froc-2-d0", "#CC79A7")]
    # each curve ends at the right edge (FPPI 8) at its TPR@2 of the stored curve, the 9.0 point left out
    for k, (_, points, _) in enumerate(lines):
        x, y = map(float, points.split()[-1].split(","))
        assert x == pytest.approx(624.0) and y == pytest.approx(14 + (1 - (0.4 + 0.1 * k)) * 306, abs=0.1)
    assert all(f'data-curve="froc-{k}-d0"' in html for k in range(3))


def test_the_gallery_draws_masses_and_normals_with_each_rows_best_boxes(made, split):
    from PIL import Image

    _, out, html = made
    sec = section(html)
    titles = re.findall(r'<p class="gal-title">(\S+) <span class="tag">(\w+)</span>', sec)
    assert [t[1] for t in titles] == ["mass"] * 4 + ["normal"] * 2
    pictures = re.findall(r'<img src="([^"]+)"', sec)
    assert len(pictures) == 6 * 4 and all((out / p).is_file() for p in pictures)
    assert all(p.startswith("assets/d0/") for p in pictures)
    # the detector's best three boxes only: the truth (0.90) and its two best weak boxes
    assert sec.count("scores 0.90, 0.05, 0.04") == 4
    records = {r["image_id"]: r for r in split[1]}
    assert any(records[i]["flipped"] for i, label in titles if label == "mass"), "no right view among the masses"
    for k, (image_id, label) in enumerate(titles):
        if label != "mass":
            continue
        for role in ("cam-boxes", "detector", "oracle"):
            full = np.asarray(Image.open(out / f"assets/d0/{k:03d}-{role}.png").convert("RGB"))
            scale = 640 / 256  # the model input (256 x 160) enlarged to 640 px
            colours = {tuple(c) for c in full.reshape(-1, 3)}
            assert COLOURS[role] in colours and all(COLOURS[o] not in colours for o in COLOURS
                                                    if o not in ("truth", role))
            if role == "cam-boxes":
                continue  # shifted off the truth on purpose
            # the row's box sits on the lesion in the model frame (mapped from the stored, mirrored, 2x pixels)
            x1, y1, x2, y2 = records[image_id]["model_gt"][0]
            ys, xs = int((y1 + y2) / 2 * scale), int(x1 * scale)
            window = full[ys - 2:ys + 3, max(0, xs - 2):xs + 3].reshape(-1, 3)
            assert any(tuple(c) == COLOURS[role] for c in window), (image_id, role)


def test_hostile_text_in_the_document_stays_text(split, tmp_path):
    run = make_run(tmp_path / "run", split, oracle=False, detector_options={"note": PAYLOAD})
    doc = json.loads((run / "distill.json").read_text())
    doc["teacher"]["model"] = PAYLOAD
    doc["oracle"] = "skipped: " + PAYLOAD
    doc["rounds"][0]["round"] = PAYLOAD
    doc["timings"][PAYLOAD] = 1.0
    (run / "distill.json").write_text(json.dumps(doc))
    for extra in ((), ("--single-file",)):
        _, html, _ = report(tmp_path, run, extra=extra, name=f"rep{len(extra)}")
        page = re.sub(r'<script type="application/json" id="report-data">.*?</script>', "", html, flags=re.S)
        assert PAYLOAD not in page and "onerror=\"" not in page
        assert page.count(ESCAPED) >= 6  # title, nav, the configuration, the oracle's reason (twice), round, timing
        assert len(re.findall(r"<script", page)) == 1
        assert "not measured (skipped: " + ESCAPED in page  # no oracle: its reason instead of the gain
        assert re.search(r'<td colspan="4" class="skipped">skipped: ' + re.escape(ESCAPED), page)


def test_single_file_inlines_the_distill_pictures(split, tmp_path):
    run = make_run(tmp_path / "run", split)
    out, html, _ = report(tmp_path, run, extra=("--single-file", "--gallery", "3"))
    assert not (out / "assets").exists()
    assert html.count('src="data:image/png;base64,') == 3 * 4  # --gallery 3: two masses, one normal
    assert 'src="assets/' not in html and 'href="assets/' not in html


def test_a_dataset_that_cannot_be_rebuilt_costs_the_gallery_only(split, tmp_path):
    run = make_run(tmp_path / "run", split, dataset="no-such-dataset")
    out, html, res = report(tmp_path, run)
    assert re.search(r'<p class="no-gallery">No gallery: the test split could not be rebuilt from distill.json&#39;s '
                     r"configuration \([^<]*no-such-dataset[^<]*\)\.</p>", html)
    assert "no gallery" in res.stderr and not (out / "assets" / "d0").exists()
    assert cell(html, "detector", "tpr@1").startswith("0.82") and 'id="froc-svg-d0"' in html
    (run / "predictions.json").unlink()
    _, html, _ = report(tmp_path, run, name="rep2")
    assert "No gallery: " in html and cell(html, "oracle", "cpm").startswith("0.90")


def test_which_folders_are_distill_runs(split, tmp_path):
    from camkit.errors import OptionError
    from camkit.ui.report_distill import load_distill, split_runs

    seeds = tmp_path / "seeds"
    for s in (10, 2):
        make_run(seeds / f"seed-{s}", split)
    (seeds / "distill-seeds.json").write_text("{}")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "results.json").write_text("{}")
    assert split_runs([bench, seeds, seeds / "seed-2"]) == ([bench], [seeds / "seed-2", seeds / "seed-10",
                                                                     seeds / "seed-2"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "distill.json").write_text(json.dumps({"schema": "something/2", "rows": {}}))
    assert split_runs([other]) == ([], [other])
    with pytest.raises(OptionError, match="not a camkit distill document .schema 'something/2'"):
        load_distill(other)
    res = CliRunner().invoke(main, ["report", str(other), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "not a camkit distill document" in res.output


def test_froc_polylines_are_thinned_to_the_same_steps():
    from camkit.ui.report_pictures import froc_svg

    curve = {"fppi": [0.0] * 50 + [0.5] * 50 + [1.0, 2.0], "tpr": list(np.linspace(0, 0.5, 100)) + [0.6, 0.7]}
    points = [tuple(map(float, p.split(","))) for p in froc_svg([{"label": "x", "froc": curve}])["curves"][0]
              ["points"].split()]
    assert len(points) <= 9
    for a, b, c in zip(points, points[1:], points[2:]):  # no point in the middle of a straight run
        assert not (a[0] == b[0] == c[0] or a[1] == b[1] == c[1])
    assert points[0] == (56.0, 320.0) and points[-1][0] == 624.0 and points[-1][1] == pytest.approx(14 + 0.3 * 306,
                                                                                                    abs=0.1)
    assert froc_svg([{"label": "bad", "froc": {"fppi": "x"}}, {"label": "none"}])["curves"] == []


V1 = Path(__file__).parent / "data" / "bench-v1"  # a finished bench of two rows, stored (no overlays)


def test_a_bench_run_and_a_distill_run_in_one_report(made, tmp_path):
    run, _, _ = made
    bench = tmp_path / "bench"
    shutil.copytree(V1, bench)
    out, html, _ = report(tmp_path, bench, run)
    assert 'id="g0"' in html and 'id="d0"' in html and 'href="#g0"' in html and 'href="#d0"' in html
    assert "1 run in 1 configuration" in html and "1 <code>camkit distill</code> run" in html
    assert 'id="froc-svg-0"' in html and 'id="froc-svg-d0"' in html  # two charts, ids apart
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1).replace("<\\/", "</"))
    assert len(data["groups"]) == 1 and "tpr@1" in data["groups"][0]["leaderboards"]
    assert cell(html, "detector", "tpr@2").startswith("0.83") and "No stored overlays" in html
    assert len(re.findall(r'<img src="(assets/d0/[^"]+)"', html)) == 24
    # the same with the distill first: the sections keep their kinds
    _, again, _ = report(tmp_path, run, bench, name="rep2")
    assert again.index('id="g0"') < again.index('id="d0"') and cell(again, "oracle", "tpr@1").startswith("0.92")


@pytest.mark.slow  # trains a bench row (one epoch on 16 images)
def test_a_fresh_bench_run_and_a_distill_run_both_show_their_pictures(made, tmp_path):
    run, _, _ = made
    bench = tmp_path / "bench"
    res = CliRunner().invoke(main, ["bench", "--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=16",
                                    "--train-cam", "cam", "--test-cam", "cam", "--out", str(bench), "--quiet"])
    assert res.exit_code == 0, res.output
    out, html, _ = report(tmp_path, bench, run)
    bench_pictures = re.findall(r'<img src="(assets/g0/[^"]+)"', html)
    distill_pictures = re.findall(r'<img src="(assets/d0/[^"]+)"', html)
    assert len(bench_pictures) == 12 * 2 and len(distill_pictures) == 24  # 12 stored images x (image, cam)
    assert all((out / p).is_file() for p in bench_pictures + distill_pictures)


def test_a_real_distill_run(tmp_path):
    if not (REAL / "distill.json").is_file() or not (REAL / "predictions.json").is_file():
        pytest.skip(f"no real distill run at {REAL} (this machine's benchmark output)")
    run = tmp_path / "seed-0"
    run.mkdir()
    for name in ("distill.json", "predictions.json"):
        shutil.copy(REAL / name, run / name)
    doc = json.loads((run / "distill.json").read_text())
    out, html, _ = report(tmp_path, run)
    for role, metrics in doc["rows"].items():
        for m in METRICS:
            v, (lo, hi) = metrics[m]["value"], metrics[m]["ci"]
            assert cell(html, role, m).startswith(f"{v:.2f} [{lo:.2f}, {hi:.2f}]")
    assert f"<strong>{doc['gain']['value']:.2f}</strong>" in html
    assert f"<td>{doc['pseudo_boxes']['corloc']:.2f}</td>" in html
    assert len(re.findall(r'<polyline id="froc-\d-d0"', html)) == 3
    pictures = re.findall(r'<img src="(assets/d0/[^"]+)"', html)
    assert len(pictures) == 6 * 4 and all((out / p).is_file() for p in pictures)


BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.browser
@pytest.mark.skipif(BROWSER is None, reason="no headless browser (apt-get install chromium)")
def test_the_distill_section_in_a_real_browser(split, tmp_path):
    import subprocess

    run = make_run(tmp_path / "run", split, oracle=False, detector_options={"note": PAYLOAD})
    out, _, _ = report(tmp_path, run)
    page = out / "index.html"
    res = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + "#selftest"],
                         capture_output=True, text=True, timeout=120)
    shown = re.search(r'<pre id="selftest">(.*?)</pre>', res.stdout, re.S)
    assert shown, res.stderr[-2000:]
    assert json.loads(shown.group(1).replace("&quot;", '"'))["toggles"] == 1  # a distill curve's legend button
    assert re.search(r"<title>camkit report</title>", res.stdout)             # no payload ran
    errors = [x for x in res.stderr.splitlines() if "CONSOLE" in x and ("Uncaught" in x or "Error" in x)]
    assert not errors and "Content Security Policy" not in res.stderr, errors
