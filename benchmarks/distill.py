"""The default `camkit distill` over several seeds: is the detector at least as good as its teacher's CAM boxes?

    python benchmarks/distill.py [--seeds 0-2] [--out camkit-runs/distill-seeds] [-- DISTILL OPTIONS ...]

Runs ``camkit distill`` (the teacher trained into OUT/models first when absent, as ``camkit bench`` would) once per
seed into OUT/seed-N (resumable: a finished seed is not run again, finished trainings are reused), then prints and writes OUT/distill.md and
OUT/distill.json: per seed, TPR@1FPPI of the three rows (cam-boxes, detector, oracle) with their intervals, CPM,
the weak-to-strong gain, the pseudo-boxes' CorLoc and the wall time of the distill proper (pseudo-boxes, two
detector trainings, scoring; the teacher's training is the bench's and is reported apart). Options after ``--``
go to every distill (a remedy: ``-- --boxes peaks --max-boxes 3``). The target of issue 30: the detector's
TPR@1FPPI at least the teacher's for every seed, each distill <= 10 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def fresh_seconds(doc: dict) -> float:
    """What the distill takes from scratch with its teacher in the store: its trainings' own seconds (stored in
    their checkpoints, so a run that reused them still knows) plus the rest of this run (pseudo-boxes,
    evaluation, scoring). The teacher's training is the bench's, and is left out."""
    t, trainings = doc["timings"], doc["training"].values()
    rest = t["total_s"] - sum(x["seconds"] for x in trainings if not x["reused"]) - \
        (0.0 if doc["teacher"]["reused"] else doc["teacher"]["seconds"])
    return sum(x["seconds"] for x in trainings) + rest


def main(argv: list[str] | None = None) -> int:
    from click.testing import CliRunner

    from camkit.bench.leaderboard import parse_seeds
    from camkit.cli import main as camkit
    from camkit.storage.atomic import atomic_write_json, atomic_write_text

    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-2")
    p.add_argument("--out", default="camkit-runs/distill-seeds")
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    out = Path(a.out)
    rows = []
    for seed in parse_seeds(a.seeds):
        run = out / f"seed-{seed}"
        if not (run / "distill.json").is_file():  # a finished seed is not run again
            res = CliRunner().invoke(camkit, ["distill", "--seed", str(seed), "--train-teacher", "--out", str(run),
                                              "--models", str(out / "models"), "--quiet", "--format", "json",
                                              *extra])
            if res.exit_code != 0:
                print(res.output, file=sys.stderr)
                return 1
        doc = json.loads((run / "distill.json").read_text())
        r, t = doc["rows"], doc["timings"]
        rows.append({"seed": seed, **{f"{row}": r[row]["tpr@1"] for row in r},
                     "cpm": {row: r[row]["cpm"]["value"] for row in r}, "gain": doc["gain"],
                     "corloc": doc["pseudo_boxes"]["corloc"], "distill_s": fresh_seconds(doc),
                     "teacher_s": doc["teacher"]["seconds"], "teacher_reused": doc["teacher"]["reused"]})
    atomic_write_json(out / "distill.json", {"options": extra, "seeds": rows})
    lines = ["| seed | cam-boxes TPR@1 | detector TPR@1 | oracle TPR@1 | gain | CPM (cam / det / oracle) | CorLoc | "
             "distill wall |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cell = {k: f"{row[k]['value']:.2f} [{row[k]['ci'][0]:.2f}, {row[k]['ci'][1]:.2f}]"
                for k in ("cam-boxes", "detector", "oracle") if k in row}
        g = row["gain"] or {}
        gain = f"{g['value']:.2f} [{g['ci'][0]:.2f}, {g['ci'][1]:.2f}]" if g.get("ci", [None])[0] is not None else "n/a"
        cpm = " / ".join(f"{row['cpm'][k]:.2f}" for k in ("cam-boxes", "detector", "oracle") if k in row["cpm"])
        lines.append(f"| {row['seed']} | {cell.get('cam-boxes', '')} | {cell.get('detector', '')} | "
                     f"{cell.get('oracle', 'n/a')} | {gain} | {cpm} | {row['corloc']:.2f} | "
                     f"{row['distill_s'] / 60:.1f} min |")
    ok = all(row["detector"]["value"] >= row["cam-boxes"]["value"] for row in rows)
    lines.append(f"\ndetector >= teacher at TPR@1FPPI for every seed: {'yes' if ok else 'NO'}")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "distill.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
