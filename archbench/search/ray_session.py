"""Ray for one search: start a local instance or join ``--ray-address`` (no dashboard, output to the
run's ray.log), with the environment Tune needs set for the session and restored afterwards.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from archbench.errors import UserError

if TYPE_CHECKING:
    from archbench.search.options import SearchOptions

# Tune's plain (non-"AIR") output, no per-trial CSV/JSON/TensorBoard loggers of its own, and trials
# that stay in the driver's working directory (relative dataset paths keep working).
RAY_ENVIRONMENT = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_CHDIR_TO_TRIAL_DIR": "0"}
_LOGGERS = ("ray", "ray.tune", "ray.train")


class RayUnavailable(UserError):
    """Ray could not be started or joined (a wrong --ray-address): reported as bad input."""


def ray_address(options: SearchOptions) -> str:
    """--ray-address, else $RAY_ADDRESS (Ray's own convention), else a new local instance.

    Never Ray's default of silently joining whatever cluster ``ray start`` last started here.
    """
    return options.ray_address or os.environ.get("RAY_ADDRESS") or "local"


@contextlib.contextmanager
def environment(defaults: dict[str, str]) -> Iterator[None]:
    """Set the variables in ``defaults`` the caller has not set; put everything back on exit."""
    added = [name for name in defaults if name not in os.environ]
    for name in added:
        os.environ[name] = defaults[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def ray_session(options: SearchOptions, log_path: Path, *, quiet: bool) -> Iterator[None]:
    """Start (or join, with --ray-address) Ray without a dashboard; Ray's output goes to ``log_path``.

    A Ray this process had already initialised is used as it is, and left running.

    Raises:
        RayUnavailable: Ray could not be started, or nothing answers at the address.
    """
    import ray

    handler = logging.FileHandler(log_path)
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    propagate = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        with environment(RAY_ENVIRONMENT), redirect_stderr(log_path, enabled=quiet):
            started_here = False
            if not ray.is_initialized():
                _init(options)
                started_here = True
            try:
                yield
            finally:
                if started_here:
                    ray.shutdown()
    finally:
        for logger, before in zip(loggers, propagate):
            logger.removeHandler(handler)
            logger.propagate = before
        handler.close()


def _init(options: SearchOptions) -> None:
    import ray

    address = ray_address(options)
    where = "--ray-address" if options.ray_address else "$RAY_ADDRESS" if address != "local" else "ray"
    if address != "local":
        _check_reachable(address, where)
        _use_local_token()
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, namespace="archbench")
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise RayUnavailable(f"{where}: cannot start or join Ray at {address}: {_first_line(err)}") from None


def _check_reachable(address: str, where: str) -> None:
    """Fail at once when nothing listens at a ``host:port`` address (ray.init retries for minutes)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # ray://, auto and other forms are Ray's to resolve
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        raise RayUnavailable(f"{where}: cannot join Ray at {address}: {err.strerror or err} (is `ray start --head` running there?)") from None


def _use_local_token() -> None:
    """Join a token-authenticated cluster as `ray start --address` does: with RAY_AUTH_MODE unset,
    a token found locally (~/.ray/auth_token, $RAY_AUTH_TOKEN[_PATH]) turns token auth on. Ray's
    ray.init() does this only for clusters it finds itself, not for an explicit address; a cluster
    without authentication accepts a client that sends a token."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    with contextlib.suppress(Exception):
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def redirect_stderr(path: Path, *, enabled: bool) -> Iterator[None]:
    """Send file descriptor 2 (Ray's C++ and Python chatter) to ``path`` while enabled."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
