"""The proxy flags shared by `archbench search` and `archbench fidelity`: the same flags, the same
defaults in the help, and `--train-images 0` as the whole training split in both."""
from __future__ import annotations

import pytest

from archbench.cli import build_parser
from archbench.cli._proxy_flags import PROXY_FLAGS, proxy_values
from archbench.cli.fidelity import options_from
from archbench.train.config import TrainConfig


@pytest.mark.parametrize("command", ["search", "fidelity"])
def test_both_commands_take_every_proxy_flag(command):
    args = build_parser().parse_args([command, "--dataset", "digits", "--epochs", "3", "--warmup-epochs", "0.25", "--train-images", "0", "--batch-size", "32",
                                      "--lr", "0.001", "--proxy-img-size", "48", "--proxy-width-mult", "0.75", "--proxy-depth-mult", "1",
                                      "--mix", "transmix", "--knn-at-init"])
    values = proxy_values(vars(args))
    assert set(values) == set(PROXY_FLAGS)
    assert values["train_images"] is None and values["proxy_img_size"] == 48 and values["dataset"] == "digits"
    assert values["mix"] == "transmix" and values["knn_at_init"] is True and values["warmup_epochs"] == 0.25


def test_flags_left_out_keep_the_defaults_and_the_fidelity_proxy_is_the_searchs():
    options, given = options_from(build_parser().parse_args(["fidelity", "--train-images", "800"]))
    assert given == {"train_images"}
    assert options.proxy.train_images == 800 and options.proxy.epochs == TrainConfig().epochs
    assert options.reference.train_images is None and options.reference.epochs == 6 and options.reference.warmup_epochs == 1
