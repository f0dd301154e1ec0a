"""The one exception hierarchy of hrvs-ray.

Every exception the project raises on purpose derives from :class:`HrvsError`. Those that
mean "bad input: nothing ran" derive from :class:`UserError`; the command line maps them to
exit status 2 in one place (``hrvs_ray.cli.main``), printing only their message. Anything
else that escapes a command is a bug or an environment failure and keeps its traceback.

Each class also keeps the built-in base it had before the hierarchy existed (ValueError,
RuntimeError, ConnectionError), so callers that catch those still do.

This module is pure: it imports nothing of the project, so every layer may import it.
"""
from __future__ import annotations


class HrvsError(Exception):
    """Base of every exception hrvs-ray raises on purpose."""


class UserError(HrvsError):
    """Bad input (a sweep file, a folder, a flag, an unreachable cluster): nothing ran, exit 2.
    The message must name what is wrong and, where it helps, how to fix it."""


class InternalError(HrvsError, RuntimeError):
    """A process, node or kernel of ours failed while running a cell; recorded as the cell's
    cause, never shown as a bad-input error."""
