"""What a search changes in the process is put back: the environment set for Ray, and Optuna's log
level (no Ray needed here)."""
from __future__ import annotations

import os

import optuna

from archbench.search.ray_session import RAY_ENVIRONMENT, environment
from archbench.search.sampling import optuna_quiet


def test_ray_environment_is_restored(monkeypatch):
    names = list(RAY_ENVIRONMENT)
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(names[0], "user-choice")  # a variable the user set is left as it is
    with environment(RAY_ENVIRONMENT):
        assert os.environ[names[0]] == "user-choice"
        assert all(os.environ[n] == RAY_ENVIRONMENT[n] for n in names[1:])
    assert os.environ[names[0]] == "user-choice"
    assert not any(n in os.environ for n in names[1:])


def test_optuna_log_level_is_restored():
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        with optuna_quiet():
            assert optuna.logging.get_verbosity() == optuna.logging.WARNING
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(before)
