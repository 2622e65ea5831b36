"""camkit report: the page of a tiny bench run, its numbers against results.json and `camkit leaderboard`, offline
assets, and (with Chromium installed) the page as a real browser renders and drives it."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from camkit.cli.app import main

ARTIFACTS = Path(os.environ.get("CAMKIT_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no headless browser: install one with `apt-get install "
                                   "chromium` (Debian/Ubuntu) to run the report's browser tests")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "run"
    res = CliRunner().invoke(main, ["bench", "--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=16",
                                    "--train-cam", "cam", "--train-cam", "xgradcam", "--test-cam", "cam",
                                    "--test-cam", "gradcampp", "--out", str(out), "--quiet", "--format", "json"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def page(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    res = CliRunner().invoke(main, ["report", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out / "index.html"


def _data(html: str) -> dict:
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


def test_page_numbers_are_the_runs_and_the_leaderboards(run, page):
    html = page.read_text()
    results = json.loads((run / "results.json").read_text())
    boards = _data(html)["groups"][0]["leaderboards"]
    assert {"tpr@1", "tpr@2", "best", "cpm", "maxboxacc", "pointing", "energy"} <= set(boards)
    for metric, board in boards.items():
        printed = json.loads(CliRunner().invoke(main, ["leaderboard", str(run), "--metric", metric, "--format",
                                                       "json"]).stdout)["detection"]
        assert len(board["records"]) == len(printed) == 4
        for rec, cli in zip(board["records"], printed):
            assert (rec["row"], rec["test_cam"], rec["value"], rec["best_in_row"], rec["best_overall"],
                    rec["significant"]) == (cli["row"], cli["test_cam"], cli["value"], cli["best_in_row"],
                                            cli["best_overall"], cli["significant"])
            stored = results["detection"][rec["row"]][rec["test_cam"]][metric]
            assert rec["value"] == (stored["tpr"] if metric == "best" else stored["value"])
    # the classification table is text in the page, from results.json
    acc = results["classification"]["cam"]["accuracy"]["value"]
    assert f"{acc:.2f}" in html and "FROC curves" in html and "Paired comparisons" in html


def test_the_page_opens_on_the_leaderboards_default_metric(run, page):
    """`camkit bench`, `camkit leaderboard` and the report take their default metric from one constant."""
    from camkit.bench.metric_table import DEFAULT_METRIC
    from camkit.cli.bench import bench, leaderboard

    assert DEFAULT_METRIC == "tpr@1"
    for command in (bench, leaderboard):
        assert next(p.default for p in command.params if p.name == "metric") == DEFAULT_METRIC, command.name
    html = page.read_text()
    assert re.findall(r'<option value="([^"]+)" selected>', html) == [DEFAULT_METRIC]
    printed = json.loads(CliRunner().invoke(main, ["leaderboard", str(run), "--format", "json"]).stdout)
    assert printed["metric"] == DEFAULT_METRIC
    # the options keep the leaderboard's order (tpr@0.5 first): only the selection moved
    assert re.findall(r'<option value="([^"]+)"', html)[:2] == ["tpr@0.5", "tpr@1"]


def test_opening_metric_falls_back_to_the_first_board():
    from camkit.ui.report import _opening_metric

    assert _opening_metric({"tpr@0.5": {}, "tpr@1": {}, "cpm": {}}) == "tpr@1"
    assert _opening_metric({"cpm": {}, "pointing": {}}) == "cpm"      # runs that hold no tpr@1
    assert _opening_metric({}) is None


def test_assets_are_local_and_single_file_inlines_them(run, page, tmp_path):
    html = page.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)       # no request leaves the page
    assert (page.parent / "assets" / "report.js").is_file() and (page.parent / "assets" / "report.css").is_file()
    pictures = re.findall(r'<img src="([^"]+)"', html)
    assert len(pictures) == 2 * 12 * 3 and all((page.parent / p).is_file() for p in pictures)  # rows x images x panels
    res = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "one"), "--single-file"])
    assert res.exit_code == 0, res.output
    one = (tmp_path / "one" / "index.html").read_text()
    assert not (tmp_path / "one" / "assets").exists()
    assert 'src="assets/' not in one and 'href="assets/' not in one and one.count('src="data:image/png;base64,') == 72
    assert "<style>" in one and "camkitReport" in one


@pytest.mark.slow  # a second bench
def test_several_seeds_and_configurations(run, tmp_path):
    other = tmp_path / "other"
    res = CliRunner().invoke(main, ["bench", "--epochs", "1", "--batch-size", "8", "--dataset-opt", "n=16",
                                    "--train-cam", "cam", "--test-cam", "cam", "--box-threshold", "0.6",
                                    "--out", str(other), "--quiet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["report", str(run), str(other), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "Configuration 1: box_threshold=" in html and "Configuration 2" in html
    assert len(_data(html)["groups"]) == 2


def test_missing_run_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["report", str(tmp_path), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "results.json" in res.output


def _browser(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--enable-logging=stderr", "--v=0", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.browser  # -m browser runs it, -m "not browser" leaves it out
@needs_browser
def test_in_a_real_browser(run, page):
    html = page.read_text()
    res = _browser("--virtual-time-budget=5000", "--dump-dom", page.as_uri() + "#selftest")
    dom = res.stdout
    found = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
    assert found, f"the page's self-check did not run:\n{res.stderr[-2000:]}"
    shown = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                       .replace("&gt;", ">"))
    boards = _data(html)["groups"][0]["leaderboards"]
    # the page opens on camkit leaderboard's default metric, and draws its table
    from camkit.bench.metric_table import DEFAULT_METRIC
    assert shown["opened"]["0"]["metric"] == DEFAULT_METRIC
    assert shown["opened"]["0"]["caption"].startswith(boards[DEFAULT_METRIC]["title"])
    per_metric = shown["leaderboards"]["0"]
    assert set(per_metric) == set(boards)
    for metric, board in boards.items():
        for rec in board["records"]:
            cell = per_metric[metric][f"{rec['row']} {rec['test_cam']}"]
            assert cell.startswith(rec["text"]), (metric, cell, rec["text"])   # the rendered cell is the record
    texts = {m: tuple(sorted(cells.values())) for m, cells in per_metric.items()}
    assert len(set(texts.values())) > 1                                       # switching the metric changes them
    gallery = shown["gallery"]["0"]
    assert gallery["any"] == 12                                               # 8 mass + 4 normal images stored
    assert gallery["hit"] + gallery["miss"] >= 1 and all(v <= 12 for v in gallery.values())
    assert shown["toggles"] == 1                                              # a legend button hides its curve
    errors = [line for line in res.stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
    assert not errors, errors
    assert "Content Security Policy" not in res.stderr   # the page's policy blocks nothing of its own
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    _browser("--window-size=1280,2000", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 20_000


def test_missing_overlays_are_redrawn_from_the_checkpoints(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.copytree(run.parent / "models", tmp_path / "models")  # the checkpoints results.json points at
    stored = {p.name: p.stat().st_size for p in (copy / "overlays").glob("*.npz")}
    shutil.rmtree(copy / "overlays")
    res = CliRunner().invoke(main, ["report", str(copy), "--out", str(tmp_path / "no")])  # runs no model unasked
    assert res.exit_code == 0 and "No stored overlays" in (tmp_path / "no" / "index.html").read_text()
    assert "checkpoint" not in res.stderr and not (copy / "overlays").exists()
    res = CliRunner().invoke(main, ["report", str(copy), "--out", str(tmp_path / "rep"), "--redraw"])
    assert res.exit_code == 0, res.output
    assert "drawing them from its checkpoint" in res.stderr
    assert {p.name for p in (copy / "overlays").glob("*.npz")} == set(stored)
    import numpy as np

    for name in stored:  # the same images and maps as the bench drew
        with np.load(run / "overlays" / name) as a, np.load(copy / "overlays" / name) as b:
            assert list(a["image_id"]) == list(b["image_id"])
            assert np.allclose(a["map_cam"].astype(float), b["map_cam"].astype(float), atol=2e-3)
    assert len(re.findall(r'<img src="', (tmp_path / "rep" / "index.html").read_text())) == 72


@pytest.mark.slow  # runs the models on more test images (6 s)
def test_a_larger_gallery_is_drawn_from_the_checkpoints_once(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.copytree(run.parent / "models", tmp_path / "models")
    res = CliRunner().invoke(main, ["report", str(copy), "--out", str(tmp_path / "rep"), "--gallery", "15"])
    assert res.exit_code == 0, res.output
    assert res.stderr.count("drawing 15 test images") == 2                # once per train-cam
    html = (tmp_path / "rep" / "index.html").read_text()
    assert html.count('class="gal-image"') == 2 * 13                       # 10 masses asked, 8 exist; + 5 normals
    import numpy as np

    with np.load(copy / "overlays" / "cam-gallery-15.npz") as z:
        assert (z["label"] == 1).sum() == 8 and (z["label"] == 0).sum() == 5
    again = CliRunner().invoke(main, ["report", str(copy), "--out", str(tmp_path / "rep2"), "--gallery", "15"])
    assert again.exit_code == 0 and "drawing" not in again.stderr           # kept in the run, reused


# -- hostile values: nothing handed to the page runs (issue 29) ---------------------------------------------
MARK = "PWNED"
PAYLOADS = {  # each sets the page's title if it ever runs
    "img": f"<img src=x onerror=\"document.title='{MARK}'\">",
    "script": f"</script><script>document.title='{MARK}'</script>",
    "svg": f"<svg onload=\"document.title='{MARK}'\"></svg>",
}


def _hostile_run(run: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run, in a folder whose name is a payload, with payloads in every free-text field the
    page shows: warnings, the dataset's name, the environment, the git commit, the creation time and the
    gallery's image ids (a third party's folder CSV chooses those)."""
    import numpy as np

    copy = tmp_path / ("run" + PAYLOADS["img"].replace("/", ""))
    shutil.copytree(run, copy)
    shutil.copytree(run.parent / "models", tmp_path / "models")
    doc = json.loads((copy / "results.json").read_text())
    doc["warnings"] = [PAYLOADS["img"], PAYLOADS["script"]]
    doc.setdefault("dataset", {})["name"] = PAYLOADS["svg"]
    doc.setdefault("environment", {})["python"] = PAYLOADS["script"]
    doc["git"] = {"commit": PAYLOADS["img"], "dirty": False}
    doc["created"] = PAYLOADS["svg"]
    (copy / "results.json").write_text(json.dumps(doc))
    for npz in (copy / "overlays").glob("*.npz"):
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["image_id"] = np.array([f"{PAYLOADS['script']}{i}" for i in range(len(arrays["image_id"]))])
        np.savez(npz, **arrays)
    return copy


