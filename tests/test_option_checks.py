"""Option types and ranges are declared once and checked before any factory runs (issue 29).

Each bad value the hostile-user trial found gives one exact line, naming the option, the plugin and what it takes,
before a model trains; the declarations a third-party plugin writes (annotations, ``Range``, ``options=``) are
checked the same way.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from click.testing import CliRunner

import camkit
from camkit.cli import main
from camkit.cli.options import check_val_split
from camkit.errors import OptionError
from camkit.registry.meta import MetadataError, build_meta
from camkit.registry.options import (MAX_IMAGE_SIDE, ImageSize, Range, call_factory, check_options, describe_type,
                                     matches)

LIMIT = f"; {MAX_IMAGE_SIDE} pixels per side is camkit's limit: larger tensors cannot be allocated"


def one_line(args: list[str]) -> str:
    """Run ``camkit ARGS``: it must exit 1 with exactly one line, the error (no traceback)."""
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, (res.exit_code, res.output, res.exception)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0].removeprefix("Error: ")


def nothing_trained(tmp_path: Path) -> None:
    """No checkpoint anywhere under the test's folders: the refusal came before training."""
    assert not [p for p in tmp_path.rglob("*.pt")], sorted(tmp_path.rglob("*"))


def train(tmp_path: Path, *args: str) -> list[str]:
    return ["train", "--preset", "cpu", "--out", str(tmp_path / "out"), "--models", str(tmp_path / "models"),
            "--epochs", "1", "--max-steps", "1", "--quiet", *args]


