"""The preprocessing cache reports progress through a sink the caller passes (camkit.data.cache.PrepareProgress);
the data layer draws no display of its own (issue 28)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch

from camkit.data.cache import LineProgress, Settings, prepare
from camkit.data.sample import BoxTransform


@dataclass(frozen=True)
class _Record:
    image_id: str

    def sources(self) -> tuple[str, ...]:
        return (f"{self.image_id}.txt",)

    def where(self) -> str:
        return self.image_id


def _prepare_fn(root: Path, record: _Record, settings: Settings):
    value = float((root / record.sources()[0]).read_text())
    return torch.full((1, *settings.size), value), BoxTransform(settings.size, settings.size), None


class _Sink:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start(self, total: int) -> None:
        self.calls.append(("start", total))

    def step(self, n: int = 1) -> None:
        self.calls.append(("step", n))

    def end(self, summary: str) -> None:
        self.calls.append(("end", summary))


def _root(tmp_path: Path, n: int) -> tuple[Path, list[_Record]]:
    root = tmp_path / "data"
    root.mkdir()
    for i in range(n):
        (root / f"im{i}.txt").write_text(str(i / n))
    return root, [_Record(f"im{i}") for i in range(n)]


def test_a_callers_sink_sees_every_image_and_a_second_run_reports_nothing(tmp_path):
    root, records = _root(tmp_path, 3)
    sink = _Sink()
    report = prepare(root, lambda bad: records, Settings(size=(8, 8)), _prepare_fn, tmp_path / "cache",
                     workers=1, progress=sink)
    assert report.written == 3
    assert sink.calls == [("start", 3), ("step", 1), ("step", 1), ("step", 1), ("end", "3 of 3 images written")]
    again = _Sink()
    assert prepare(root, lambda bad: records, Settings(size=(8, 8)), _prepare_fn, tmp_path / "cache",
                   workers=1, progress=again).reused == 3
    assert again.calls == []  # nothing to write: no round, nothing drawn


def test_plain_lines_and_silence(tmp_path, capsys):
    root, records = _root(tmp_path, 2)
    stream = io.StringIO()
    prepare(root, lambda bad: records, Settings(size=(8, 8)), _prepare_fn, tmp_path / "a", workers=1,
            progress=LineProgress(stream))
    assert "prepare: 2/2 images" in stream.getvalue()
    prepare(root, lambda bad: records, Settings(size=(8, 8)), _prepare_fn, tmp_path / "b", workers=1,
            progress=False)
    assert capsys.readouterr().err == ""


# -- the commands' sink: camkit.ui.progress.prepare_sink -------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_prepare_sink_is_a_bar_on_a_terminal_plain_lines_elsewhere_and_none_when_quiet():
    from camkit.ui.progress import PrepareBar, prepare_sink

    assert prepare_sink(False, _Terminal()) is None
    assert isinstance(prepare_sink(True, _Terminal()), PrepareBar)
    assert isinstance(prepare_sink(True, io.StringIO()), LineProgress)


def test_the_bar_follows_prepare_round_by_round(tmp_path):
    from camkit.ui.progress import PrepareBar

    root, records = _root(tmp_path, 3)
    calls: list[tuple] = []

    class Recording(PrepareBar):  # the real bar, with its calls recorded
        def start(self, total: int) -> None:
            calls.append(("start", total))
            super().start(total)

        def step(self, n: int = 1) -> None:
            calls.append(("step", n))
            super().step(n)

        def end(self, summary: str) -> None:
            calls.append(("end", summary))
            super().end(summary)

    screen = _Terminal()
    bar = Recording(screen)
    prepare(root, lambda bad: records, Settings(size=(8, 8)), _prepare_fn, tmp_path / "cache", workers=1,
            progress=bar)
    assert calls == [("start", 3), ("step", 1), ("step", 1), ("step", 1), ("end", "3 of 3 images written")]
    assert bar.progress is None  # the display is stopped at the end of the round
    assert "prepare" in screen.getvalue() and "3/3" in screen.getvalue()


def test_camkit_prepare_prints_progress_lines_when_not_on_a_terminal(tmp_path):
    from click.testing import CliRunner

    from camkit.cli import main

    runner = CliRunner()
    assert runner.invoke(main, ["synth", "--format", "inbreast", str(tmp_path / "i"), "--n", "2"]).exit_code == 0
    args = ["prepare", "inbreast", str(tmp_path / "i"), "--size", "64", "48", "--workers", "1", "--out"]
    res = runner.invoke(main, [*args, str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    lines = [x for x in res.stderr.splitlines() if x.startswith("prepare: ")]
    n = int(lines[-1].split()[1].split("/")[1])
    assert lines[-1].startswith(f"prepare: {n}/{n} images") and f"({n} written, 0 already there)" in res.stdout
    quiet = runner.invoke(main, [*args, str(tmp_path / "q"), "--quiet"])
    assert quiet.exit_code == 0 and "prepare: " not in quiet.output


def test_camkit_prepare_vindr_prints_progress_lines_too(tmp_path):
    from click.testing import CliRunner

    from camkit.cli import main

    runner = CliRunner()
    assert runner.invoke(main, ["synth", str(tmp_path / "v"), "--format", "vindr", "--n", "2", "--size", "128",
                                "96"]).exit_code == 0
    res = runner.invoke(main, ["prepare", "vindr", str(tmp_path / "v"), "--size", "64", "48", "--out",
                               str(tmp_path / "c"), "--workers", "1", "--val-fraction", "0"])
    assert res.exit_code == 0, res.output
    assert any(x.startswith("prepare: ") and " images (" in x for x in res.stderr.splitlines()), res.stderr