@pytest.mark.parametrize("single_file", [False, True])
def test_hostile_values_are_escaped_and_the_page_forbids_inline_script(run, tmp_path, single_file):
    from camkit.ui.report import content_security_policy

    hostile = _hostile_run(run, tmp_path)
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["report", str(hostile), "--out", str(out), "--no-redraw",
                                    *(["--single-file"] if single_file else [])])
    assert res.exit_code == 0, res.output
    html = (out / "index.html").read_text()
    page = re.sub(r'<script type="application/json" id="report-data">.*?</script>', "", html, flags=re.S)
    for payload in PAYLOADS.values():
        assert payload not in page                       # no value goes in raw ...
    assert "&lt;img src=x onerror=" in page and "&lt;/script&gt;&lt;script&gt;" in page  # ... it is shown as text
    assert len(re.findall(r"<script", page)) == 1        # the report's own script, nothing else
    css = (Path(__file__).resolve().parents[1] / "camkit" / "ui" / "report_assets" / "report.css").read_text()
    js = (Path(__file__).resolve().parents[1] / "camkit" / "ui" / "report_assets" / "report.js").read_text()
    csp = content_security_policy(single_file, css, js)
    assert f'<meta http-equiv="Content-Security-Policy" content="{csp.replace(chr(39), "&#39;")}">' in html
    assert "'unsafe-inline'" not in csp and "default-src 'none'" in csp
    if single_file:  # the inline script and style are allowed by their hashes, nothing else
        import base64
        import hashlib

        inline = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
        assert f"'sha256-{base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()}'" in csp


