"""The one lazy-loading mechanism: ``"module:attribute"`` strings imported on first use.

Architectures, degradations and the public API are found by name through :class:`LazyRegistry`, so importing
medsr (or one architecture) never imports the others, and a broken optional module only breaks what uses it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any


def load(target: str) -> Any:
    """The object a ``"package.module:attribute"`` string names, imported now."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class LazyRegistry(Mapping[str, Any]):
    """A read-only ``name -> object`` mapping that imports each object the first time it is asked for."""

    def __init__(self, targets: Mapping[str, str]) -> None:
        self._targets = dict(targets)
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            self._loaded[name] = load(self._targets[name])
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)
