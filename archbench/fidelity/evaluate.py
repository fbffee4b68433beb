"""One evaluation of a fidelity study, as it runs on a Ray worker: the zero-cost scores of the proxy at
initialisation (proxy fidelity only), then its training; every failure is returned as data.
"""
from __future__ import annotations

import socket
import time
import traceback
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from archbench.fidelity.plan import PROXY

if TYPE_CHECKING:
    from archbench.fidelity.plan import Evaluation, PlannedArch
    from archbench.train.config import TrainConfig
    from archbench.train.data import Dataset


def evaluate(evaluation: Evaluation, planned: PlannedArch, data: Dataset, config: TrainConfig) -> dict[str, Any]:
    """Train ``planned``'s proxy under ``config`` (its seed already the evaluation's); returns the
    record's fields: status, error, the training columns, the zero-cost columns and timestamps."""
    from archbench.errors import error_line
    from archbench.train import train_proxy
    from archbench.train.zero_cost import zero_cost_record

    fields: dict[str, Any] = {"started_at": time.time(), "hostname": socket.gethostname(), **config.record_fields()}
    try:
        proxy = config.proxy_of(planned.arch, data)
        if evaluation.fidelity == PROXY:
            fields.update(zero_cost_record(proxy, data, config))
        result = train_proxy(proxy, data, config)
        fields.update(result.record_fields(), status="ok")
    except Exception as err:  # one architecture failing is a result of the study, not its end
        fields.update(status="failed", error=error_line(err), traceback=traceback.format_exc(limit=8)[-4000:])
    fields["finished_at"] = time.time()
    return fields


def config_for(evaluation: Evaluation, proxy: TrainConfig, reference: TrainConfig, *, device: str, threads: int) -> TrainConfig:
    """The TrainConfig ``evaluation`` trains with: its fidelity's, seeded ``seed + seed_index``."""
    base = proxy if evaluation.fidelity == PROXY else reference
    return replace(base, device=device, threads=threads).for_trial(evaluation.seed_index)


__all__ = ["config_for", "evaluate"]
