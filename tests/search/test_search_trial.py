"""A trial's zero-cost step and the record made from its report, without Ray: scores as columns,
a failure to score as data (None and the reason) rather than a failed trial."""
from __future__ import annotations

import json
import math

import pytest

from archbench import space as spaces
from archbench.objectives import ZERO_COST_COLUMNS, ZERO_COST_SIGNALS, parse_objectives
from archbench.search.callbacks import PartWriter
from archbench.search.lease import DeviceHold
from archbench.search.options import SearchOptions
from archbench.search.trial import TrialPlan, _objective_placeholders, _zero_cost
from archbench.store.run import Manifest
from archbench.train import TrainConfig
from search_helpers import TINY_SPACE

MANIFEST = Manifest(
    run_id="t", created_at="", command="", options={}, space={}, objectives=[], seed=0, schema_version=1,
    versions={}, hardware={}, latency_isolation="none",
)


@pytest.fixture(scope="module")
def setting():
    space = spaces.load(str(TINY_SPACE))
    options = SearchOptions(
        space=str(TINY_SPACE),
        objectives=parse_objectives("synflow:max,macs:min"),
        train=TrainConfig(dataset="digits", batch_size=32, proxy_img_size=32, proxy_width_mult=1.0, proxy_depth_mult=1.0),
    )
    plan = TrialPlan.of(options, space, run_id="t", device="cpu")
    return options, space, plan, options.train.load_dataset()


def test_the_zero_cost_step_scores_the_trials_proxy(setting):
    _, space, plan, data = setting
    scores = _zero_cost(space.sample(0), data, plan, 3, DeviceHold(None, "t:3"))
    assert list(scores) == [c for name in ZERO_COST_SIGNALS for c in (name, f"{name}_seconds")]
    assert all(isinstance(scores[c], float) and math.isfinite(scores[c]) for c in ZERO_COST_COLUMNS)


def test_a_zero_cost_failure_is_recorded_not_raised(setting, monkeypatch, tmp_path):
    from archbench.train import zero_cost

    def broken(*args, **kwargs):
        raise RuntimeError("slogdet exploded\nsecond line")

    monkeypatch.setattr(zero_cost, "zero_cost_of", broken)
    options, space, plan, data = setting
    arch = space.sample(0)
    scores = _zero_cost(arch, data, plan, 0, DeviceHold(None, "t:0"))
    assert scores == {**dict.fromkeys(ZERO_COST_COLUMNS), "zero_cost_error": "RuntimeError: slogdet exploded"}

    # The report Optuna reads has the worst synflow; the part has null scores, the reason in extra.
    report = _objective_placeholders({"trial_number": 0, "status": "ok", "epochs_run": 0, "macs": 5, **scores}, plan.objectives)
    assert report["synflow"] == -math.inf and report["val_acc"] == 0.0
    writer = PartWriter(tmp_path, options, MANIFEST, space)
    record = writer.record_from(report, {"trial_number": 0, "arch": arch.to_dict()}, "ok")
    assert all(getattr(record, c) is None for c in ZERO_COST_COLUMNS)
    assert record.val_acc is None and record.val_loss is None  # nothing trained: Optuna's 0.0 is no accuracy
    assert json.loads(record.extra_json)["zero_cost_error"] == "RuntimeError: slogdet exploded"


def test_scores_and_the_loss_sum_land_in_their_columns(setting, tmp_path):
    options, space, _, _ = setting
    writer = PartWriter(tmp_path, options, MANIFEST, space)
    report = {"trial_number": 1, "status": "ok", "epochs_run": 2, "val_acc": 0.5, "train_loss_sum": 3.5,
              **{c: float(i + 1) for i, c in enumerate(ZERO_COST_COLUMNS)}}
    record = writer.record_from(report, {"trial_number": 1, "arch": space.sample(1).to_dict()}, "ok")
    assert [getattr(record, c) for c in ZERO_COST_COLUMNS] == [float(i + 1) for i in range(len(ZERO_COST_COLUMNS))]
    assert record.train_loss_sum == 3.5 and record.val_acc == 0.5 and record.extra_json is not None


def test_the_knn_probe_and_mixing_rule_land_in_their_columns(setting, tmp_path):
    options, space, _, _ = setting
    writer = PartWriter(tmp_path, options, MANIFEST, space)
    report = {"trial_number": 2, "status": "ok", "epochs_run": 2, "val_acc": 0.5, "val_knn_acc": 0.625,
              "val_knn_acc_init": 0.25, "mix_rule": "transmix (area fallback)"}
    record = writer.record_from(report, {"trial_number": 2, "arch": space.sample(2).to_dict()}, "ok")
    assert (record.val_knn_acc, record.val_knn_acc_init, record.mix_rule) == (0.625, 0.25, "transmix (area fallback)")
    # An interrupted trial's last report before the probe carries the placeholder: stored as null.
    record = writer.record_from({**report, "val_knn_acc": -math.inf}, {"trial_number": 2, "arch": space.sample(2).to_dict()}, "interrupted")
    assert record.val_knn_acc is None
