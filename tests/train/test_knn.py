"""DINO's weighted k-NN probe: the vote arithmetic on hand-made features, and the probe of a proxy
after training (and at initialisation) in its TrainResult and record."""
from __future__ import annotations

import math

import pytest
import torch

from archbench.store import TrialRecord
from archbench.train import TrainConfig, load_dataset, train_proxy
from archbench.train.knn import KNN_K, KNN_TEMPERATURE, classifier_input, knn_accuracy, knn_predict


def test_defaults_are_dinos() -> None:
    assert (KNN_K, KNN_TEMPERATURE) == (20, 0.07)  # eval_knn.py: --nb_knn 20, --temperature 0.07


def test_weighted_votes_on_hand_made_features() -> None:
    # Unit training features at angles 0°, ±53.13° (cos 0.6) and 180°; labels 1, 0, 0, 0.
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [-1.0, 0.0]])
    labels = torch.tensor([1, 0, 0, 0])
    test = torch.tensor([[5.0, 0.0], [0.0, 3.0]])  # lengths do not matter: features are L2-normalised
    # Test 0, k = 3: class 1 gets exp(1 / 0.07) = 1.6e6, class 0 gets 2·exp(0.6 / 0.07) = 1.06e4.
    assert math.exp(1 / 0.07) > 2 * math.exp(0.6 / 0.07)
    # Test 1 (90°): similarities 0, 0.8, -0.8, 0; top 3 = 0.8 (label 0) and a tie at 0 (labels 1 and 0).
    assert knn_predict(train, labels, test, 2, k=3).tolist() == [1, 0]
    # At temperature 1 the vote of test 0 is exp(1) = 2.72 against 2·exp(0.6) = 3.64: the majority wins.
    assert knn_predict(train, labels, test[:1], 2, k=3, temperature=1.0).tolist() == [0]
    # k = 1 is the nearest neighbour; k beyond the training set is capped (all four vote).
    assert knn_predict(train, labels, test, 2, k=1).tolist() == [1, 0]
    assert knn_predict(train, labels, test, 2).tolist() == [1, 0]
    assert knn_accuracy(train, labels, test, torch.tensor([1, 1]), 2, k=3) == 0.5


def test_probe_of_a_trained_proxy(tmp_path) -> None:
    data = load_dataset("digits", img_size=16, seed=0)
    # A whole epoch of warm-up: this test's one epoch then trains enough to beat the probe at init.
    config = TrainConfig(dataset="digits", epochs=1, warmup_epochs=1, proxy_img_size=16, proxy_width_mult=0.25, proxy_depth_mult=0.34,
                         device="cpu", threads=1)
    from archbench import zoo

    proxy = config.proxy_of(zoo.get("deit_ti"), data)
    plain = train_proxy(proxy, data, config)
    probed = train_proxy(proxy, data, TrainConfig(**{**config.__dict__, "knn_at_init": True}))
    # The probe at initialisation draws no randomness: training is the same to the last digit.
    assert probed.val_acc == plain.val_acc and probed.val_knn_acc == plain.val_knn_acc
    assert plain.val_knn_acc_init is None
    assert 0.5 < plain.val_knn_acc <= 1.0  # ten digit classes after one epoch, far above chance
    assert 0.0 <= probed.val_knn_acc_init < probed.val_knn_acc
    record = TrialRecord(run="r", trial_id="1", status="ok", **probed.record_fields())
    assert TrialRecord.from_row(record.to_row()).val_knn_acc == pytest.approx(probed.val_knn_acc)


def test_probe_reuses_the_last_evaluations_val_features() -> None:
    # The probe reads val features from the last epoch's evaluation instead of a second pass: the
    # result must equal a probe that extracts both sets from the trained model itself.
    import archbench
    from archbench import zoo
    from archbench.train.knn import extract_features

    data = load_dataset("digits", img_size=16, seed=0)
    config = TrainConfig(dataset="digits", epochs=2, proxy_img_size=16, proxy_width_mult=0.25, proxy_depth_mult=0.34, device="cpu", threads=1)
    model = archbench.build(config.proxy_of(zoo.get("deit_ti"), data))
    result = train_proxy(model, data, config)  # trains this very module
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in (data.mean, data.std))
    scale, shift = 1.0 / (255.0 * std), -mean / std  # Dataset.normalize as one multiply-add, as training does
    batch = 2 * config.batch_size
    features = [extract_features(model, x, scale, shift, batch, torch.autocast("cpu", enabled=False)) for x in (data.train_x, data.val_x)]
    assert result.val_knn_acc == knn_accuracy(features[0], data.train_y, features[1], data.val_y, data.num_classes)


def test_classifier_input_is_the_heads_last_linear() -> None:
    import archbench

    with torch.device("meta"):
        cait = archbench.build("cait_xxs24", num_classes=10)
    layer = classifier_input(cait)
    assert layer is cait.head.fc and layer.in_features == 192
