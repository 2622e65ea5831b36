"""The sample contract is checked where samples are used, not only by camkit.testing (issue 33): a dataset
whose samples lack a key is refused before training naming the split, the image and the key, and a batch
whose samples lack one is refused as it is read (a missing study_id used to make every image one study)."""
from __future__ import annotations

import pytest

from camkit.data.checks import SplitCheckError, check_splits, sample_problem
from camkit.errors import DataError


class Dropping:
    """The synthetic dataset with ``key`` removed from every sample (a third party's slip)."""

    def __init__(self, split: str, key: str, n: int = 6) -> None:
        from camkit.registry.api import create_dataset

        self.inner = create_dataset("synthetic", split=split, n=n, size=(64, 40), seed=0)
        self.key = key
        self.config = {"dropping": key}

    def __len__(self) -> int:
        return len(self.inner)

    def labels(self) -> list[int]:
        return self.inner.labels()

    def __getitem__(self, index: int):
        sample = dict(self.inner[index])
        sample.pop(self.key, None)
        return sample


@pytest.mark.parametrize("key", ["study_id", "laterality", "boxes", "transform"])
def test_a_split_whose_samples_lack_a_key_is_refused_before_training(key):
    sets = {"train": Dropping("train", key), "test": Dropping("test", key)}
    with pytest.raises(SplitCheckError) as exc:
        check_splits(sets, where="dataset 'stub'")
    text = str(exc.value)
    assert text.startswith("dataset 'stub', train split, index 0: the sample lacks") and repr(key) in text
    assert "camkit.protocols.Sample" in text


def test_a_missing_study_id_says_what_it_would_do_to_the_intervals():
    assert "intervals would be wrong" in sample_problem({k: None for k in ("image", "label")})


def test_the_sample_problems_that_are_named():
    from camkit.registry.api import create_dataset

    good = dict(create_dataset("synthetic", split="test", n=4, size=(64, 40), seed=0)[0])
    assert sample_problem(good) is None
    assert "study_id ''" in sample_problem({**good, "study_id": ""})
    assert "not (N, 4)" in sample_problem({**good, "boxes": [1, 2, 3]})
    assert "laterality 'left'" in sample_problem({**good, "laterality": "left"})
    assert "to_original" in sample_problem({**good, "transform": None})


def test_a_batch_whose_samples_lack_a_key_is_refused_as_it_is_read():
    from camkit.data.sample import collate
    from camkit.registry.api import create_dataset

    ds = create_dataset("synthetic", split="test", n=4, size=(64, 40), seed=0)
    samples = [dict(ds[i]) for i in range(2)]
    assert collate(samples)["study_id"] == [s["study_id"] for s in samples]
    del samples[1]["study_id"]
    with pytest.raises(DataError, match=r"lacks 'study_id'"):
        collate(samples)
    assert collate(samples, lists=())["image"].shape[0] == 2  # training needs images and labels only


def test_register_strictly_works_for_an_installed_plugin():
    """issue 33: the documented pattern failed for an installed package ("Plugin already registered under a
    different name"): the plugin is taken out for the block and put back after."""
    import camkit_synthetic.plugin as installed

    from camkit.registry.api import list_datasets
    from camkit.registry.host import get_host
    from camkit.testing import register_strictly

    host = get_host()
    assert host.pm.is_registered(installed) and "synthetic" in list_datasets()
    with register_strictly(installed, name="mine") as info:
        assert info.ok and "synthetic" in list_datasets() and host.pm.get_name(installed) == "mine"
    assert host.pm.get_name(installed) == "synthetic" and "synthetic" in list_datasets()
    assert host.plugins["synthetic"].ok
