"""Every registered CAM method, model and dataset meets camkit's contracts (timm's style: the whole registry).

A built-in cannot ship without meeting them: a model registers small ``examples`` configurations and a dataset
an ``example`` that writes (or generates) a tiny instance, and both are checked here with camkit.testing.
"""
from __future__ import annotations

import pytest
import torch

import camkit
from camkit.registry.host import get_host
from camkit.testing import check_cam, check_dataset, check_model, register_strictly


def _entries(kind: str) -> list[str]:
    return sorted(e.name for e in get_host().registry.entries(kind))


@pytest.mark.parametrize("name", _entries("cam"))
def test_every_cam_meets_the_contract(name):
    check_cam(camkit.get_cam(name))


# GLAM's official example is the 512x512 model, one forward and backward: ~40 s on 2 cores, the fast loop's
# largest item; CI still runs it
_SLOW_MODELS = {"glam"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_MODELS else n
                                  for n in _entries("model")])
def test_every_model_meets_the_contract(name, one_thread):
    entry, _ = get_host().registry.get("model", name)
    examples = entry.meta.examples
    assert examples, f"model {name!r} registers no examples=(options, ...) for the contract tests"
    for options in examples:
        torch.manual_seed(0)
        check_model(camkit.create_model(name, **options))


@pytest.mark.parametrize("name", _entries("dataset"))
def test_every_dataset_meets_the_contract(name, tmp_path):
    entry, _ = get_host().registry.get("dataset", name)
    example = entry.meta.example
    assert callable(example), f"dataset {name!r} registers no example=callable(folder) for the contract tests"
    options = example(tmp_path)
    checked = 0
    for split in ("train", "val", "test"):
        dataset = camkit.create_dataset(name, split=split, size=(128, 80), seed=0, **options)
        if len(dataset):  # an example may leave a split empty
            check_dataset(dataset)
            checked += 1
    assert checked, f"dataset {name!r}'s example has no image in any split"


# -- the checks themselves catch what they promise to catch -------------------------------------------------
class _BadShapeCAM(camkit.CAMMethod):
    name = "badshape"
    needs_gradients = False

    def raw_map(self, ctx):
        return ctx.activations.mean(1)[:, :-1]  # one row short


class _NaNCAM(camkit.CAMMethod):
    name = "nan"
    needs_gradients = True

    def weights(self, ctx):
        return ctx.gradients.mean((2, 3)) * float("nan")


class _WrongWeights(camkit.CAMMethod):
    name = "wrongweights"
    needs_gradients = True

    def weights(self, ctx):
        return ctx.gradients.mean((1, 2, 3))  # (B,) instead of (B, K)


class _UnknownCost(camkit.CAMMethod):
    name = "unknowncost"
    needs_gradients = False
    cost = "cheap"

    def raw_map(self, ctx):
        return ctx.activations.mean(1)


@pytest.mark.parametrize("method, rule", [(_BadShapeCAM(), "keep the layer's resolution"),
                                          (_NaNCAM(), "NaN"), (_WrongWeights(), r"must be \(B, K\)"),
                                          (_UnknownCost(), "declare one of one-pass")])
def test_check_cam_names_the_rule_broken(method, rule):
    with pytest.raises(AssertionError, match=rule):
        check_cam(method)


def test_the_engine_names_a_method_whose_map_has_the_wrong_size():
    from camkit.errors import ContractError
    from camkit.testing import _TinyCAMNet

    with pytest.raises(ContractError, match=r"CAM method 'badshape' returned \(2, 15, 12\).*\(2, 16, 12\)"):
        camkit.cam_maps(_TinyCAMNet(), torch.randn(2, 1, 16, 12), [_BadShapeCAM()], ["features"], targets=0)
    with pytest.raises(ContractError, match=r"'wrongweights': weights\(\) returned \(2,\)"):
        camkit.cam_maps(_TinyCAMNet(), torch.randn(2, 1, 16, 12), [_WrongWeights()], ["features"], targets=0)


def test_check_dataset_names_the_sample_and_the_rule(tmp_path):
    good = camkit.create_dataset("synthetic", split="test", size=(64, 40), n=4)

    class Broken:
        config = good.config

        def __len__(self):
            return 4

        def labels(self):
            return good.labels()

        def __getitem__(self, i):
            s = dict(good[i])
            if i == 2:
                del s["transform"]
            return s

    with pytest.raises(AssertionError, match="sample 2: lacks the key 'transform'"):
        check_dataset(Broken())

    class FlatBoxes(Broken):
        def __getitem__(self, i):
            s = dict(good[i])
            s["boxes"] = s["boxes"].reshape(-1)
            return s

    with pytest.raises(AssertionError, match=r"boxes must be an \(N, 4\) tensor"):
        check_dataset(FlatBoxes())

    class NoConfig(Broken):
        config = None

    with pytest.raises(AssertionError, match="config is None"):
        check_dataset(NoConfig())


def test_check_model_names_a_missing_member():
    from train_toy import ToyNet

    model = ToyNet()
    check_model(model)
    del model.score_outputs
    with pytest.raises(AssertionError, match="lacks score_outputs"):
        check_model(model)


def test_register_strictly_raises_where_camkit_would_warn(fresh_plugins):
    from camkit.errors import RegistrationError

    class Collides:
        @camkit.hookimpl
        def register_cams(self, register):
            register("gradcam", object)

    with pytest.raises(RegistrationError, match="'gradcam' is registered by both camkit's built-in plugin"):
        with register_strictly(Collides(), name="collides"):
            pass
    assert "collides" not in get_host().plugins

    class Misspelled:
        @camkit.hookimpl
        def register_cam(self, register):
            pass

    with pytest.raises(RegistrationError, match="unknown hook"):
        with register_strictly(Misspelled(), name="typo"):
            pass

    class Fine:
        @camkit.hookimpl
        def register_cams(self, register):
            from camkit.cams.methods.gradcam import GradCAM

            register("gradcam-copy", GradCAM)

    with register_strictly(Fine(), name="fine"):
        assert "gradcam-copy" in camkit.list_cams()
    assert "gradcam-copy" not in camkit.list_cams()
