"""GMIC checkpoints: released-format state dicts load strictly; class-count changes; unsafe files refused."""
from __future__ import annotations

import pickle

import pytest
import torch

import camkit
from camkit.errors import CheckpointError
from camkit_gmic.checkpoint import load_into, read_state_dict
from camkit_gmic.model import CLASS_SPECIFIC_KEYS


class NotATensor:  # a custom class: unpickling it would run arbitrary code paths
    def __init__(self):
        self.payload = [1, 2, 3]


@pytest.fixture(scope="module")
def released_like(tmp_path_factory):
    """A file laid out like sample_model_N.p: the official state dict plus the unused shared_rep_filter."""
    torch.manual_seed(3)
    model = camkit.create_model("gmic", preset="official")
    state = {k: (v + torch.rand_like(v) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "sample_model_1.p"
    # legacy (pre-zip) serialisation, as the 2020 release files most likely use
    torch.save({**state, "shared_rep_filter.weight": torch.zeros(2, 256)}, path,
               _use_new_zipfile_serialization=False)
    return path, state


def test_released_layout_loads_strictly_through_the_factory(released_like):
    path, state = released_like
    model = camkit.create_model("gmic", preset="official", checkpoint=path)
    assert model.reinitialised == [] and model.config["checkpoint"] == str(path)
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_other_class_count_keeps_all_but_the_heads(released_like, caplog):
    path, state = released_like
    model = camkit.create_model("gmic", preset="official", num_classes=1)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level("WARNING"):
        reinit = load_into(model, path)
    assert sorted(reinit) == sorted(CLASS_SPECIFIC_KEYS) == sorted(model.reinitialised)
    assert "re-initialised" in caplog.text and "fusion_dnn.bias" in caplog.text
    loaded = model.state_dict()
    for k in loaded:
        expected = fresh[k] if k in reinit else state[k]
        assert torch.equal(loaded[k], expected), k
    assert loaded["fusion_dnn.weight"].shape == (1, 768)


def test_camkit_wrapped_and_ddp_checkpoints_load(tmp_path):
    model = camkit.create_model("gmic", preset="cpu")
    state = {f"module.{k}": v + 1 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = tmp_path / "run.pt"
    torch.save({"model": state, "step": 10, "config": {"preset": "cpu"}}, path)
    other = camkit.create_model("gmic", preset="cpu", checkpoint=path)
    assert torch.equal(other.ds_net.first_conv.weight, state["module.ds_net.first_conv.weight"])


def test_pickle_with_custom_object_is_refused(tmp_path):
    path = tmp_path / "evil.p"
    with open(path, "wb") as f:
        pickle.dump({"ds_net.first_conv.weight": NotATensor()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="evil.p") as err:
        read_state_dict(path)
    assert "weights_only" in str(err.value)
    path2 = tmp_path / "evil2.pt"
    torch.save({"weights": NotATensor()}, path2)  # a torch zip archive holding a custom class
    with pytest.raises(CheckpointError, match="evil2.pt"):
        camkit.create_model("gmic", preset="cpu", checkpoint=path2)


def test_text_file_and_non_state_dicts_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.txt"):
        read_state_dict(text)
    lst = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], lst)
    with pytest.raises(CheckpointError, match="list.pt.*not a state dict"):
        read_state_dict(lst)
    with pytest.raises(CheckpointError, match="missing.pt.*does not exist"):
        read_state_dict(tmp_path / "missing.pt")


def test_checkpoint_of_another_preset_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "cpu.pt"
    torch.save(camkit.create_model("gmic", preset="cpu").state_dict(), path)
    with pytest.raises(CheckpointError, match="cpu.pt.*(missing|shape)"):
        camkit.create_model("gmic", preset="cpu", global_widths=(8, 16, 48), checkpoint=path)
    with pytest.raises(CheckpointError, match="missing|unexpected"):
        camkit.create_model("gmic", preset="official", checkpoint=path)
