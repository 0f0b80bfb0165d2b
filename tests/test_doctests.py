"""The examples in the package's docstrings are tests too: run them all."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import canary_deploy


def _modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.walk_packages(canary_deploy.__path__, prefix="canary_deploy.")
        if not m.name.endswith("__main__")
    )


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
