"""Non-dominated sorting (Deb et al., NSGA-II, 2002) and crowding distance over any objectives.

Works on a plain matrix with a direction per column, so runs, zoo anchors and live views share it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _as_minimisation(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    signs = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    return np.asarray(values, dtype=float) * signs


def pareto_ranks(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """Rank of every row: 0 for the non-dominated front, 1 for the front once 0 is removed, ...

    Rows equal in every objective (duplicates of one architecture, or ties) share a rank: neither
    dominates the other. Rows with a NaN objective get rank -1 (not comparable).

    Example:
        >>> pareto_ranks([[0.9, 2.0], [0.8, 1.0], [0.7, 3.0]], ["max", "min"]).tolist()
        [0, 0, 1]
    """
    points = _as_minimisation(np.asarray(values, dtype=float).reshape(len(values), len(directions)), directions)
    n = len(points)
    ranks = np.full(n, -1, dtype=int)
    valid = ~np.isnan(points).any(axis=1)
    index = np.flatnonzero(valid)
    if index.size == 0:
        return ranks
    p = points[index]
    # dominated[i, j]: row j dominates row i (no worse everywhere, better somewhere).
    no_worse = (p[None, :, :] <= p[:, None, :]).all(axis=2)
    better = (p[None, :, :] < p[:, None, :]).any(axis=2)
    dominates = no_worse & better
    remaining = np.ones(len(p), dtype=bool)
    rank = 0
    while remaining.any():
        dominated_count = (dominates[:, remaining]).sum(axis=1)
        front = remaining & (dominated_count == 0)
        ranks[index[front]] = rank
        remaining &= ~front
        rank += 1
    return ranks


def crowding_distance(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """NSGA-II crowding distance within one front (boundary points get infinity)."""
    points = _as_minimisation(np.asarray(values, dtype=float).reshape(len(values), len(directions)), directions)
    n = len(points)
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(points.shape[1]):
        order = np.argsort(points[:, k], kind="stable")
        span = points[order[-1], k] - points[order[0], k]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span == 0:
            continue
        gaps = (points[order[2:], k] - points[order[:-2], k]) / span
        distance[order[1:-1]] += gaps
    return distance
