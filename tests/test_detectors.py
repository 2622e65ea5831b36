"""The detector kind (camkit distill's students and oracles): the registry, the contract, the built-ins, and
that each built-in really learns boxes (the oracle on trivially easy data reaches a near-perfect TPR)."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import camkit
from camkit.cli import main
from camkit.errors import ContractError, OptionError
from camkit.protocols import require_detector
from camkit.testing import check_detector

BUILTINS = ("fasterrcnn", "fcos", "retinanet")


def test_the_builtin_detectors_are_registered_and_listed():
    assert set(BUILTINS) <= set(camkit.list_detectors())
    assert camkit.list_detectors("f*") == ["fasterrcnn", "fcos"]
    res = CliRunner().invoke(main, ["list", "detectors", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert set(BUILTINS) <= set(rows) and rows["fcos"]["plugin"] == "torchvision-detectors"
    assert "backbone" in rows["fcos"]["options"] and "input_size" not in rows["fcos"]["options"]


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_follows_the_detector_contract(name):
    # score_threshold 0: an untrained detector then returns `detections` boxes, so their checks see boxes
    detector = camkit.create_detector(name, input_size=(64, 96), score_threshold=0.0, detections=7)
    require_detector(detector, "test")
    check_detector(detector)
    assert detector.input_size == (64, 96)
    with torch.no_grad():
        boxes, scores = detector.eval().detect(torch.randn(1, 1, 64, 96))[0]
    assert 0 < len(boxes) <= 7 and len(scores) == len(boxes)
    # the config rebuilds it: same options, same parameter shapes
    again = camkit.create_detector(name, **detector.config)
    assert again.config == detector.config
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in
                                                                   detector.state_dict().items()}


def test_the_frame_is_kept_neither_resized_nor_renormalised():
    detector = camkit.create_detector("fcos", input_size=(80, 48))
    transform = detector.net.transform
    image = torch.randn(1, 80, 48) * 3 + 5
    batch, _ = transform.eval()([image])
    assert batch.image_sizes == [(80, 48)]
    assert torch.equal(batch.tensors[0, :, :80, :48], image)


def test_unknown_options_and_names_are_one_clear_error():
    with pytest.raises(OptionError, match=r"detector 'fcos' has no option 'fpn_channel'.*fpn_channels"):
        camkit.create_detector("fcos", fpn_channel=64)
    with pytest.raises(OptionError, match=r"--detector-opt detections=0: detector 'retinanet' takes detections as "
                                          r"an integer >= 1"):
        camkit.create_detector("retinanet", detections=0)
    with pytest.raises(OptionError, match="multiple of 32"):
        camkit.create_detector("fcos", fpn_channels=48)
    with pytest.raises(KeyError, match="fcos"):
        camkit.create_detector("fcoss")


def test_the_contract_names_what_a_detector_lacks():
    with pytest.raises(ContractError, match="lacks input_size, config, detection_loss, detect"):
        require_detector(torch.nn.Linear(2, 2), "distill")
    detector = camkit.create_detector("fcos", input_size=(64, 64))
    with pytest.raises(ContractError, match=r"input_size \(64, 64\)"):
        detector.detect(torch.zeros(1, 1, 32, 32))


def test_weights_load_a_saved_state_dict_and_a_missing_file_is_one_line(tmp_path):
    torch.manual_seed(0)
    first = camkit.create_detector("retinanet", input_size=(64, 64))
    path = tmp_path / "det.pt"
    torch.save(first.state_dict(), path)
    torch.manual_seed(1)
    loaded = camkit.create_detector("retinanet", input_size=(64, 64), weights=str(path))
    assert loaded.config["weights"] == str(path)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(OptionError) as info:
        camkit.create_detector("fcos", input_size=(64, 64), weights=str(tmp_path / "none.pt"))
    assert "no such file" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(camkit.errors.CheckpointError, match="does not fit"):  # another detector's weights
        camkit.create_detector("fcos", input_size=(64, 64), weights=str(path))


# -- the oracle learns: bright squares on noise, exact boxes ------------------------------------------------------
def _squares(n: int, seed: int, size: tuple[int, int] = (128, 96)) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``n`` noise images with 0-2 bright squares each (sides 12-27 px) and their exact boxes."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    images = torch.randn(n, 1, h, w, generator=g) * 0.5
    boxes = []
    for i in range(n):
        found = []
        for _ in range(int(torch.randint(0, 3, (1,), generator=g))):
            s = int(torch.randint(12, 28, (1,), generator=g))
            y, x = (int(torch.randint(0, m - s, (1,), generator=g)) for m in (h, w))
            images[i, 0, y:y + s, x:x + s] += 2.5
            found.append([x, y, x + s, y + s])
        boxes.append(torch.tensor(found, dtype=torch.float32).reshape(-1, 4))
    return images, boxes


def _train_and_score(name: str, steps: int, lr: float, **options) -> float:
    """Train ``name`` with Adam on easy squares for ``steps`` batches of 8; its TPR at 1 FPPI on held-out ones."""
    from camkit.metrics import froc

    torch.manual_seed(0)
    detector = camkit.create_detector(name, input_size=(128, 96), **options)
    train_x, train_b = _squares(256, seed=0)
    test_x, test_b = _squares(32, seed=1)
    optimiser = torch.optim.Adam(detector.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    detector.train()
    for _ in range(steps):
        pick = torch.randint(0, len(train_x), (8,), generator=g).tolist()
        loss, _ = detector.detection_loss(train_x[pick], [{"boxes": train_b[i]} for i in pick])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    detector.eval()
    with torch.no_grad():
        found = detector.detect(test_x)
    result = froc(dict(enumerate(found)), dict(enumerate(test_b)), iou_threshold=0.3)
    assert result.n_lesions >= 20
    return result.tpr_at(1.0)


@pytest.mark.slow
@pytest.mark.parametrize("name, steps, lr", [("fcos", 90, 1e-3), ("retinanet", 90, 1e-3)])
def test_the_oracle_on_trivially_easy_data_reaches_near_perfect_tpr(name, steps, lr):
    assert _train_and_score(name, steps, lr) >= 0.9
