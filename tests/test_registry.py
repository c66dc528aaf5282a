"""Registries: built-ins, entry-point plugins, the Hugging Face `datasets` collision."""
import sys
import types
from importlib.metadata import EntryPoint

import pytest

from benchmark.errors import UserError
from benchmark.registry import DATASETS, METHODS, Registry


def test_builtins_are_registered():
    assert "sift" in METHODS.names()
    assert {"demo", "mapfree"} <= set(DATASETS.names())


def test_entry_point_plugin(monkeypatch):
    mod = types.ModuleType("locbench_test_plugin")

    class Plugin:
        pass

    mod.Plugin = Plugin
    monkeypatch.setitem(sys.modules, "locbench_test_plugin", mod)
    reg = Registry("method", "locbench.methods", ())
    reg._entry_points = {"myplug": EntryPoint("myplug", "locbench_test_plugin:Plugin", "locbench.methods")}
    assert reg.get("myplug") is Plugin and Plugin.name == "myplug"
    assert reg.origin("myplug").startswith("built-in")  # loaded plugins are cached like built-ins
    reg._entry_points["broken"] = EntryPoint("broken", "locbench_no_such_module:X", "locbench.methods")
    with pytest.raises(UserError, match="plugin 'broken'.*failed to import"):
        reg.get("broken")


def test_wrong_datasets_package_is_named(monkeypatch):
    from benchmark.datasets_guard import ensure_our_datasets

    fake = types.ModuleType("datasets")
    fake.__file__ = "site-packages/datasets/__init__.py"
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(UserError, match="not locbench's datasets package"):
        ensure_our_datasets()
