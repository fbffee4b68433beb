"""Error types: input the user can fix (a file, an option, a name) versus bugs in archbench.

The CLI prints a ``UserError`` as one line with exit status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = ["UserError", "error_line"]


def error_line(err: BaseException, limit: int = 500) -> str:
    """``Type: first line of the message``, at most ``limit`` characters: how a failure is recorded as data.

    Example:
        >>> error_line(RuntimeError("out of memory\\nat step 3"))
        'RuntimeError: out of memory'
    """
    lines = f"{type(err).__name__}: {err}".strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:limit]


class UserError(ValueError):
    """Bad input the user can fix; the message names the file, key path or option at fault.

    A ValueError, so code written against ``except ValueError`` keeps working. Validation code
    raises it (or a subclass: ``archbench.space.SpaceInfeasible``, ``archbench.cli.UsageError``);
    a plain ValueError from inside the library is a bug and is not caught by the CLI.

    Example:
        >>> issubclass(UserError, ValueError)
        True
    """
