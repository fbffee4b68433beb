"""Optuna's side of a search: the sampler (with the space's constraints made known to it), the
define-by-run function that turns a trial into an architecture, and the SQLite study a resume reads.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
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