@pytest.mark.browser
@needs_browser
@pytest.mark.parametrize("single_file", [False, True])
def test_hostile_values_do_not_run_in_a_real_browser(run, tmp_path, single_file):
    """In Chromium: the page still works (its self-check runs under the policy) and no payload runs; the same
    payloads in a page without escaping and policy do run (the check can fail)."""
    import jinja2

    hostile = _hostile_run(run, tmp_path)
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["report", str(hostile), "--out", str(out), "--no-redraw",
                                    *(["--single-file"] if single_file else [])])
    assert res.exit_code == 0, res.output
    page = out / "index.html"
    shown = _browser("--virtual-time-budget=5000", "--dump-dom", page.as_uri() + "#selftest")
    title = re.search(r"<title>(.*?)</title>", shown.stdout, re.S)
    assert title and title.group(1) == "camkit report", shown.stdout[:500]
    assert re.search(r'<pre id="selftest">', shown.stdout), shown.stderr[-2000:]  # the report's own script ran
    # control: the payload, put in raw as the report did before, runs in this browser
    raw = tmp_path / "raw.html"
    raw.write_text(jinja2.Template("<html><head><title>t</title></head><body><p>{{ v }}</p></body></html>",
                                   autoescape=False).render(v=PAYLOADS["img"]))
    control = _browser("--virtual-time-budget=3000", "--dump-dom", raw.as_uri())
    assert f"<title>{MARK}</title>" in control.stdout


