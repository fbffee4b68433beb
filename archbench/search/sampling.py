"""Optuna's side of a search: the sampler (with the space's constraints made known to it), the
define-by-run function that turns a trial into an architecture, and the SQLite study a resume reads.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from archbench.errors import UserError

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

    import optuna
    from optuna.storages import RDBStorage
    from ray.tune.search.optuna import OptunaSearch

    from archbench.search.options import SearchOptions
    from archbench.space import Space
    from archbench.store.run import RunFolder

STUDY_NAME = "archbench"


@contextlib.contextmanager
def optuna_quiet() -> Iterator[None]:
    """Optuna's log level at WARNING while a search runs ("A new study created ..." is not for the
    terminal), and the caller's level again afterwards."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


# Set last by DefineByRun: a trial without it was stopped while its parameters were still being
# drawn (a trial is RUNNING from its ask on); its value is the constraint violation, "" if feasible.
DRAWN_ATTR = "violation"


def constraint_flags(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna constraints_func: > 0 marks a trial infeasible (flagged when it was sampled)."""
    return [1.0 if trial.user_attrs.get(DRAWN_ATTR) else 0.0]


def make_sampler(options: SearchOptions, seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler, with the space's constraints (flagged at sampling time) made known to it."""
    import optuna

    constraints = constraint_flags
    startup = max(2, min(10, options.trials // 3))
    if options.sampler == "nsga2":
        population = max(4, min(50, options.trials // 2))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed, constraints_func=constraints)
    if options.sampler == "tpe":
        with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna: no warning for the user
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=startup, constraints_func=constraints)
    if options.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, constraints_func=constraints)
    return optuna.samplers.RandomSampler(seed=seed)


@dataclass(frozen=True)
class DefineByRun:
    """What OptunaSearch calls per trial: the architecture plus the constraint verdict (a meta-device
    count, cheap). A class, not a closure, because Tune pickles its searcher with the run state.

    A draw the space cannot turn into an architecture (a user space whose choices clash) becomes a
    trial without an architecture, recorded as rejected, rather than an exception in Tune's loop.
    """

    space: Space

    def __call__(self, trial: optuna.trial.Trial) -> dict[str, Any]:
        import optuna

        from archbench.space import InvalidSample

        try:
            arch = self.space.suggest(trial)
        except optuna.TrialPruned as err:
            reason = str(err) or "invalid architecture"
            trial.set_user_attr(DRAWN_ATTR, reason)
            return {"trial_number": trial.number, "arch": None, "violation": reason}
        try:
            violation = self.space.check_arch(arch) if self.space.constraints.needs_estimate else None
        except InvalidSample as err:  # valid as data, but it does not build at the target size
            violation = f"invalid architecture: {err}"
        trial.set_user_attr("arch_hash", arch.hash)
        trial.set_user_attr(DRAWN_ATTR, violation or "")  # last: its presence marks a complete draw
        return {"trial_number": trial.number, "arch": arch.to_dict(), "violation": violation or ""}


# Tables every Optuna RDB study has; a file without them holds no study.
_OPTUNA_TABLES = frozenset({"studies", "trials"})


def check_study(folder: RunFolder) -> None:
    """Refuse to resume a run whose study cannot continue its trials, before anything changes: an
    ``optuna.db`` missing while trial parts exist (a new study would hand out their trial ids
    again), one that is not SQLite or is damaged, or one holding fewer trials than the parts
    record. The file is only read (a hot journal left by a kill -9 excepted: SQLite rolls it back,
    as the resumed driver would). A run without parts may start its study afresh.

    Raises:
        UserError: one line naming ``optuna.db``, what is wrong with it and how to go on.
    """
    numbers = [int(t) for t in folder.recorded_trial_ids() if t.isdigit()]
    problem = _study_problem(folder.study_path, numbers)
    if problem:
        raise UserError(
            f"{folder.study_path}: {problem}: the study cannot be continued; start a new run with another --run-dir "
            f"(archbench report {folder.path} still reads this run's {_count(len(numbers), 'trial part')}), "
            f"or put back a copy of {folder.study_path.name} taken when the run stopped"
        )


def _study_problem(path: Path, numbers: list[int]) -> str | None:
    """What is wrong with the study at ``path`` for a run whose parts record trials ``numbers``."""
    import sqlite3

    if not path.exists():
        return f"missing, but the run has {_count(len(numbers), 'trial part')}" if numbers else None
    try:
        try:
            found = _read_study(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))
        except sqlite3.DatabaseError as err:
            if getattr(err, "sqlite_errorname", "") != "SQLITE_READONLY_ROLLBACK":
                raise
            found = _read_study(sqlite3.connect(path))  # a hot journal: opening read-write rolls it back
    except sqlite3.DatabaseError as err:
        return f"damaged or not a SQLite database ({err})"
    if isinstance(found, str):
        return found
    tables, trials = found
    if not _OPTUNA_TABLES <= tables:
        return f"not an Optuna study (no {', '.join(sorted(_OPTUNA_TABLES - tables))} table)" if numbers or tables else None
    if numbers and trials <= max(numbers):
        return f"holds {_count(trials, 'trial')} of study '{STUDY_NAME}', but the run has a part of trial {max(numbers):05d}"
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _read_study(con: sqlite3.Connection) -> tuple[set[str], int] | str:
    """The tables of the database and the trials of the archbench study in it, or what is damaged."""
    try:
        (check,) = con.execute("PRAGMA quick_check(1)").fetchone()
        if check != "ok":
            return f"damaged (SQLite's quick_check: {check})"
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not _OPTUNA_TABLES <= tables:
            return tables, 0
        study = con.execute("SELECT study_id FROM studies WHERE study_name = ?", (STUDY_NAME,)).fetchone()
        trials = con.execute("SELECT COUNT(*) FROM trials WHERE study_id = ?", study).fetchone()[0] if study else 0
        return tables, trials
    finally:
        con.close()


def open_storage(folder: RunFolder) -> RDBStorage:
    """The run's study storage. SQLite is transactional (a kill -9 loses no committed ask/tell) and
    pickles with Tune's experiment state; only this driver writes to it (the folder's lock sees to that)."""
    from optuna.storages import RDBStorage

    return RDBStorage(f"sqlite:///{folder.study_path.resolve()}")


def trials_in_study(storage: RDBStorage) -> int:
    """How many trials the run's study has asked for so far (0 before the first)."""
    import optuna

    try:
        return len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
    except KeyError:
        return 0


def retry_unfinished(storage: RDBStorage) -> list[int]:
    """Trials a stopped driver left RUNNING in the study (kill -9, Ctrl-C) are told FAIL, so samplers
    ignore them, and the feasible architectures among them are queued so the resumed run tries them
    first (under new trial ids). A trial stopped halfway through its draw holds only some of its
    parameters: queueing those would fix them and draw the rest anew, a different architecture, so
    it is not retried. Returns the numbers of the trials queued again."""
    import optuna

    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    except KeyError:
        return []
    retried = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        if trial.params and trial.user_attrs.get(DRAWN_ATTR) == "":
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            retried.append(trial.number)
    return retried


def make_searcher(options: SearchOptions, space: Space, storage: RDBStorage, *, already: int) -> OptunaSearch:
    """Tune's OptunaSearch over the run's study, sampling ``space`` define-by-run.

    ``already`` (trials in the study) offsets the sampler's seed: a resumed run continues its random
    stream instead of replaying it.
    """
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    metrics = [o.metric for o in options.objectives]
    modes = [o.direction for o in options.objectives]
    searcher = OptunaSearch(
        space=DefineByRun(space),
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        sampler=make_sampler(options, options.train.seed + already),
        study_name=STUDY_NAME,
        storage=storage,
    )
    # Named objectives: optuna-dashboard (and any reader of optuna.db) labels val_acc and macs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.load_study(study_name=STUDY_NAME, storage=storage).set_metric_names(metrics)
    return searcher
