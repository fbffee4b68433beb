"""Screen then train: draw a large pool of candidates cheaply (exact cost from the per-layer cache, a
zero-cost score standing in for accuracy), keep the best by non-dominated sorting (NSGA-II's rank
and crowding distance) and enqueue them into the run's Optuna study, so they train first through
the normal trial path and the sampler learns from them. The pool is kept in the run folder.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from archbench.errors import UserError
from archbench.objectives import ZERO_COST_SIGNALS

if TYPE_CHECKING:
    import pandas as pd
    from optuna.storages import RDBStorage

    from archbench.search.options import SearchOptions
    from archbench.space import Space
    from archbench.store.run import RunFolder
    from archbench.train.data import Dataset

__all__ = ["DEFAULT_SIGNAL", "SCREEN_SIGNALS", "check_screen", "screen", "screen_pool"]

# What stands in for val_acc while screening: SynFlow needs no labels and one backward pass; on the
# proxy task its rank correlation with trained accuracy is reported by `archbench fidelity`.
DEFAULT_SIGNAL = "synflow"
SCREEN_SIGNALS = ZERO_COST_SIGNALS
SCREEN_ATTR = "screen_rank"  # user attr of the study's trials enqueued from the pool
_SEED_OFFSET = 7_919  # the pool's draws are not the sampler's own first draws


def check_screen(options: SearchOptions) -> None:
    """Refuse, before anything starts, screening that cannot rank on the run's objectives."""
    from archbench._validate import MAX_SAMPLES, range_message

    if options.screen_signal not in SCREEN_SIGNALS:  # a typo is refused with or without --screen
        raise UserError(f"--screen-signal must be one of {', '.join(SCREEN_SIGNALS)}, got {options.screen_signal!r}")
    if not options.screen:
        return
    if not 0 <= options.screen <= MAX_SAMPLES:
        raise UserError(range_message("--screen", 0, MAX_SAMPLES, "each candidate is counted and scored", options.screen))
    if options.screen < options.trials and not options.resume:
        raise UserError(f"--screen {options.screen} must be at least --trials {options.trials} (the pool the trained trials are chosen from)")
    slow = [o.name for o in options.objectives if o.name == "latency_ms"]
    if slow:
        raise UserError("--screen ranks on exact costs and zero-cost scores; latency_ms is measured per trial, not screened: "
                        "drop it from --objectives or leave out --screen")


def screen_pool(
    space: Space, options: SearchOptions, data: Dataset | None, *, progress: Callable[[int], None] | None = None
) -> pd.DataFrame:
    """``options.screen`` candidates drawn as the run's sampler would draw them (define-by-run on an
    in-memory study, random sampler), each with its exact params and MACs (the sampler's counter),
    the constraint it breaks, the cheap signals its objectives need, its front and whether it is
    among the ``options.trials`` chosen."""
    import optuna
    import pandas as pd

    from archbench.measure import arch_cost
    from archbench.space import InvalidSample

    signals = _signals_needed(options)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=options.train.seed + _SEED_OFFSET))
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i in range(options.screen):
        trial = study.ask()
        row: dict[str, Any] = {"pool_index": i}
        try:
            arch = space.suggest(trial)
            cost = arch_cost(arch)
        except (optuna.TrialPruned, InvalidSample) as err:
            row.update(violation=f"invalid architecture: {err}")
            rows.append(row)
            continue
        except Exception as err:  # noqa: BLE001 - a draw that does not run is screened out, not fatal
            row.update(violation=f"invalid architecture: {type(err).__name__}: {err}")
            rows.append(row)
            continue
        row.update(arch_hash=arch.hash, arch_name=arch.name, arch_summary=arch.summary(), arch_json=json.dumps(arch.to_dict()),
                   optuna_params=json.dumps(trial.params), params=cost.params, macs=cost.macs,
                   violation=space.constraints.violated(cost.params, cost.macs) or ("duplicate" if arch.hash in seen else None))
        seen.add(arch.hash)
        if row["violation"] is None and (space.constraints.max_latency_ms is not None or any(o.name == "latency_pred_ms" for o in options.objectives)):
            from archbench.measure.latency_table import predict_latency

            threads = options.latency_threads or options.cpus_per_trial
            row["latency_pred_ms"] = predict_latency(arch, device=options.train.resolved_device(), threads=threads).latency_pred_ms
            # The bound on the prediction, as the sampler checks it; a chosen trial measures it again.
            row["violation"] = space.constraints.violated(cost.params, cost.macs, row["latency_pred_ms"])
        if row["violation"] is None and signals:
            row.update(_scores(arch, signals, data, options))
        rows.append(row)
        if progress is not None:
            progress(i + 1)
    pool = pd.DataFrame(rows)
    return _choose(pool, options)


