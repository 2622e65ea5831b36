"""A Ctrl-C at *every* line boundary of a training step resumes to the uninterrupted run, bit for bit.

Issue 29: a Ctrl-C after the optimizer update and before the step was recorded saved step N with the weights
and Adam state of step N+1, and the resumed run applied that update twice, silently. These tests interrupt a
tiny CPU run (tests/train_toy.py: 4 steps of 2 micro-batches per epoch, 2 epochs, a periodic checkpoint every
2 steps) at each line event of the training loop's code within one step cycle (tests/fault_injection.py),
resume it in a fresh process state (another model's weights, fresh optimizer) and compare the end of the run
with an uninterrupted one: weights and buffers, Adam's state, the step count and the history, exactly.
"""
from __future__ import annotations

import hashlib
import signal
import threading
from pathlib import Path

import pytest
import torch
from fault_injection import TRAINING, LineInterrupter
from train_toy import ToyMasses, ToyNet

from camkit.cli.signals import Terminated, terminate_like_ctrl_c
from camkit.storage.checkpoint import read_checkpoint
from camkit.training import TrainConfig, train
from camkit.training.interrupts import DeferredInterrupts

CHECKPOINTER = str(Path(TRAINING) / "checkpointer.py")
TORCH_OPTIM = str(Path(torch.optim.__file__).parent)


