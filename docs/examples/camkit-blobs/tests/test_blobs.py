"""The example dataset meets camkit's contract, checked the way any plugin author would."""
import camkit
from camkit.testing import check_dataset


def test_blobs_meets_the_dataset_contract():
    for split in ("train", "val", "test"):
        check_dataset(camkit.create_dataset("blobs", split=split, size=(64, 48), seed=0, n=8))
