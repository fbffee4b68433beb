"""What a resume retries: trials a stopped driver left RUNNING in the study, on a real SQLite
storage; only complete, feasible draws are queued again (a half-drawn trial is another architecture)."""
from __future__ import annotations

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from archbench.search.sampling import DRAWN_ATTR, STUDY_NAME, retry_unfinished


def _running(study: optuna.Study, *, drawn: str | None) -> int:
    trial = study.ask()
    trial.suggest_int("depth", 1, 4)
    if drawn is not None:  # the draw finished: the width was drawn and the verdict set last
        trial.suggest_categorical("width", [32, 64])
        trial.set_user_attr(DRAWN_ATTR, drawn)
    return trial.number


def test_only_complete_feasible_draws_are_queued_again(tmp_path):
    storage = RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    done = study.ask()
    done.suggest_int("depth", 1, 4)
    study.tell(done, 0.5)
    complete = _running(study, drawn="")
    half = _running(study, drawn=None)  # killed between two suggest calls
    infeasible = _running(study, drawn="macs 7.1 G > 6 G")

    assert retry_unfinished(storage) == [complete]

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert trials[done.number].state == TrialState.COMPLETE
    assert all(trials[n].state == TrialState.FAIL for n in (complete, half, infeasible))
    (queued,) = [t for t in trials.values() if t.state == TrialState.WAITING]
    assert queued.user_attrs == {"retry_of": complete}
    assert study.trials[complete].params == {**queued.system_attrs["fixed_params"]}
    assert retry_unfinished(storage) == []  # nothing RUNNING any more: a second resume queues nothing
