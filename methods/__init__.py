"""Matchers behind one interface (see methods.base.Matcher) and the plugin registry."""

from benchmark.registry import METHODS  # noqa: F401

from .base import Matcher  # noqa: F401
