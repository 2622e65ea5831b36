"""The default `camkit distill` over several seeds, and the noisy-label remedies beside it.

    python benchmarks/distill.py [--seeds 0-2] [--out camkit-runs/distill-seeds] [-- DISTILL OPTIONS ...]
    python benchmarks/distill.py --remedies [--seeds 0-2] [--out ...]
    python benchmarks/distill.py --out OUT2 --models OUT/models -- --oracle-epochs 4   # reuses OUT's trainings

Runs ``camkit distill`` (the teacher trained into OUT/models first when absent, as ``camkit bench`` would) once per
seed into OUT/seed-N (resumable: a finished seed is not run again, finished trainings are reused), then prints and
writes OUT/distill.md and OUT/distill.json: per seed, TPR@1FPPI of the three rows (cam-boxes, detector, oracle)
with their intervals, CPM, the weak-to-strong gain, the pseudo-boxes' CorLoc and the wall time of the distill
proper (pseudo-boxes, detector trainings, scoring; the teacher's training is the bench's and is reported apart).
Options after ``--`` go to every distill (a remedy: ``-- --boxes peaks --max-boxes 3``). The target of issue 30:
the detector's TPR@1FPPI at least the teacher's for every seed, each distill <= 10 minutes on 2 cores.

``--remedies`` runs every remedy of :data:`REMEDIES` over the seeds (the default into OUT/seed-N, each remedy
into OUT/remedy-K/seed-N, one model store: the teacher, the oracle and a self-training round's first detector are
trained once) and writes OUT/remedies.md: per remedy and seed, the detector's TPR@1FPPI and CPM, the CorLoc of
the labels it trained on, and the wall time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: the remedies measured for docs/distill.md: name -> camkit distill options
REMEDIES = {
    "default (1 box, threshold 0.5)": [],
    "peaks, 3 boxes": ["--boxes", "peaks", "--max-boxes", "3"],
    "teacher score >= 0.5": ["--min-score", "0.5"],
    "self-training, 1 round": ["--rounds", "1"],
}


def fresh_seconds(doc: dict) -> float:
    """What the distill takes from scratch with its teacher in the store: its trainings' own seconds (stored in
    their checkpoints, so a run that reused them still knows) plus the rest of this run (pseudo-boxes,
    evaluation, scoring). The teacher's training is the bench's, and is left out."""
    t, trainings = doc["timings"], doc["training"].values()
    rest = t["total_s"] - sum(x["seconds"] for x in trainings if not x["reused"]) - \
        (0.0 if doc["teacher"]["reused"] else doc["teacher"]["seconds"])
    return sum(x["seconds"] for x in trainings) + rest


def run_seeds(out: Path, models: Path, seeds: list[int], extra: list[str]) -> list[dict] | None:
    """Each seed's distill into OUT/seed-N (skipped when finished), and its row of figures; None on a failure
    (its output printed)."""
    from click.testing import CliRunner

    from camkit.cli import main as camkit

    rows = []
    for seed in seeds:
        run = out / f"seed-{seed}"
        if not (run / "distill.json").is_file():  # a finished seed is not run again
            res = CliRunner().invoke(camkit, ["distill", "--seed", str(seed), "--train-teacher", "--out", str(run),
                                              "--models", str(models), "--quiet", "--format", "json", *extra])
            if res.exit_code != 0:
                print(res.output, file=sys.stderr)
                return None
        doc = json.loads((run / "distill.json").read_text())
        r = doc["rows"]
        labels = doc["rounds"][-1]["pseudo_boxes"] if doc.get("rounds") else doc["pseudo_boxes"]
        rows.append({"seed": seed, **{f"{row}": r[row]["tpr@1"] for row in r},
                     "cpm": {row: r[row]["cpm"]["value"] for row in r}, "gain": doc["gain"],
                     "corloc": doc["pseudo_boxes"]["corloc"], "label_corloc": labels["corloc"],
                     "distill_s": fresh_seconds(doc), "teacher_s": doc["teacher"]["seconds"],
                     "teacher_reused": doc["teacher"]["reused"]})
    return rows


def _ci(v: dict) -> str:
    return f"{v['value']:.2f} [{v['ci'][0]:.2f}, {v['ci'][1]:.2f}]"


def seed_table(rows: list[dict]) -> str:
    lines = ["| seed | cam-boxes TPR@1 | detector TPR@1 | oracle TPR@1 | gain | CPM (cam / det / oracle) | CorLoc | "
             "distill wall |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cell = {k: _ci(row[k]) for k in ("cam-boxes", "detector", "oracle") if k in row}
        g = row["gain"] or {}
        gain = _ci(g) if g.get("ci", [None])[0] is not None else "n/a"
        cpm = " / ".join(f"{row['cpm'][k]:.2f}" for k in ("cam-boxes", "detector", "oracle") if k in row["cpm"])
        lines.append(f"| {row['seed']} | {cell.get('cam-boxes', '')} | {cell.get('detector', '')} | "
                     f"{cell.get('oracle', 'n/a')} | {gain} | {cpm} | {row['corloc']:.2f} | "
                     f"{row['distill_s'] / 60:.1f} min |")
    ok = all(row["detector"]["value"] >= row["cam-boxes"]["value"] for row in rows)
    lines.append(f"\ndetector >= teacher at TPR@1FPPI for every seed: {'yes' if ok else 'NO'}")
    return "\n".join(lines) + "\n"


def remedy_table(by_remedy: dict[str, list[dict]]) -> str:
    """Per remedy and seed: the teacher's and the detector's TPR@1FPPI, the detector's CPM, the CorLoc of the
    labels it trained on, the wall time; then each remedy's mean over the seeds."""
    lines = ["| remedy | seed | cam-boxes TPR@1 | detector TPR@1 | detector CPM | label CorLoc | distill wall |",
             "|---|---|---|---|---|---|---|"]
    means = []
    for name, rows in by_remedy.items():
        for row in rows:
            lines.append(f"| {name} | {row['seed']} | {_ci(row['cam-boxes'])} | {_ci(row['detector'])} | "
                         f"{row['cpm']['detector']:.2f} | {row['label_corloc']:.2f} | "
                         f"{row['distill_s'] / 60:.1f} min |")
        n = len(rows)
        means.append(f"| **{name}** | mean of {n} | {sum(r['cam-boxes']['value'] for r in rows) / n:.3f} | "
                     f"{sum(r['detector']['value'] for r in rows) / n:.3f} | "
                     f"{sum(r['cpm']['detector'] for r in rows) / n:.3f} | "
                     f"{sum(r['label_corloc'] for r in rows) / n:.2f} | "
                     f"{sum(r['distill_s'] for r in rows) / n / 60:.1f} min |")
    return "\n".join(lines + means) + "\n"


