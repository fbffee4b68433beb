"""Weighted k-NN probe of frozen features, as DINO's evaluation (Caron et al., ICCV 2021, eval_knn.py;
used by EsViT, Li et al., ICLR 2022): cosine similarity, the k = 20 nearest, votes weighted exp(s / 0.07).

A label-efficient second view of representation quality beside the linear classifier's accuracy.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from archbench.train.data import iterate_batches

# DINO's defaults (eval_knn.py: --nb_knn 20, --temperature 0.07).
KNN_K = 20
KNN_TEMPERATURE = 0.07


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    num_classes: int,
    *,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
    chunk: int = 1024,
) -> torch.Tensor:
    """Class predictions of a weighted k-NN vote: features L2-normalised, the ``k`` most cosine-similar
    training examples each vote ``exp(similarity / temperature)`` for their label (k is capped at the
    training set's size).

    Example:
        A test point at similarity 1 to one "1" and 0.6 to two "0"s: the weights exp(1 / 0.07) and
        2·exp(0.6 / 0.07) outvote the majority.

        >>> train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
        >>> knn_predict(train, torch.tensor([1, 0, 0]), torch.tensor([[2.0, 0.0]]), 2).tolist()
        [1]

    Args:
        train_features: (n_train, d) features of the labelled examples.
        train_labels: (n_train,) int labels in ``[0, num_classes)``.
        test_features: (n_test, d) features to classify.
        num_classes: number of classes.
        k: neighbours that vote.
        temperature: scale of the similarity in the vote weight.
        chunk: test examples a similarity block (bounds memory at ``chunk × n_train``).
    """
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    k = min(k, train.shape[0])
    predictions = []
    for block in test.split(chunk):
        similarity, index = (block @ train.T).topk(k, dim=1)  # (b, k)
        weights = (similarity / temperature).exp()
        votes = torch.zeros(block.shape[0], num_classes, device=block.device)
        votes.scatter_add_(1, train_labels[index], weights)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.long, device=test.device)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    *,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
) -> float:
    """Top-1 accuracy (a fraction) of :func:`knn_predict` on ``test_labels``."""
    predicted = knn_predict(train_features, train_labels, test_features, num_classes, k=k, temperature=temperature)
    return float((predicted == test_labels).float().mean()) if len(test_labels) else 0.0


def classifier_input(model: nn.Module) -> nn.Linear:
    """The final linear classifier of a model built by archbench: its input is the pooled (normed,
    pre-logits) feature a k-NN probe reads, as DINO reads the backbone's output before any head.

    Raises:
        ValueError: the model's ``head`` holds no linear layer to its ``num_classes`` outputs.
    """
    head = getattr(model, "head", None)
    num_classes = getattr(model, "num_classes", None)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes] if head is not None else []
    if not linears:
        raise ValueError(f"{type(model).__name__}: no linear classifier with {num_classes} outputs in .head")
    return linears[-1]


def extract_features(
    model: nn.Module,
    images: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    batch_size: int,
    autocast: contextlib.AbstractContextManager,
    channels_last: bool = False,
) -> torch.Tensor:
    """The classifier's input features (float32, (n, d)) of uint8 ``images``, normalised as
    ``images * scale + shift``, in eval mode without gradients."""
    labels = torch.zeros(len(images), dtype=torch.long, device=images.device)
    model.eval()
    with classifier_features(model) as captured, torch.inference_mode():
        for xb, _ in iterate_batches(images, labels, batch_size):
            x = torch.addcmul(shift, xb.float(), scale)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                model(x)
    return torch.cat(captured)


@contextlib.contextmanager
def classifier_features(model: nn.Module, *, required: bool = True) -> Iterator[list[torch.Tensor]]:
    """While open, collects the classifier's input (float32, detached) of every forward pass of
    ``model``, batch by batch. With ``required=False`` a model without a classifier collects nothing.

    Raises:
        ValueError: ``model`` has no linear classifier (see :func:`classifier_input`) and ``required``.
    """
    captured: list[torch.Tensor] = []
    try:
        layer: nn.Linear | None = classifier_input(model)
    except ValueError:
        if required:
            raise
        layer = None
    handle = layer.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach().float())) if layer is not None else None
    try:
        yield captured
    finally:
        if handle is not None:
            handle.remove()


__all__ = ["KNN_K", "KNN_TEMPERATURE", "classifier_features", "classifier_input", "extract_features", "knn_accuracy", "knn_predict"]
