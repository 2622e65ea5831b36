"""The core training loop on a toy model (conv + BN + linear head) and a toy 16x16 dataset."""
from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from train_toy import CountingToyNet, ToyMasses, ToyNet

from camkit.data import augment
from camkit.training import batching
from camkit.storage.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from camkit.errors import CamkitError
from camkit.metrics import roc_auc
from camkit.training import TrainConfig, train


@pytest.fixture(autouse=True)
def _one_thread():
    # 16x16 images: thread start-up and spinning on a shared 2-core machine cost 10x the arithmetic
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def cfg(tmp_path: Path, name: str = "run", **kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=8, seed=3, out_dir=str(tmp_path / name), progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def data(n: int = 32, invert_val: bool = False):
    return ToyMasses(n, seed=5), ToyMasses(16, seed=6, invert=invert_val)


def fit(tmp_path: Path, name: str = "run", model: ToyNet | None = None, **kw):
    model = model or ToyNet(seed=1)
    tr, va = data()
    return model, train(model, tr, va, cfg(tmp_path, name, **kw))


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def scrambled() -> ToyNet:
    """Same configuration as ToyNet(seed=1), other weights: what resume must overwrite."""
    model = ToyNet(seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# -- learning and determinism -------------------------------------------------------------------------------------

def test_loss_decreases_and_model_learns(tmp_path):
    _, res = fit(tmp_path, epochs=4, batch_size=4)
    losses = [r["loss"] for r in res.history]
    assert len(losses) == 4 and res.complete and not res.reused
    assert losses[-1] < 0.8 * losses[0]
    assert res.history[-1]["val_auc"] > 0.8
    assert res.history[-1]["parts"]["bce"] == pytest.approx(losses[-1])
    assert res.images_per_s > 0 and res.seconds > 0


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    _, a = fit(tmp_path, "a")
    _, b = fit(tmp_path, "b")
    _, c = fit(tmp_path, "c", seed=4)
    assert_same(weights(a.last_checkpoint), weights(b.last_checkpoint))
    assert a.config_hash == b.config_hash != c.config_hash
    assert not torch.equal(weights(a.last_checkpoint)["head.weight"], weights(c.last_checkpoint)["head.weight"])


def test_progress_fraction_reaches_training_loss(tmp_path):
    model, _ = fit(tmp_path, batch_size=4, accumulate=2)  # 32 samples / 8 = 4 steps x 2 epochs, 2 micro each
    expected = [s / 8 for s in range(8) for _ in range(2)]
    assert model.progress_seen == pytest.approx(expected)


# -- resume -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stop_after", [4, 6], ids=["epoch-boundary", "mid-epoch"])
def test_resume_reproduces_uninterrupted_run(tmp_path, stop_after):
    _, full = fit(tmp_path, "full", batch_size=4, accumulate=2)
    _, part = fit(tmp_path, "split", batch_size=4, accumulate=2, max_steps=stop_after)
    assert not part.complete and part.step == stop_after
    assert read_checkpoint(part.last_checkpoint)["step"] == stop_after
    _, again = fit(tmp_path, "split", batch_size=4, accumulate=2, max_steps=stop_after)
    assert again.step == stop_after and not again.complete  # the same stop again adds nothing
    # a fresh model (other init) in a fresh loop: everything must come from last.pt
    _, resumed = fit(tmp_path, "split", model=scrambled(), batch_size=4, accumulate=2)
    assert resumed.complete and resumed.step == full.step
    a, b = read_checkpoint(full.last_checkpoint), read_checkpoint(resumed.last_checkpoint)
    assert_same(a["model"], b["model"])
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert_same(pa, pb)
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    assert [r["val_auc"] for r in a["history"]] == [r["val_auc"] for r in b["history"]]


class _InterruptAt:
    def __init__(self, step: int):
        self.step, self.steps_seen = step, 0

    def on_step(self, epoch, step, steps, loss, images_per_s):
        self.steps_seen += 1
        if self.steps_seen == self.step:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_resumable_state(tmp_path):
    # a model with Python-side state (a call counter that changes the loss) resumes through train_state()
    _, full = fit(tmp_path, "full", model=CountingToyNet(seed=1))
    tr, va = data()
    with pytest.raises(KeyboardInterrupt):
        train(CountingToyNet(seed=1), tr, va, cfg(tmp_path, "split"), progress=_InterruptAt(3))
    saved = read_checkpoint(tmp_path / "split" / "last.pt")
    assert (saved["epoch"], saved["epoch_step"], saved["step"]) == (0, 3, 3)
    assert saved["state"]["model_train_state"] == {"calls": 3}
    resumed_model = CountingToyNet(seed=1)
    resumed_model.load_state_dict(scrambled().state_dict())
    _, resumed = fit(tmp_path, "split", model=resumed_model)
    assert resumed_model.calls == 8
    assert_same(weights(full.last_checkpoint), weights(resumed.last_checkpoint))


def _interrupt_inside_forward(model: ToyNet, at: int) -> ToyNet:
    """Make ``model.training_loss`` raise KeyboardInterrupt on call ``at``, after its forward has run (and so
    after BatchNorm updated its running statistics and num_batches_tracked). The class stays ToyNet, so the
    configuration (and its hash) is the uninterrupted run's."""
    inner, calls = model.training_loss, []

    def training_loss(images, labels, progress):
        out = inner(images, labels, progress)
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt
        return out

    model.training_loss = training_loss
    return model


@pytest.mark.parametrize("at", [3, 6, 7, 12])  # first / second micro-batch of a step, an epoch's last step
def test_ctrl_c_inside_a_step_then_resume_equals_uninterrupted_buffers_included(tmp_path, at):
    kw = dict(batch_size=4, accumulate=2)
    _, full = fit(tmp_path, "full", **kw)
    tr, va = data()
    with pytest.raises(KeyboardInterrupt):
        train(_interrupt_inside_forward(ToyNet(seed=1), at), tr, va, cfg(tmp_path, "split", **kw))
    saved = read_checkpoint(tmp_path / "split" / "last.pt")
    assert saved["step"] == (at - 1) // 2  # the state after the last completed step
    _, resumed = fit(tmp_path, "split", model=scrambled(), **kw)
    a, b = weights(full.last_checkpoint), weights(resumed.last_checkpoint)
    assert int(a["features.1.num_batches_tracked"]) == int(b["features.1.num_batches_tracked"]) == 16
    assert_same(a, b)  # parameters and every buffer, bit for bit
    assert [r["val_auc"] for r in full.history] == [r["val_auc"] for r in resumed.history]


def test_complete_run_is_reused_and_other_config_refused(tmp_path):
    _, first = fit(tmp_path)
    model, again = fit(tmp_path, model=scrambled())
    assert again.reused and again.complete and again.history == first.history
    assert again.best_epoch == first.best_epoch
    assert_same({k: v for k, v in model.state_dict().items()}, weights(first.last_checkpoint))
    with pytest.raises(CheckpointError, match=r"last\.pt.*lr"):
        fit(tmp_path, lr=0.5)
    _, fresh = fit(tmp_path, lr=0.5, resume=False)
    assert not fresh.reused and fresh.history[0]["lr"] == 0.5


# -- validation and best checkpoint -------------------------------------------------------------------------------

def _auc_of(model: ToyNet, dataset) -> float:
    model.eval()
    samples = [dataset[i] for i in range(len(dataset))]
    with torch.no_grad():
        p = model.predict(model(torch.stack([s["image"] for s in samples])))
    return roc_auc([s["label"] for s in samples], p.numpy())


def test_best_checkpoint_is_the_epoch_with_highest_val_auc(tmp_path):
    tr, va = data(invert_val=True)  # learning the task makes the (inverted) validation AUC fall
    res = train(ToyNet(seed=1), tr, va, cfg(tmp_path, epochs=4, batch_size=4))
    aucs = [r["val_auc"] for r in res.history]
    assert res.best_epoch == 1 + int(np.argmax(aucs)) and res.best_val_auc == max(aucs)
    assert res.best_epoch < 4, aucs  # so best.pt and last.pt must differ
    best = load_checkpoint(res.best_checkpoint, fresh := ToyNet(seed=2))
    assert best["epoch"] == res.best_epoch and best["kind"] == "best" and "optimizer" not in best
    assert _auc_of(fresh, va) == pytest.approx(res.best_val_auc)
    assert not torch.equal(weights(res.best_checkpoint)["head.weight"], weights(res.last_checkpoint)["head.weight"])
    assert [r["is_best"] for r in res.history].count(True) >= 1


def test_without_validation_best_is_the_final_model(tmp_path):
    tr, _ = data()
    res = train(ToyNet(seed=1), tr, None, cfg(tmp_path))
    assert res.best_val_auc is None and res.best_epoch is None
    assert_same(weights(res.best_checkpoint), weights(res.last_checkpoint))


# -- checkpoints --------------------------------------------------------------------------------------------------

def test_checkpoints_load_weights_only_and_hold_the_state(tmp_path):
    _, res = fit(tmp_path)
    for path in (res.best_checkpoint, res.last_checkpoint):
        obj = torch.load(path, weights_only=True)
        assert obj["format"] == "camkit-checkpoint" and obj["config_hash"] == res.config_hash
        assert obj["model_config"] == ToyNet(seed=1).config
    last = torch.load(res.last_checkpoint, weights_only=True)
    assert last["epoch"] == 2 and last["step"] == 8 and last["config"]["batch_size"] == 8
    assert isinstance(last["rng"]["ranks"][0]["torch"], torch.Tensor)
    assert len(last["history"]) == 2 and "exp_avg" in next(iter(last["optimizer"]["state"].values()))
    assert (Path(res.last_checkpoint).parent / "history.json").is_file()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pt.*weights-only"):
        load_checkpoint(path, ToyNet())
    assert not (tmp_path / "pwned").exists()
    path.write_bytes(pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(CheckpointError, match="evil.pt"):
        read_checkpoint(path)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_plain_state_dict_loads_and_mismatch_is_named(tmp_path):
    src, dst = ToyNet(seed=1), ToyNet(seed=2)
    torch.save(src.state_dict(), tmp_path / "plain.pt")
    load_checkpoint(tmp_path / "plain.pt", dst)
    assert_same(src.state_dict(), dst.state_dict())
    torch.save(ToyNet(width=3).state_dict(), tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt.*ToyNet"):
        load_checkpoint(tmp_path / "other.pt", dst)


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 1}, path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind
    with pytest.raises(CheckpointError, match=r"\['bad'\].*set"):
        save_checkpoint({"bad": {1, 2}}, path)
    assert path.read_bytes() == before


# -- augmentation and data order ----------------------------------------------------------------------------------

def test_augmentation_depends_only_on_seed_epoch_and_index():
    a = [augment.draw_params(3, 1, i) for i in range(20)]
    assert a == [augment.draw_params(3, 1, i) for i in range(20)]
    assert a != [augment.draw_params(3, 2, i) for i in range(20)]
    assert 3 < sum(p.flip for p in a) < 17 and all(0.9 <= p.scale <= 1.0 for p in a)
    imgs = torch.randn(6, 1, 16, 16)
    draws = [augment.draw_params(3, 0, i) for i in range(6)]
    whole = augment.apply(imgs, draws)
    alone = torch.cat([augment.apply(imgs[i:i + 1], [draws[i]]) for i in range(6)])
    assert torch.equal(whole, alone)  # batch composition does not matter


def test_flip_is_exact_and_crop_is_crop_then_resize():
    img = torch.randn(1, 1, 16, 16)
    flipped = augment.apply(img, [augment.AugmentParams(True, 1.0, 0.0, 0.0)])
    assert torch.equal(flipped, img.flip(-1))
    assert torch.equal(augment.apply(img, [augment.AugmentParams(False, 1.0, 0.3, -0.2)]), img)
    top_left = augment.apply(img, [augment.AugmentParams(False, 0.5, -1.0, -1.0)])
    expected = torch.nn.functional.interpolate(img[..., :8, :8], size=(16, 16), mode="bilinear",
                                               align_corners=False)
    # the window's far edge interpolates with the real pixels beyond it, a crop-then-resize clamps: compare inside
    torch.testing.assert_close(top_left[..., :15, :15], expected[..., :15, :15])
    const = torch.full((1, 1, 16, 16), 2.5)
    torch.testing.assert_close(augment.apply(const, [augment.AugmentParams(True, 0.8, 0.5, 0.5)]), const)



def test_crop_grid_is_affine_grid_of_the_window():
    """The separable grid the crop samples with is torch's affine_grid for the window's diagonal theta."""
    draws = [augment.draw_params(5, 2, i) for i in range(8)] + [augment.AugmentParams(False, 0.5, -1.0, 1.0)]
    theta = torch.tensor([[[p.scale, 0.0, (1 - p.scale) * p.dx], [0.0, p.scale, (1 - p.scale) * p.dy]]
                          for p in draws])
    expected = torch.nn.functional.affine_grid(theta, [len(draws), 1, 24, 14], align_corners=False)
    got = augment._window_grid(draws, (24, 14), torch.device("cpu"), torch.float32)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)

def test_batches_are_the_same_sets_for_any_layout():
    one = batching.rank_micro_batches(50, 1, 0, 4, 2, 0, 1)
    two = [batching.rank_micro_batches(50, 1, 0, 4, 1, r, 2) for r in range(2)]
    assert len(one) == len(two[0]) == 50 // 8
    for s, micro in enumerate(one):
        assert micro == [two[0][s][0], two[1][s][0]]
    used = [i for step in one for mb in step for i in mb]
    assert len(set(used)) == len(used) == 48
    shards = [batching.validation_shard(7, r, 3) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(7))


# -- progress output and errors -----------------------------------------------------------------------------------

def test_progress_lines_when_not_a_tty_and_silent_when_off(tmp_path, capsys):
    fit(tmp_path, "quiet")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    fit(tmp_path, "loud", progress=True)
    err = capsys.readouterr().err
    assert "train: 2 epochs x 4 steps" in err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "img/s" in err and "val_auc" in err


def test_custom_progress_object_gets_the_calls(tmp_path):
    calls = []

    class Sink:
        def on_train_start(self, info):
            calls.append(("start", info["steps_per_epoch"]))

        def on_epoch_end(self, epoch, record):
            calls.append(("epoch", epoch, record["val_auc"] is not None))

    tr, va = data()
    train(ToyNet(seed=1), tr, va, cfg(tmp_path), progress=Sink())
    assert calls == [("start", 4), ("epoch", 1, True), ("epoch", 2, True)]


def test_bad_input_gets_clear_errors(tmp_path):
    tr, va = data()
    with pytest.raises(CamkitError, match="fewer than one global batch"):
        train(ToyNet(), ToyMasses(4), va, cfg(tmp_path, batch_size=8))
    with pytest.raises(CamkitError, match="amp must be one of"):
        train(ToyNet(), tr, va, cfg(tmp_path, amp="fp8"))
    with pytest.raises(CamkitError, match="does not follow the model contract: it lacks input_size.*training_loss"):
        train(torch.nn.Linear(2, 2), tr, va, cfg(tmp_path))
    with pytest.raises(CamkitError, match=r"model expects \(C, 16, 16\)"):
        train(ToyNet(), ToyMasses(16, size=12), None, cfg(tmp_path))


def test_bf16_autocast_runs_on_cpu_when_asked(tmp_path):
    _, res = fit(tmp_path, amp="bf16", channels_last=True, epochs=1)
    assert res.complete and math.isfinite(res.history[0]["loss"])
    assert read_checkpoint(res.last_checkpoint)["fingerprint"]["recipe"]["amp"] == "bf16"


def test_checkpoint_is_serialisable_in_memory(tmp_path):
    # what broadcast_from_main ships between ranks on resume must survive a round trip
    _, res = fit(tmp_path, epochs=1)
    buf = io.BytesIO()
    torch.save(read_checkpoint(res.last_checkpoint), buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["step"] == 4


def test_rich_progress_prints_epochs_and_can_share_a_display(tmp_path):
    from rich.console import Console
    from rich.progress import Progress

    from camkit.ui.progress import RichProgress

    buf = io.StringIO()
    tr, va = data()
    train(ToyNet(seed=1), tr, va, cfg(tmp_path, "own"), progress=RichProgress(stream=buf))
    assert "epoch 1/2" in buf.getvalue() and "epoch 2/2" in buf.getvalue()
    shared = Progress(console=Console(file=io.StringIO()))
    with shared:
        other = shared.add_task("bench", total=3)
        train(ToyNet(seed=1), tr, va, cfg(tmp_path, "shared"), progress=RichProgress(shared, "train cam"))
        assert [t.id for t in shared.tasks] == [other]  # its own task is gone, the host's stays


def test_weights_do_not_depend_on_dataloader_workers(tmp_path):
    _, a = fit(tmp_path, "w0", epochs=1)
    _, b = fit(tmp_path, "w2", epochs=1, num_workers=2)
    assert_same(weights(a.last_checkpoint), weights(b.last_checkpoint))
    assert a.config_hash == b.config_hash


def test_fresh_start_removes_a_stale_best_checkpoint(tmp_path):
    _, first = fit(tmp_path)
    _, second = fit(tmp_path, lr=0.5, resume=False, max_steps=1)  # stops before any validation
    assert second.best_checkpoint is None and not (tmp_path / "run" / "best.pt").exists()


def test_checkpoint_every_writes_mid_epoch_state(tmp_path):
    seen = []

    class Peek:
        def on_step(self, epoch, step, steps, loss, images_per_s):
            if epoch == 1 and step == 3:
                seen.append(read_checkpoint(tmp_path / "run" / "last.pt")["epoch_step"])

    tr, va = data()
    train(ToyNet(seed=1), tr, va, cfg(tmp_path, checkpoint_every=2), progress=Peek())
    assert seen == [2]


def test_cosine_schedule_sets_each_steps_lr_from_the_step_alone():
    from camkit.errors import OptionError
    from camkit.training.config import TrainConfig, scheduled_lr

    assert scheduled_lr(1e-3, "constant", 0.7) == 1e-3
    assert scheduled_lr(1e-3, "cosine", 0.0) == pytest.approx(1e-3)
    assert scheduled_lr(1e-3, "cosine", 0.5) == pytest.approx(5e-4)
    assert scheduled_lr(2.0, "cosine", 0.75) == pytest.approx(1.0 - 2 ** -0.5)
    with pytest.raises(OptionError, match="lr_schedule must be one of constant, cosine"):
        TrainConfig(lr_schedule="linear").check()


def test_cosine_schedule_resumes_exactly_and_is_logged(tmp_path):
    _, full = fit(tmp_path, "full", batch_size=4, lr_schedule="cosine")
    _, const = fit(tmp_path, "const", batch_size=4)
    assert full.config_hash != const.config_hash  # the schedule changes the weights: its own checkpoint
    lrs = [r["lr"] for r in full.history]
    assert lrs[0] > lrs[-1] > 0 and all(r["lr"] == const.history[0]["lr"] for r in const.history)
    fit(tmp_path, "split", batch_size=4, lr_schedule="cosine", max_steps=5)
    _, resumed = fit(tmp_path, "split", model=scrambled(), batch_size=4, lr_schedule="cosine")
    assert_same(weights(full.last_checkpoint), weights(resumed.last_checkpoint))


class _Unreadable(ToyMasses):
    """ToyMasses whose sample 3 fails to read, recorded the way a skip_bad dataset records it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped: list[tuple[str, str]] = []

    def __getitem__(self, i: int):
        if i == 3:
            from camkit.data.sample import skip_unreadable

            skip_unreadable(self.skipped, "toy3.png", OSError("truncated file"))
            return None
        return super().__getitem__(i)


@pytest.mark.filterwarnings("ignore:skipped toy3.png")
def test_an_image_skipped_in_a_dataloader_worker_is_reported_by_the_dataset(tmp_path):
    """A worker's copy of the dataset records the skip; the main process's dataset lists it after training
    (once, however many epochs read it), as it does without workers."""
    for workers in (0, 1):
        tr = _Unreadable(32, seed=5)
        train(ToyNet(seed=1), tr, ToyMasses(16, seed=6), cfg(tmp_path, f"w{workers}", num_workers=workers))
        assert tr.skipped == [("toy3.png", "truncated file")], workers