def test_a_folder_camkit_report_did_not_write_is_refused(run, tmp_path):
    """--out pointing at someone's folder: refused in one line, nothing in it touched; --force writes into it;
    a report's own folder is rewritten without asking."""
    mine = tmp_path / "photos"
    (mine / "assets").mkdir(parents=True)
    (mine / "assets" / "holiday.png").write_bytes(b"\x89PNG keep me")
    (mine / "index.html").write_text("<html>my own page</html>")
    res = CliRunner().invoke(main, ["report", str(run), "--out", str(mine), "--no-redraw"])
    assert res.exit_code == 1 and "camkit report did not write" in res.output and "--force" in res.output
    assert (mine / "assets" / "holiday.png").read_bytes() == b"\x89PNG keep me"
    assert (mine / "index.html").read_text() == "<html>my own page</html>"
    res = CliRunner().invoke(main, ["report", str(run), "--out", str(mine), "--no-redraw", "--force"])
    assert res.exit_code == 0, res.output
    assert "camkit benchmark report" in (mine / "index.html").read_text()
    again = CliRunner().invoke(main, ["report", str(run), "--out", str(mine), "--no-redraw", "--single-file"])
    assert again.exit_code == 0, again.output                # its own report now: rewritten
    old = tmp_path / "old-report"                             # a report from before the marker file
    (old / "assets").mkdir(parents=True)
    (old / "index.html").write_text("<title>camkit report</title><h1>camkit benchmark report</h1>")
    assert CliRunner().invoke(main, ["report", str(run), "--out", str(old), "--no-redraw"]).exit_code == 0
