"""camkit.data.splits.hold_out stratified by label (a rare-positive dataset once got a test split without a
positive), its unlabelled draw kept bit for bit, the per-patient labels helper, missing_classes, and the two
datasets that carve splits with it (inbreast, cbis-ddsm)."""
from __future__ import annotations

import pytest

from camkit.data.splits import SplitError, group_labels, hold_out, missing_classes

NAMES = [f"p{i:02d}" for i in range(20)]


def rare(n: int = 40, positives: int = 4) -> dict[str, int]:
    """``n`` patients of which ``positives`` have a mass: the rare-positive case of the trial."""
    return {f"q{i:02d}": int(i < positives) for i in range(n)}


# -- without labels: exactly the old draw -------------------------------------------------------------------

@pytest.mark.parametrize("args,kw,want", [
    # computed with the unstratified hold_out before labels= existed; a change here moves every dataset's
    # split that does not pass labels (and silently reuses stored models trained on the old one)
    ((NAMES, 0.2, 0), {}, ["p00", "p04", "p13", "p15"]),
    ((NAMES, 0.25, 3), {"salt": 11}, ["p01", "p06", "p07", "p11", "p13"]),
    ((NAMES[:5], 0.5, 1), {"salt": 13}, ["p01", "p04"]),
    ((["a", "b"], 0.9, 2), {}, ["b"]),
    ((["x", "y", "z", "x"], 0.01, 4), {}, ["z"]),
])
def test_unlabelled_draw_is_unchanged(args, kw, want):
    assert sorted(hold_out(*args, **kw)) == want


def test_one_class_of_labels_is_the_unlabelled_draw():
    # one stratum holding every group draws exactly as without labels
    for seed in range(5):
        assert hold_out(NAMES, 0.3, seed, labels=dict.fromkeys(NAMES, 0)) == hold_out(NAMES, 0.3, seed)


# -- with labels ----------------------------------------------------------------------------------------------

def test_stratified_keeps_both_classes_where_the_plain_draw_does_not():
    labels = rare()
    plain_missed = 0
    for seed in range(200):
        held = hold_out(labels, 0.1, seed, labels=labels)
        kept = set(labels) - held
        assert {labels[g] for g in held} == {0, 1} and {labels[g] for g in kept} == {0, 1}, seed
        assert len(held) == 4                                          # round(0.1 * 40): 1 positive, 3 negatives
        plain_missed += not any(labels[g] for g in hold_out(labels, 0.1, seed))
    assert plain_missed > 50  # 4 of 40 drawn plainly miss the 4 positives about 64% of the time


def test_each_stratum_gets_its_share():
    labels = {**{f"n{i:03d}": 0 for i in range(90)}, **{f"m{i:02d}": 1 for i in range(10)}}
    held = hold_out(labels, 0.2, 7, labels=labels)
    assert sum(labels[g] for g in held) == 2 and len(held) == 20


def test_deterministic_for_seed_and_salt_and_disjoint_strata_draws():
    labels = rare(60, 12)
    a = hold_out(labels, 0.25, 3, salt=11, labels=labels)
    assert a == hold_out(list(reversed(list(labels))), 0.25, 3, salt=11, labels=labels)  # order of groups: moot
    assert a != hold_out(labels, 0.25, 3, salt=13, labels=labels)
    assert a != hold_out(labels, 0.25, 4, salt=11, labels=labels)


def test_nested_hold_outs_share_no_patient():
    labels = rare(50, 6)
    test = hold_out(labels, 0.2, 0, salt=11, labels=labels)
    rest = [g for g in labels if g not in test]
    val = hold_out(rest, 0.125, 0, salt=13, labels=labels)
    train = set(rest) - val
    assert not (test & val or test & train or val & train) and test | val | train == set(labels)
    for part in (test, val, train):
        assert missing_classes([labels[g] for g in part]) == []


@pytest.mark.parametrize("fraction,want", [(0.0, 0), (0.01, 2), (0.5, 20), (0.99, 38)])
def test_fraction_edges(fraction, want):
    labels = rare()
    held = hold_out(labels, fraction, 1, labels=labels)
    assert len(held) == want
    # never a whole stratum: the kept side has both classes whatever the fraction
    assert missing_classes([labels[g] for g in set(labels) - held]) == []
    if fraction:
        assert missing_classes([labels[g] for g in held]) == []  # at least one of each stratum of >= 2