CASES = [  # (camkit train arguments, the one line it gives)
    (["--dataset-opt", "n=-5"], "--dataset-opt n=-5: dataset 'synthetic' takes n as an integer >= 1 (got -5)"),
    (["--dataset-opt", "n=abc"], "--dataset-opt n=abc: dataset 'synthetic' takes n as an integer >= 1 (got abc)"),
    (["--dataset-opt", "n=2.5"], "--dataset-opt n=2.5: dataset 'synthetic' takes n as an integer >= 1 (got 2.5)"),
    (["--model-opt", "global_widths=abc"],
     "--model-opt global_widths=abc: model 'gmic' takes global_widths as a list of integers >= 1 (got abc)"),
    (["--model-opt", "input_size=[100000,100000]"],
     "--model-opt input_size=[100000, 100000]: model 'gmic' takes input_size as a list of 2 integers from 1 to "
     f"16384 (got [100000, 100000]){LIMIT}"),
    (["--model-opt", "crop_size=[48.5,48]"],
     "--model-opt crop_size=[48.5, 48]: model 'gmic' takes crop_size as a list of 2 integers from 1 to 16384 "
     "(got [48.5, 48])"),
    (["--train-cam", "fem", "--cam-opt", "fem.k=-3"],
     "--cam-opt fem.k=-3: CAM method 'fem' takes k as a number >= 0 (got -3)"),
    (["--val-split", "bogus"], "--val-split bogus: choose one of train, val, test, or none (no validation)"),
    (["--dataset", "vindr", "--data", "{tmp}/vindr", "--dataset-opt", "flip=sideways"],
     "--dataset-opt flip=sideways: dataset 'vindr' takes flip as true or false (got sideways)"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_train_refuses_a_bad_option_value_in_one_line_before_training(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert one_line(train(tmp_path, *args)) == message
    nothing_trained(tmp_path)


def test_bench_checks_option_values_while_planning(tmp_path):
    out = tmp_path / "run"
    base = ["bench", "--out", str(out), "--models", str(tmp_path / "models"), "--quiet", "--train-cam", "cam"]
    assert one_line([*base, "--dataset-opt", "n=-5"]) == CASES[0][1]
    assert one_line([*base, "--test-cam", "fem", "--cam-opt", "fem.k=-3"]) == CASES[6][1]
    assert one_line([*base, "--model-opt", "crop_size=[48.5,48]"]) == CASES[5][1]
    nothing_trained(tmp_path)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("mlflow"), reason="mlflow is not installed")
def test_a_log_uri_mlflow_cannot_take_is_one_line_before_training(tmp_path):
    message = ("--log-uri bogus://x: MLflow takes no 'bogus:' URI; give a folder, or a file:, sqlite:, http(s):, "
               "postgresql:, mysql: or databricks URI (e.g. sqlite:///runs/mlflow.db or http://localhost:5000)")
    assert one_line(train(tmp_path, "--log", "mlflow", "--log-uri", "bogus://x")) == message
    nothing_trained(tmp_path)


@pytest.mark.parametrize("uri", ["sqlite:///runs/mlflow.db", "file:///tmp/mlruns", "http://localhost:5000",
                                 "https://mlflow.example.org", "postgresql+psycopg2://u@host/db", "mysql://u@h/db",
                                 "databricks", "databricks://profile", "runs/mlruns", "/abs/mlruns", r"C:\runs"])
def test_every_uri_mlflow_takes_passes_without_contacting_it(uri):
    from camkit.training.tracking import check_log_uri

    check_log_uri(uri)  # nothing raised, nothing contacted (the hosts do not exist)


def test_val_split_is_checked_by_name():
    assert check_val_split("val") == "val" and check_val_split("None") is None
    with pytest.raises(OptionError) as exc:
        check_val_split("bogus")
    assert str(exc.value) == "--val-split bogus: choose one of train, val, test, or none (no validation)"


def test_the_python_api_checks_too():
    with pytest.raises(OptionError, match=r"^--dataset-opt n=0: dataset 'synthetic' takes n as an integer >= 1"):
        camkit.create_dataset("synthetic", split="test", n=0)
    with pytest.raises(OptionError, match=r"^--cam-opt scorecam.chunk=0: CAM method 'scorecam' takes chunk as an "
                                          r"integer >= 1 \(got 0\)$"):
        camkit.get_cam("scorecam", chunk=0)
    with pytest.raises(OptionError, match=r"--model-opt input_size=\[0, 10\]: model 'classifier' takes input_size"):
        camkit.create_model("classifier", preset="cpu", input_size=[0, 10])
    # good values, a None that leaves a field to the preset, numpy integers and lists for tuples all pass
    import numpy as np

    model = camkit.create_model("gmic", preset="cpu", input_size=[np.int64(256), 160], mass_class=None)
    assert model.input_size == (256, 160)
    assert camkit.get_cam("fem", k=0).k == 0.0


# -- the mechanism, as a third-party plugin uses it ---------------------------------------------------------------
@pytest.mark.parametrize("annotation, good, bad, words", [
    (int, [0, -3], [2.5, "3", True, None], "an integer"),
    (Annotated[int, Range(min=1)] | None, [1, None], [0, 1.0], "an integer >= 1"),
    (float, [1, 2.5], ["x", float("nan"), False], "a number"),
    (Annotated[float, Range(0, 1)], [0, 0.5, 1], [-0.1, 1.5], "a number from 0 to 1"),
    (bool, [True, False], [1, "yes"], "true or false"),
    (Literal["auto", "none"], ["auto"], ["sideways", 1], "one of auto, none"),
    (ImageSize, [(1, 2), [16384, 5]], [[16385, 5], [5], [5.0, 5], "5x5"], "a list of 2 integers from 1 to 16384"),
    (tuple[int, ...], [(), [1, 2, 3]], ["abc", [1, "a"]], "a list of integers"),
    (dict[str, Any], [{}, {"k": 3}], [[], "k=3"], "a mapping (a JSON object)"),
    (str | os.PathLike, ["x", Path("x")], [3], "a string or a path"),
])
def test_annotations_say_what_they_take(annotation, good, bad, words):
    assert describe_type(annotation) == words
    assert all(matches(annotation, v) for v in good), good
    assert not any(matches(annotation, v) for v in bad), bad


def test_what_camkit_does_not_understand_is_left_to_the_factory():
    class Mine:
        pass

    assert describe_type(Any) is None and describe_type(Mine) is None
    assert matches(Mine, "anything") and matches(Any, object())
    check_options("dataset 'x'", {"m": "anything"}, {"m": Mine})  # nothing raised


def test_a_third_party_factory_declares_types_by_annotation_and_registration():
    def create_blobs(split: str = "train", n: Annotated[int, Range(min=1, max=1000, why="keep it small")] = 8,
                     **extra: Any):
        return {"split": split, "n": n, **extra}

    declared = {"contrast": Annotated[float, Range(min=0)]}
    assert call_factory(create_blobs, "dataset 'blobs'", {"n": 3, "contrast": 2}, declared=declared)["n"] == 3
    with pytest.raises(OptionError) as exc:
        call_factory(create_blobs, "dataset 'blobs'", {"n": 5000}, declared=declared)
    assert str(exc.value) == ("--dataset-opt n=5000: dataset 'blobs' takes n as an integer from 1 to 1000 (got 5000); "
                              "keep it small")
    with pytest.raises(OptionError) as exc:
        call_factory(create_blobs, "dataset 'blobs'", {"contrast": -1}, declared=declared)
    assert str(exc.value) == "--dataset-opt contrast=-1: dataset 'blobs' takes contrast as a number >= 0 (got -1)"


def test_registration_options_take_names_or_a_mapping_of_types():
    meta = build_meta("model", {"options": {"depth": int}}, plugin="p", name="m")
    assert list(meta.options) == ["depth"] and meta.options["depth"] is int
    assert build_meta("dataset", {"options": ("a", "b")}, plugin="p", name="d").options == ("a", "b")
    with pytest.raises(MetadataError, match="options takes a sequence of option names, a mapping of option name"):
        build_meta("model", {"options": {1: int}}, plugin="p", name="m")


def test_the_folder_datasets_flip_is_one_of_its_modes():
    from camkit.errors import OptionError
    from camkit.registry.api import create_dataset

    with pytest.raises(OptionError) as exc:
        create_dataset("folder", split="train", csv="labels.csv", flip="sideways")
    assert str(exc.value) == ("--dataset-opt flip=sideways: dataset 'folder' takes flip as one of auto, laterality, "
                              "detect, none (got sideways)")
