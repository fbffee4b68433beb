"""Accuracy of the per-layer latency table: `latency_pred_ms` (each distinct layer timed once at
batch 1, summed, corrected by a fit on separate calibration networks) against the measured latency of
the whole network (`measure_latency`, as trials time it), on samples of each shipped space.

Run:  python benchmarks/latency_table.py [--spaces hybrid_vit ...] [--samples 30] [--calibration 8] [--threads 1]
Prints, per space, the share of predictions within ±10% of the measurement and Kendall's τ; the
same for the uncalibrated layer sum, and for a second measurement of each network (the machine's
own reproducibility: the ceiling for any predictor).
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore")  # before torch: its import-time deprecation notes are not results

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch
from scipy import stats

from archbench import space as spaces
from archbench.builder import build
from archbench.measure import layer_cost, measure_latency
from archbench.measure.latency_table import calibrate, predict_latency
from archbench.measure.provenance import cpu_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spaces", nargs="*", default=spaces.names())
    parser.add_argument("--samples", type=int, default=30, help="evaluated networks per space")
    parser.add_argument("--calibration", type=int, default=8, help="networks the correction is fitted on (other seeds)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep-cache", action="store_true", help="use the user's cache instead of a fresh one")
    parser.add_argument("--json", default=None, help="append each space's per-network figures to this JSON-lines file")
    args = parser.parse_args()
    if not args.keep_cache:
        os.environ["ARCHBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="latency-table-")
        layer_cost.reset_store(None)
    print(f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} thread(s), batch 1, torch {torch.__version__}")
    print("| space | networks | within ±10% | Kendall τ | median error | uncalibrated sum within ±10% | "
          "re-measured within ±10% (ceiling) | τ re-measured | fit (scale, offset ms) | layers timed | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.spaces:
        start = time.perf_counter()
        sp = spaces.load(name)
        calib = [sp.sample(10_000 + i) for i in range(args.calibration)]
        evals = [sp.sample(i) for i in range(args.samples)]
        fit, _ = calibrate(calib, threads=args.threads)
        predicted, summed, measured, timed = [], [], [], 0
        for arch in evals:
            found = predict_latency(arch, threads=args.threads)
            timed += found.timed
            predicted.append(found.latency_pred_ms)
            summed.append(found.layer_sum_ms)
            measured.append(measure_latency(build(arch), arch.input.img_size, threads=args.threads).median)
        # The same networks measured again, minutes later: how well a measurement predicts itself
        # on this machine is the ceiling for any predictor.
        again = [measure_latency(build(arch), arch.input.img_size, threads=args.threads).median for arch in evals]
        p, m, r, u = np.array(predicted), np.array(measured), np.array(again), np.array(summed)
        if args.json:
            with open(args.json, "a") as fh:  # every network's figures, for analyses the table does not show
                fh.write(json.dumps({"space": name, "fit": [fit.scale, fit.offset_ms], "predicted": predicted, "layer_sum": summed,
                                     "measured": measured, "measured_again": again}) + "\n")
        error = (p - m) / m
        tau = stats.kendalltau(p, m).statistic
        print(f"| {name} | {len(evals)} | {np.mean(np.abs(error) <= 0.10):.0%} | {tau:.3f} | {np.median(np.abs(error)):.1%} | "
              f"{np.mean(np.abs((u - m) / m) <= 0.10):.0%} | {np.mean(np.abs((r - m) / m) <= 0.10):.0%} | "
              f"{stats.kendalltau(r, m).statistic:.3f} | {fit.scale:.3f}, {fit.offset_ms:+.2f} | {timed} | "
              f"{time.perf_counter() - start:.0f} |", flush=True)

if __name__ == "__main__":
    main()