def main(argv: list[str] | None = None) -> int:
    from camkit.bench.leaderboard import parse_seeds
    from camkit.storage.atomic import atomic_write_json, atomic_write_text

    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-2")
    p.add_argument("--out", default="camkit-runs/distill-seeds")
    p.add_argument("--remedies", action="store_true", help="run every remedy of REMEDIES and write remedies.md")
    p.add_argument("--models", default=None, help="the model store [OUT/models]: share one to reuse its trainings")
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    out, seeds = Path(a.out), parse_seeds(a.seeds)
    models = Path(a.models) if a.models else out / "models"
    if a.remedies:
        by_remedy = {}
        for k, (name, options) in enumerate(REMEDIES.items()):
            folder = out if k == 0 else out / f"remedy-{k}"
            rows = run_seeds(folder, models, seeds, [*options, *extra])
            if rows is None:
                return 1
            by_remedy[name] = rows
            text = remedy_table(by_remedy)  # written after each remedy: a long run shows its progress
            atomic_write_json(out / "remedies.json", {"remedies": REMEDIES, "options": extra, "rows": by_remedy})
            atomic_write_text(out / "remedies.md", text)
        print(text)
        return 0
    rows = run_seeds(out, models, seeds, extra)
    if rows is None:
        return 1
    atomic_write_json(out / "distill.json", {"options": extra, "seeds": rows})
    text = seed_table(rows)
    atomic_write_text(out / "distill.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
