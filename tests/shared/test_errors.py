"""One exception hierarchy (hrvs_ray/errors.py): every exception class of the package derives
from HrvsError, and bad input is a UserError (the command line maps it to exit 2 in one place:
tests/cli/test_errors.py)."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import hrvs_ray
from hrvs_ray.errors import HrvsError, UserError

# modules that import Ray or torch at the top are still walked: both are installed here
SKIP = {"hrvs_ray.__main__", "hrvs_ray.cli.__main__"}


def _exception_classes() -> dict[str, type]:
    found = {}
    for m in pkgutil.walk_packages(hrvs_ray.__path__, "hrvs_ray."):
        if m.name in SKIP:
            continue
        mod = importlib.import_module(m.name)
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == m.name:
                found[f"{m.name}.{name}"] = obj
    return found


@pytest.mark.slow
def test_every_project_exception_derives_from_the_base():
    classes = _exception_classes()
    assert len(classes) >= 15, sorted(classes)      # the walk found them (17 existed before the base)
    stray = sorted(n for n, c in classes.items() if not issubclass(c, HrvsError))
    assert not stray, f"derive these from hrvs_ray.errors.HrvsError: {stray}"


def test_bad_input_classes_are_user_errors_and_keep_their_builtin_base():
    from hrvs_ray.cluster.auth import ClusterAuthError
    from hrvs_ray.config import SweepError
    from hrvs_ray.store import ResultsError
    assert issubclass(SweepError, UserError) and issubclass(SweepError, ValueError)
    assert issubclass(ResultsError, UserError) and issubclass(ResultsError, RuntimeError)
    assert issubclass(ClusterAuthError, UserError) and issubclass(ClusterAuthError, ConnectionError)