def test_a_single_group_class_stays_on_the_kept_side():
    labels = {"a": 0, "b": 0, "c": 0, "d": 0, "e": 1}
    for seed in range(20):
        held = hold_out(labels, 0.4, seed, labels=labels)
        assert "e" not in held and len(held) == 2
    # every class a single group: nothing can be held out without emptying a class on the kept side
    assert hold_out({"a": 0, "b": 1}, 0.5, 0, labels={"a": 0, "b": 1}) == set()


def test_total_follows_the_fraction_unless_the_per_class_minimum_needs_more():
    labels = {**{f"n{i}": 0 for i in range(5)}, **{f"m{i}": 1 for i in range(5)}}
    assert len(hold_out(labels, 0.1, 0, labels=labels)) == 2        # round(1.0) = 1, but each class gives one
    assert len(hold_out(labels, 0.3, 0, labels=labels)) == 3  # 1.5 + 1.5: a tie, the lower label rounds up
    three = {**labels, **{f"k{i}": 2 for i in range(5)}}            # labels need not be 0/1
    held = hold_out(three, 0.2, 0, labels=three)
    assert len(held) == 3 and {three[g] for g in held} == {0, 1, 2}


def test_bad_fraction_and_unlabelled_group_are_errors():
    with pytest.raises(SplitError, match="test_fraction must be in"):
        hold_out(NAMES, 1.0, 0, what="test_fraction", labels=dict.fromkeys(NAMES, 0))
    with pytest.raises(SplitError, match=r"no label for 1 group\(s\): 'p19'"):
        hold_out(NAMES, 0.2, 0, labels=dict.fromkeys(NAMES[:-1], 0))


# -- helpers ----------------------------------------------------------------------------------------------------

def test_group_labels_is_the_max_over_a_groups_labelled_images():
    pairs = [("a", 0), ("a", 1), ("b", 0), ("b", None), ("c", None)]
    assert group_labels(pairs) == {"a": 1, "b": 0, "c": 0}


def test_missing_classes():
    assert missing_classes([0, 0, 1]) == []
    assert missing_classes([0, 0]) == [1]
    assert missing_classes([]) == [0, 1]
    assert missing_classes([1, 2], classes=(0, 1, 2)) == [0]


# -- the datasets that carve splits with it ----------------------------------------------------------------------

def _records(patients: int, positives: int, split: str | None = None, first: int = 0) -> list:
    """Two images per patient; a positive patient's second image is the mass, a third one is left out (None)."""
    from camkit.data.lesion_dataset import LesionRecord
    out = []
    for i in range(first, first + patients):
        for k, label in enumerate((0, int(i < first + positives), None)):
            out.append(LesionRecord(image_id=f"im{i:02d}-{k}", patient_id=f"P_{i:05d}", laterality="L", view="CC",
                                    label=label, files=(f"im{i:02d}-{k}.dcm",), split=split))
    return out


def test_inbreast_splits_each_have_a_mass_patient():
    from camkit_inbreast.dataset import split_patients
    records = _records(30, 3)
    for seed in range(30):
        of = split_patients(records, 0.2, 0.1, seed)
        for split in ("train", "val", "test"):
            assert missing_classes([int(r.label == 1) for r in records if of[r.patient_id] == split]) == [], seed
        assert sum(v == "test" for v in of.values()) == 6 and sum(v == "val" for v in of.values()) == 3


def test_cbis_val_has_a_mass_patient_and_test_stays_official():
    from camkit_cbis.dataset import select
    records = _records(30, 3, "train") + _records(4, 1, "test", first=100)
    for seed in range(30):
        val = select(records, "val", 0.1, seed)
        assert missing_classes(r.label for r in val) == [] and len({r.patient_id for r in val}) == 3
    assert len(select(records, "test", 0.1, 0)) == 8


@pytest.mark.parametrize("name", ["inbreast", "cbis-ddsm"])
def test_the_split_rule_is_in_the_config(tmp_path, name):
    # the model store reuses a model when the dataset's config is unchanged: the rule must be part of it
    import camkit
    from camkit_synthetic.export_cbis import write_cbis
    from camkit_synthetic.export_inbreast import write_inbreast
    written = write_inbreast(tmp_path, n=4) if name == "inbreast" else write_cbis(tmp_path, n=4)
    ds = camkit.create_dataset(name, root=str(written.root), split="train", size=(64, 40))
    assert ds.config["split_rule"] == "patients-stratified/1"