@pytest.fixture(autouse=True)
def _one_thread_and_handlers():
    # 16x16 images: one thread is fastest; a test that fails half-way must not leave a handler behind
    n, handlers = torch.get_num_threads(), (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    torch.set_num_threads(1)
    # Ctrl-C as an interactive camkit has it: a shell starts background jobs (`pytest &`, nohup) with SIGINT
    # ignored, and Python then leaves it ignored, so a real SIGINT would do nothing here
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    torch.set_num_threads(n)
    signal.signal(signal.SIGINT, handlers[0])
    signal.signal(signal.SIGTERM, handlers[1])


def _cfg(out: Path) -> TrainConfig:
    return TrainConfig(epochs=2, batch_size=4, accumulate=2, checkpoint_every=2, seed=3, out_dir=str(out),
                       progress=False, device="cpu")


def _data() -> tuple[ToyMasses, ToyMasses]:
    return ToyMasses(32, seed=5), ToyMasses(16, seed=6)


def _scrambled() -> ToyNet:
    """ToyNet(seed=1)'s configuration with other weights: everything the resume needs must come from last.pt."""
    model = ToyNet(seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run's final last.pt."""
    out, threads = tmp_path_factory.mktemp("full"), torch.get_num_threads()
    torch.set_num_threads(1)  # as the trials (module fixtures set up before _one_thread): the same rounding
    try:
        train(ToyNet(seed=1), *_data(), _cfg(out))
    finally:
        torch.set_num_threads(threads)
    return read_checkpoint(out / "last.pt")


def _difference(full: dict, resumed: dict) -> str | None:
    """What differs between two final last.pt files (None: nothing that matters)."""
    if (full["epoch"], full["step"]) != (resumed["epoch"], resumed["step"]):
        return f"step {resumed['step']} != {full['step']}"
    tensors = [k for k in full["model"] if not torch.equal(full["model"][k], resumed["model"][k])]
    for i, (a, b) in enumerate(zip(full["optimizer"]["state"].values(), resumed["optimizer"]["state"].values())):
        tensors += [f"adam[{i}].{k}" for k in a if not torch.equal(a[k], b[k])]
    if tensors:
        return f"{len(tensors)} tensors differ ({', '.join(tensors[:4])})"
    keys = ("epoch", "step", "loss", "parts", "val_auc", "is_best")
    if [{k: r[k] for k in keys} for r in full["history"]] != [{k: r[k] for k in keys} for r in resumed["history"]]:
        return "history differs"
    if full["best"] != resumed["best"]:
        return "best differs"
    return None


def _resume_key(ckpt: dict) -> str:
    """A digest of what a resume from ``ckpt`` depends on (timings left out): equal digests resume alike."""
    state = dict(ckpt["state"], totals=None, sums={**ckpt["state"]["sums"], "seconds": None},
                 history=[{k: v for k, v in r.items() if k not in ("images_per_s", "train_seconds")}
                          for r in ckpt["state"]["history"]])
    digest = hashlib.sha256()

    def add(obj) -> None:
        if isinstance(obj, torch.Tensor):
            digest.update(f"T{obj.dtype}{tuple(obj.shape)}".encode())
            digest.update(obj.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if obj.numel() else b"")
        elif isinstance(obj, dict):
            for k in sorted(obj, key=str):
                digest.update(f"K{k!r}".encode())
                add(obj[k])
        elif isinstance(obj, (list, tuple)):
            digest.update(f"L{len(obj)}".encode())
            for v in obj:
                add(v)
        else:
            digest.update(f"V{obj!r}".encode())

    add([ckpt["model"], ckpt["optimizer"], ckpt["scaler"], ckpt["rng"], state])
    return digest.hexdigest()


def _interrupt_and_resume(out: Path, injector: LineInterrupter, reference: dict,
                          verified: dict[str, str | None]) -> str | None:
    """Run until the injector interrupts, resume to the end; what is wrong, or None. ``verified`` maps the
    :func:`_resume_key` of each last.pt already resumed to its outcome (many boundaries save the same one)."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        injector.run(train, ToyNet(seed=1), *_data(), _cfg(out))
    except KeyboardInterrupt:
        pass
    else:
        return "the run was not interrupted"
    finally:
        # CPython calls a with-block's __exit__ outside its exception range: an interrupt raised just before that
        # call skips it (torch.no_grad in validation): what the rest of this process must not inherit
        torch.set_grad_enabled(True)
        left = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) != before
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
    if left and injector.how == "signal":  # a raised one can skip any code, the handlers' restoring too
        return "a signal handler was left behind"
    last = out / "last.pt"
    saved = read_checkpoint(last) if last.is_file() else None
    step = saved["step"] if saved is not None else None
    # a signal is handled between steps: at most the step in flight is lost (before the first try: nothing)
    if injector.how == "signal" and step not in (injector.window, injector.window + 1):
        if not (step is None and injector.window == 0):
            return f"last.pt holds step {step}: work lost"
    key = _resume_key(saved) if saved is not None else "none"
    if key not in verified:  # a rerun: the same initial weights, overwritten by last.pt's where there is one
        train(_scrambled() if saved is not None else ToyNet(seed=1), *_data(), _cfg(out))
        verified[key] = _difference(reference, read_checkpoint(last))
    return verified[key]


def _every_boundary(tmp_path: Path, reference: dict, window: int, how: str, signums=(signal.SIGINT,),
                    **files) -> int:
    """Interrupt at each line boundary of ``window`` in turn; returns how many there were."""
    counter = LineInterrupter(window, **files)
    counter.run(train, ToyNet(seed=1), *_data(), _cfg(tmp_path / "count"))
    assert counter.count > 100, counter.count  # the window really covers a step
    failures, verified = [], {}
    for at in range(counter.count):
        injector = LineInterrupter(window, at, how, signum=signums[at % len(signums)], **files)
        problem = _interrupt_and_resume(tmp_path / f"at{at}", injector, reference, verified)
        if problem:
            failures.append(f"{at}: {injector.fired_at}: {problem}")
    assert not failures, f"{len(failures)} of {counter.count} boundaries:\n" + "\n".join(failures)
    return counter.count


# -- the deferral itself ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_the_block_is_raised_after_it_and_the_handlers_come_back(signum):
    terminate_like_ctrl_c()
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    done = []
    with pytest.raises(KeyboardInterrupt) as caught:
        with DeferredInterrupts():
            signal.raise_signal(signum)
            done.append("rest of the block")
    assert done == ["rest of the block"]
    assert isinstance(caught.value, Terminated) == (signum == signal.SIGTERM)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with DeferredInterrupts():  # nothing pending: nothing raised
        pass


def test_nested_blocks_defer_to_the_outermost_and_other_threads_are_left_alone():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with DeferredInterrupts():
            with DeferredInterrupts():
                signal.raise_signal(signal.SIGINT)
            done.append("outer block")
    assert done == ["outer block"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def in_a_thread() -> None:
        with DeferredInterrupts():
            done.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert done[-1] is signal.default_int_handler  # signal.signal works in the main thread only


# Windows (tests/fault_injection.py) are counted in reported steps: window 1 is a plain step (step 2 of epoch
# 1 from its data to its recording); window 2 adds the periodic checkpoint after step 2; window 4 is epoch 1's
# end (its buffers, validation, best.pt and last.pt) and then epoch 2's first step; window 0 the set-up.

def test_a_ctrl_c_at_every_line_of_a_step_resumes_exactly(tmp_path, reference):
    assert terminate_like_ctrl_c() is not None  # what camkit train / bench install: SIGTERM as Ctrl-C
    _every_boundary(tmp_path, reference, 1, "signal", (signal.SIGINT, signal.SIGTERM))


@pytest.mark.slow  # ~780 boundaries, 40 s: the fast loop keeps every boundary of a step
def test_a_ctrl_c_at_every_line_of_an_epoch_end_resumes_exactly(tmp_path, reference):
    # the writing of a checkpoint itself (atomic: tests/test_train.py) is left to the slow test below
    _every_boundary(tmp_path, reference, 4, "signal", exclude=(CHECKPOINTER,))


def test_an_interrupt_no_handler_sees_still_leaves_a_consistent_last_pt(tmp_path, reference):
    # KeyboardInterrupt raised straight into the loop at every line, even where a signal would wait: last.pt
    # may then be older (that step's work is redone) but it is never a mixture of two steps (issue 29)
    _every_boundary(tmp_path, reference, 1, "raise")


@pytest.mark.slow
@pytest.mark.parametrize("window", [0, 2, 4])
def test_a_ctrl_c_at_every_line_of_other_windows_resumes_exactly(tmp_path, reference, window):
    _every_boundary(tmp_path, reference, window, "signal")


@pytest.mark.slow
@pytest.mark.parametrize("window", [2, 4])
def test_an_interrupt_no_handler_sees_in_other_windows(tmp_path, reference, window):
    _every_boundary(tmp_path, reference, window, "raise")


@pytest.mark.slow
def test_a_ctrl_c_inside_adam_resumes_exactly(tmp_path, reference):
    # torch.optim's own Python lines too: the update is where a Ctrl-C used to cost a step or double it
    count = _every_boundary(tmp_path, reference, 1, "signal", roots=(TRAINING, TORCH_OPTIM))
    assert count > 300, count