def screen(folder: RunFolder, storage: RDBStorage, space: Space, options: SearchOptions, data: Dataset | None,
           *, progress: Callable[[int], None] | None = None) -> pd.DataFrame | None:
    """Screen once per run: draw and store the pool (unless the run folder has it: a resume), then
    enqueue its chosen candidates into the study unless they already are."""
    import pandas as pd

    if not options.screen:
        return None
    path = folder.screen_pool_path
    if path.exists():
        pool = pd.read_parquet(path)
    else:
        pool = screen_pool(space, options, data, progress=progress)
        _write_parquet(pool, path)
    _enqueue(storage, pool, options)
    return pool


# ---- ranking ----------------------------------------------------------------------------------------
def _signals_needed(options: SearchOptions) -> list[str]:
    names = [o.name for o in options.objectives]
    wanted = [options.screen_signal] if "val_acc" in names else []
    return wanted + [n for n in names if n in SCREEN_SIGNALS and n not in wanted]


def _stand_in(options: SearchOptions) -> list[tuple[str, str]]:
    """(pool column, direction) per objective: val_acc ranked by the screening signal."""
    return [(options.screen_signal if o.name == "val_acc" else o.name, o.direction) for o in options.objectives]


def _choose(pool: pd.DataFrame, options: SearchOptions) -> pd.DataFrame:
    from archbench.pareto import crowding_distance, pareto_ranks

    columns = _stand_in(options)
    for name, _ in columns:
        if name not in pool:
            pool[name] = np.nan
    pool["front"] = -1
    pool["chosen"] = False
    pool["screen_rank"] = -1
    feasible = pool.index[pool["violation"].isna()] if "violation" in pool else pool.index
    values = pool.loc[feasible, [c for c, _ in columns]].to_numpy(dtype=float)
    finite = feasible[np.isfinite(values).all(axis=1)]
    if len(finite) == 0:
        raise UserError(f"--screen: none of {len(pool)} candidates is feasible with finite {', '.join(c for c, _ in columns)}; "
                        "see `archbench space stats` for what the constraints accept")
    values = pool.loc[finite, [c for c, _ in columns]].to_numpy(dtype=float)
    directions = [d for _, d in columns]
    fronts = pareto_ranks(values, directions)
    pool.loc[finite, "front"] = fronts
    order: list[int] = []
    for front in sorted(set(fronts.tolist())):
        members = np.flatnonzero(fronts == front)
        crowd = crowding_distance(values[members], directions)
        # Most isolated first within a front (NSGA-II's tie-break), the pool order breaking ties.
        order.extend(finite[members[i]] for i in sorted(range(len(members)), key=lambda i: (-crowd[i], members[i])))
    chosen = order[: options.trials]
    pool.loc[chosen, "chosen"] = True
    pool.loc[chosen, "screen_rank"] = range(len(chosen))
    return pool


def _scores(arch: Any, signals: list[str], data: Dataset | None, options: SearchOptions) -> dict[str, float | None]:
    from dataclasses import replace

    from archbench.train.zero_cost import zero_cost_of

    assert data is not None, "screening on a zero-cost score needs the run's dataset"
    config = replace(options.train, threads=options.cpus_per_trial)
    try:
        scores = zero_cost_of(config.proxy_of(arch, data), data, config, signals=signals)
    except Exception:  # noqa: BLE001 - a proxy the score cannot run through is not ranked on it
        return dict.fromkeys(signals)
    return {name: (None if scores[name] is None or not math.isfinite(scores[name]) else float(scores[name])) for name in signals}


# ---- the study and the file ------------------------------------------------------------------------
def _enqueue(storage: RDBStorage, pool: pd.DataFrame, options: SearchOptions) -> int:
    import optuna

    from archbench.search.sampling import STUDY_NAME

    directions = ["maximize" if o.direction == "max" else "minimize" for o in options.objectives]
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, directions=directions, load_if_exists=True)
    if any(SCREEN_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False)):
        return 0  # enqueued by the run that screened (a resume continues with them)
    chosen = pool[pool["chosen"]].sort_values("screen_rank")
    for rank, text in zip(chosen["screen_rank"], chosen["optuna_params"]):
        study.enqueue_trial(json.loads(text), user_attrs={SCREEN_ATTR: int(rank)})
    return len(chosen)


def _write_parquet(frame: pd.DataFrame, path: Any) -> None:
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)  # whole or not at all: a resume reads it back
