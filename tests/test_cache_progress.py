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
