"""Error types: input the user can fix (a file, an option, a name) versus bugs in archbench.

The CLI prints a ``UserError`` as one line with exit status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """Bad input the user can fix; the message names the file, key path or option at fault.

    A ValueError, so code written against ``except ValueError`` keeps working. Validation code
    raises it (or a subclass: ``archbench.space.SpaceInfeasible``, ``archbench.cli.UsageError``);
    a plain ValueError from inside the library is a bug and is not caught by the CLI.

    Example:
        >>> issubclass(UserError, ValueError)
        True
    """
