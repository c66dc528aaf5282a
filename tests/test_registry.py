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


def test_a_class_registered_for_one_test_is_gone_afterwards():
    reg = Registry("method", "locbench.no_such_group", ())

    class Probe:
        pass

    with reg.registered("probe", Probe):
        assert reg.get("probe") is Probe and Probe.name == "probe"
    with pytest.raises(UserError, match="Unknown method 'probe'"):
        reg.get("probe")
    other = reg.register("probe")(type("Other", (), {}))  # the name is free again
    reg.unregister("probe")
    assert "probe" not in reg.names() and other.name == "probe"


def test_registries_hold_no_test_classes():
    """Tests register their classes through the ``register`` fixture (removed after the test), never at
    import: every test module is imported before the first test runs, so a stray shows here."""
    for reg in (METHODS, DATASETS):
        reg.names()
        strays = {
            n: c.__module__ for n, c in reg._classes.items() if not c.__module__.startswith(("methods.", "datasets."))
        }
        assert not strays, f"{reg.kind}s registered outside methods/ and datasets/: {strays}"


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
