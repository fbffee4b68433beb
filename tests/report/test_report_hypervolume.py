"""Hypervolume in a normalised box: hand-computed values, the box's derivation and flag, and
agreement with Optuna's public hypervolume-history plot (the private function we call drifts → fail)."""
from __future__ import annotations

import numpy as np
import pytest

from archbench.report.hypervolume import Box, box_from_data, hypervolume, parse_bounds
from archbench.objectives import parse_objectives

ACC_MACS = parse_objectives("val_acc:max,macs:min")


def unit_box(n: int = 2) -> Box:
    names = tuple(f"o{i}" for i in range(n))
    return Box(names, ("min",) * n, ideal=(0.0,) * n, reference=(1.0,) * n)


def test_two_dimensional_value_by_hand():
    # Boxes [0.2,1]x[0.5,1] and [0.5,1]x[0.2,1]: 0.4 + 0.4 - overlap 0.25 = 0.55.
    assert hypervolume([[0.2, 0.5], [0.5, 0.2]], unit_box()) == pytest.approx(0.55)


def test_three_dimensional_value_by_hand():
    # 0.8·0.5·0.9 + 0.5·0.8·0.7 − (overlap at the pointwise max (.5,.5,.3)) 0.5·0.5·0.7
    expected = 0.36 + 0.28 - 0.175
    assert hypervolume([[0.2, 0.5, 0.1], [0.5, 0.2, 0.3]], unit_box(3)) == pytest.approx(expected)


def test_duplicates_dominated_points_and_points_beyond_the_reference_add_nothing():
    front = [[0.2, 0.5], [0.5, 0.2]]
    noisy = front + [[0.2, 0.5], [0.6, 0.6], [1.2, 0.0], [np.nan, 0.1]]
    assert hypervolume(noisy, unit_box()) == pytest.approx(hypervolume(front, unit_box()))
    assert hypervolume([[1.5, 2.0]], unit_box()) == 0.0
    assert hypervolume(np.zeros((0, 2)), unit_box()) == 0.0


def test_maximised_objectives_are_flipped_by_the_box():
    box = Box(("val_acc", "macs"), ("max", "min"), ideal=(1.0, 0.0), reference=(0.0, 4e9))
    # acc 0.8 → z 0.2; 1 GMACs → z 0.25: volume 0.8 · 0.75.
    assert hypervolume([[0.8, 1e9]], box) == pytest.approx(0.6)


def test_box_from_data_spans_best_to_worst_plus_margin():
    values = np.array([[0.9, 2e9], [0.7, 1e9], [np.nan, 5e9]])
    box = box_from_data(values, ACC_MACS)
    assert box.ideal == pytest.approx((0.9, 1e9))
    assert box.reference == pytest.approx((0.7 - 0.02, 2e9 + 0.1e9))
    assert box.source == "data"
    # The flag round-trips: the same box from text.
    again = parse_bounds(box.flag(), ACC_MACS, None)
    assert again.ideal == pytest.approx(box.ideal, rel=1e-5) and again.reference == pytest.approx(box.reference, rel=1e-5)


def test_box_from_data_with_a_single_point_still_has_volume():
    box = box_from_data(np.array([[0.8, 2e9]]), ACC_MACS)
    assert hypervolume([[0.8, 2e9]], box) == pytest.approx(1.0)


def test_parse_bounds_units_partial_override_and_errors():
    fallback = Box(("val_acc", "macs"), ("max", "min"), ideal=(0.9, 1e9), reference=(0.5, 3e9))
    box = parse_bounds("macs=0:6G", ACC_MACS, fallback)
    assert box.ideal == (0.9, 0.0) and box.reference == (0.5, 6e9) and box.source == "--hv-bounds"
    for text, message in [
        ("params=0:1", "not an objective"),
        ("macs=0", "NAME=IDEAL:REFERENCE"),
        ("macs=0:lots", "not a number"),
        ("macs=1G:1G", "equal"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_bounds(text, ACC_MACS, fallback)


def test_agrees_with_optunas_public_hypervolume_history():
    optuna = pytest.importorskip("optuna")
    from optuna.visualization.matplotlib import plot_hypervolume_history

    rng = np.random.default_rng(0)
    values = np.column_stack([rng.uniform(0.5, 0.95, 12), rng.uniform(1e9, 6e9, 12)])
    ideal, reference = (1.0, 0.0), (0.4, 7e9)
    box = Box(("val_acc", "macs"), ("max", "min"), ideal=ideal, reference=reference)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials([optuna.trial.create_trial(values=list(v), params={}, distributions={}) for v in values])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        ax = plot_hypervolume_history(study, reference_point=list(reference))
    raw = ax.lines[0].get_ydata()[-1]  # Optuna's volume in raw units: acc × MACs
    scale = (ideal[0] - reference[0]) * (reference[1] - ideal[1])
    assert hypervolume(values, box) == pytest.approx(raw / scale, rel=1e-9)
    import matplotlib.pyplot as plt

    plt.close("all")
