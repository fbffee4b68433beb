"""Measurement: unique parameters, audited MACs, latency and peak memory, each with its provenance.

``profile`` is the one entry point the CLI, the search and the reports share.
"""
from __future__ import annotations

from archbench.measure.macs import MacCount, count_macs, count_macs_meta
from archbench.measure.params import count_params

__all__ = ["MacCount", "count_macs", "count_macs_meta", "count_params"]
