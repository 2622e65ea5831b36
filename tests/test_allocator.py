"""camkit.training.allocator: the camkit command's glibc settings, their opt-out, and that numbers do not move."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "from camkit.training.allocator import keep_freed_memory as k; print(k(), k())"


def _probe(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "CAMKIT_DEFAULT_MALLOC"}
    return subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, check=True, capture_output=True,
                          text=True).stdout.split()


@pytest.mark.slow  # three fresh processes (5 s)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_settings_apply_once_and_respect_the_opt_out_and_the_users_own():
    applied = _probe()
    assert applied[0] == applied[1] and applied[0] in ("True", "False")  # False on a non-glibc Linux (musl)
    assert _probe(CAMKIT_DEFAULT_MALLOC="1") == ["False", "False"]
    assert _probe(MALLOC_TRIM_THRESHOLD_="1000000") == ["False", "False"]


@pytest.mark.slow  # two fresh processes training a step each (8 s)
def test_a_train_step_is_the_same_with_and_without_them():
    """The settings only change where freed memory goes: a seeded step gives bit-identical weights."""
    code = ("import os, torch, camkit; from camkit.training.allocator import keep_freed_memory; "
            "os.environ.get('KEEP') and keep_freed_memory(); torch.manual_seed(0); "
            "m = camkit.create_model('gmic', preset='cpu').train(); "
            "opt = torch.optim.Adam(m.parameters(), lr=1e-3); x = torch.randn(4, 1, 256, 160); "
            "loss, _ = m.training_loss(x, torch.tensor([0, 1, 0, 1]), 0.5); loss.backward(); opt.step(); "
            "print(repr(float(sum(p.double().sum() for p in m.parameters()))))")
    base = {k: v for k, v in os.environ.items() if k not in ("KEEP", "CAMKIT_DEFAULT_MALLOC")}
    runs = [subprocess.run([sys.executable, "-c", code], env={**base, **env}, check=True, capture_output=True,
                           text=True).stdout.strip() for env in ({"KEEP": "1"}, {})]
    assert runs[0] == runs[1]
