"""A run folder that was killed, or whose files were damaged, is named in one line with the way out, and the
bench repairs what it can (issue 29: these were tracebacks, or a run that said "running" forever)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from camkit.bench import metric_table
from camkit.cli import main

V1 = Path(__file__).parent / "data" / "bench-v1"  # a finished bench of two rows (tests/test_results_document.py)


def _run(tmp_path: Path, status: str = "complete") -> Path:
    out = tmp_path / "run"
    shutil.copytree(V1, out)
    doc = json.loads((out / "results.json").read_text())
    doc["status"] = status
    (out / "results.json").write_text(json.dumps(doc))
    return out


def test_a_killed_run_is_named_as_such(tmp_path):
    out = _run(tmp_path, "running")  # SIGKILL leaves the document saying "running", and no live lock
    res = CliRunner().invoke(main, ["leaderboard", str(out)])
    assert res.exit_code == 0
    assert f"note: {out} was stopped without a word (killed, or its machine went down)" in res.stderr
    assert "re-run the same camkit bench (same --out) to finish it" in res.stderr


def test_a_run_another_process_holds_is_said_to_be_running(tmp_path):
    out = _run(tmp_path, "running")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / ".camkit.lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                       "since": "now"}))
        res = CliRunner().invoke(main, ["leaderboard", str(out)])
    finally:
        sleeper.kill()
    assert res.exit_code == 0 and "is still running (another camkit process holds it)" in res.stderr


def test_a_complete_run_gets_no_note(tmp_path):
    res = CliRunner().invoke(main, ["leaderboard", str(_run(tmp_path))])
    assert res.exit_code == 0 and "to finish it" not in res.stderr


def test_damaged_predictions_are_one_line_naming_the_file(tmp_path):
    out = _run(tmp_path)
    (out / "predictions" / "cam.json").write_text('{"images": [')   # a disk that filled mid-write
    res = CliRunner().invoke(main, ["leaderboard", str(out), "--alpha", "0.1"])  # another alpha: re-scored
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{out / 'predictions' / 'cam.json'} is damaged" in res.stderr
    assert "re-run the same camkit bench (same --out)" in res.stderr


def test_the_bench_evaluates_a_row_with_damaged_predictions_again(tmp_path):
    from tests.test_results_document import V1_ARGS, _numbers

    out = _run(tmp_path)
    before = _numbers(json.loads((V1 / "results.json").read_text()))
    (out / "predictions" / "cam.json").write_bytes(b"\x89PNG\r\n")
    res = CliRunner().invoke(main, ["bench", *V1_ARGS, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert list((out / "predictions").glob("cam.json.damaged-*")), "the damaged file is kept aside"
    json.loads((out / "predictions" / "cam.json").read_text())  # written again
    after = _numbers(json.loads((out / "results.json").read_text()))
    assert {k: after[k] for k in before} == before
    # the row evaluated again also carries what bench-v1 predates: the complexity family (tests/test_complexity.py)
    assert {k for k in after if k not in before} == {("cam", c, m) for c in ("cam", "gradcampp")
                                                     for m in metric_table.names("complexity")}


def test_damaged_overlays_cost_their_row_not_the_report(tmp_path):
    out = _run(tmp_path)
    (out / "overlays").mkdir()  # the fixture keeps no overlays; one damaged file is the case
    (out / "overlays" / "cam.npz").write_bytes(b"PK\x03\x04 truncated")
    res = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert f"report: {out / 'overlays' / 'cam.npz'} is damaged" in res.stderr
    assert "--redraw" in res.stderr and (tmp_path / "rep" / "index.html").is_file()

    from camkit.errors import CamkitError
    from camkit.ui.figures import overlay_from_file

    try:
        overlay_from_file(out / "overlays" / "cam.npz", tmp_path / "x.png")
    except CamkitError as exc:
        assert "cam.npz is damaged" in str(exc)
    else:
        raise AssertionError("a damaged overlays file was drawn")


def test_a_row_of_zeros_gets_no_best_mark():
    """issue 33: `**` (best overall) was printed on an all-zero row."""
    from camkit.bench.leaderboard import Run, detection_table
    from camkit.bench.results import load_results

    results = load_results(V1)
    for cells in results["detection"].values():  # nothing found anywhere
        for entry in cells.values():
            entry["tpr@1"]["value"], entry["tpr@1"]["ci"] = 0.0, [0.0, 0.0]
    table = detection_table([Run(V1, results)], "tpr@1")
    assert table["best_row"] == {} and table["best_all"] is None
    results["detection"]["xgradcam"]["gradcampp"]["tpr@1"]["value"] = 0.1
    table = detection_table([Run(V1, results)], "tpr@1")
    assert table["best_row"] == {"xgradcam": "gradcampp"} and table["best_all"] == ("xgradcam", "gradcampp")
