"""Name -> class registries for methods and datasets.

Built-ins register with a decorator when their module is imported; third-party
packages add entries through the Python entry-point groups ``locbench.methods``
and ``locbench.datasets`` (value ``package.module:Class``), without touching
this repository. Solvers (``locbench.solvers``, see benchmark.solvers) and
protocols (``locbench.protocols``, see benchmark.protocols) load their plugins
with the same two helpers.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from importlib.metadata import entry_points

from .errors import UserError


def plugin_entry_points(group: str) -> dict:
    """name -> entry point of the installed packages' plugins in ``group``."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load_plugin(kind: str, group: str, ep):
    """The object an entry point names; a plugin that fails to import is the user's error, in one sentence."""
    try:
        return ep.load()
    except Exception as exc:  # a broken plugin must not look like our bug
        raise UserError(
            f"The {kind} plugin '{ep.name}' ({ep.value}, entry point group {group}) failed to import: {exc}."
        ) from exc


class Registry:
    def __init__(self, kind: str, group: str, builtin_modules: tuple[str, ...]):
        self.kind = kind
        self.group = group
        self._builtin_modules = builtin_modules
        self._classes: dict[str, type] = {}
        self._entry_points: dict[str, object] | None = None
        self._builtins_loaded = False

    def register(self, name: str):
        """Class decorator: ``@METHODS.register("sift")``."""

        def deco(cls):
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.name = name
            self._classes[name] = cls
            return cls

        return deco

    def unregister(self, name: str) -> None:
        """Forget the class registered under ``name`` (tests register their own classes for one test)."""
        self._classes.pop(name, None)

    @contextmanager
    def registered(self, name: str, cls: type):
        """``cls`` registered under ``name`` inside the ``with`` block only (a test's or a script's own class)."""
        self.register(name)(cls)
        try:
            yield cls
        finally:
            self.unregister(name)

    def _load_builtins(self):
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for mod in self._builtin_modules:
                importlib.import_module(mod)

    def _plugins(self) -> dict:
        if self._entry_points is None:
            self._entry_points = plugin_entry_points(self.group)
        return self._entry_points

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(set(self._classes) | set(self._plugins()))

    def origin(self, name: str) -> str:
        self._load_builtins()
        return "built-in" if name in self._classes else f"plugin ({self._plugins()[name].value})"

    def get(self, name: str) -> type:
        self._load_builtins()
        if name in self._classes:
            return self._classes[name]
        ep = self._plugins().get(name)
        if ep is None:
            raise UserError(
                f"Unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())} "
                f"(`python -m benchmark list` shows them)."
            )
        cls = load_plugin(self.kind, self.group, ep)
        cls.name = name
        self._classes[name] = cls
        return cls


METHODS = Registry("method", "locbench.methods", ("methods.builtin",))
DATASETS = Registry("dataset", "locbench.datasets", ("datasets.builtin",))
