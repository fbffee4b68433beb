"""Measurement: unique parameters, audited MACs, latency and peak memory, each with its provenance.

``arch_cost`` is the one way to count an architecture; ``profile`` the one entry point for a full
measurement (cost, latency, memory) that the CLI, the search and the reports share.
"""
from __future__ import annotations

from archbench.measure.cost import Cost, arch_cost, module_cost
from archbench.measure.latency import Latency, measure_latency
from archbench.measure.macs import MacCount, count_macs, count_macs_meta
from archbench.measure.memory import Memory, measure_memory
from archbench.measure.params import count_params, count_params_meta
from archbench.measure.profile import Profile, profile

__all__ = [
    "Cost", "Latency", "MacCount", "Memory", "Profile",
    "arch_cost", "count_macs", "count_macs_meta", "count_params", "count_params_meta", "measure_latency", "measure_memory",
    "module_cost", "profile",
]
