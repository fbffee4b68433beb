"""The proxy-training flags `archbench search` and `archbench fidelity` share (one TrainConfig field
each), with their help texts and the flag-to-field conversions, written once.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archbench.train.config import TrainConfig

# Flag (with "_" for "-") -> the TrainConfig field it sets: the same name.
PROXY_FLAGS = (
    "dataset", "epochs", "warmup_epochs", "train_images", "batch_size", "lr", "proxy_img_size", "proxy_width_mult", "proxy_depth_mult",
    "mix", "knn_at_init",
)


def add_proxy_flags(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """Add the proxy flags to ``parser``; left out, each keeps ``defaults``' value (argparse.SUPPRESS)."""
    from archbench._validate import MAX_BATCH, MAX_IMG_SIZE
    from archbench.train.config import DATASET_FORMS, MIX_RULES

    S = argparse.SUPPRESS
    parser.add_argument("--dataset", default=S, help=f"{DATASET_FORMS} (default {defaults.dataset})")
    parser.add_argument("--epochs", type=int, default=S, help=f"proxy training epochs (default {defaults.epochs})")
    parser.add_argument("--warmup-epochs", type=float, default=S,
                        help=f"linear learning-rate warm-up, in (fractional) epochs (default {defaults.warmup_epochs:g})")
    parser.add_argument("--train-images", type=int, default=S,
                        help=f"train on at most this many images, drawn per class; 0: all (default {defaults.train_images})")
    parser.add_argument("--batch-size", type=int, default=S, help=f"proxy training batch size, 1 to {MAX_BATCH} (default {defaults.batch_size})")
    parser.add_argument("--lr", type=float, default=S, help=f"peak AdamW learning rate (default {defaults.lr})")
    parser.add_argument("--proxy-img-size", type=int, default=S, help=f"proxy training resolution, 8 to {MAX_IMG_SIZE} (default {defaults.proxy_img_size})")
    parser.add_argument("--proxy-width-mult", type=float, default=S, help=f"proxy width multiplier (default {defaults.proxy_width_mult})")
    parser.add_argument("--proxy-depth-mult", type=float, default=S, help=f"proxy depth multiplier (default {defaults.proxy_depth_mult})")
    parser.add_argument("--mix", choices=MIX_RULES, default=S,
                        help="data mixing of proxy training, with its paper's defaults; attention rules fall back to "
                        f"area labels (recorded in mix_rule) without class-token attention (default {defaults.mix})")
    parser.add_argument("--knn-at-init", action="store_true", default=S,
                        help="also take the k-NN probe of the untrained proxy (val_knn_acc_init)")


def proxy_values(given: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig fields among the flags ``given`` (``--train-images 0`` is no limit: None)."""
    values = {k: given[k] for k in PROXY_FLAGS if k in given}
    if values.get("train_images") == 0:
        values["train_images"] = None
    return values
