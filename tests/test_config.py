"""Config layering, --set overrides and unknown-key errors."""
import pytest

from benchmark.config import apply_overrides, config_hash, merge, parse_override, resolve
from benchmark.errors import UserError


def test_merge_rejects_unknown_key_and_names_it():
    with pytest.raises(UserError, match=r"Unknown config key 'solver\.ransac\.max_eror' in test"):
        merge({"solver": {"ransac": {"max_error": 1.0}}}, {"solver": {"ransac": {"max_eror": 2}}}, "test")


def test_overrides_are_typed_by_yaml():
    cfg = {"a": {"b": 1, "c": "x", "d": None, "e": [1]}}
    out = apply_overrides(cfg, ["a.b=2.5", "a.c=hello world", "a.d=null", "a.e=[1, 2]"])
    assert out == {"a": {"b": 2.5, "c": "hello world", "d": None, "e": [1, 2]}}
    assert cfg["a"]["b"] == 1  # inputs untouched


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1"])
def test_malformed_override(bad):
    with pytest.raises(UserError):
        parse_override(bad)


def test_resolve_layers_and_validation():
    cfg = resolve("sift", "demo", overrides=["method.max_keypoints=2048", "solver.ransac.max_error=1.5"])
    assert cfg["method"]["name"] == "sift" and cfg["method"]["max_keypoints"] == 2048
    assert cfg["solver"]["ransac"]["max_error"] == 1.5
    assert cfg["dataset"]["name"] == "demo" and cfg["dataset"]["depth"] == "gt"
    with pytest.raises(UserError, match=r"Unknown config key 'method\.max_kp'"):
        resolve("sift", "demo", overrides=["method.max_kp=1"])
    with pytest.raises(UserError, match="Unknown method 'nosuch'"):
        resolve("nosuch", "demo")
    with pytest.raises(UserError, match="Unknown dataset 'nosuch'"):
        resolve("sift", "nosuch")


def test_experiment_file(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("method: {name: sift, ratio: 0.9}\ndataset: {name: demo}\nsolver: {min_matches: 12}\nsweep: {}\n")
    cfg = resolve(None, None, exp)
    assert cfg["method"]["ratio"] == 0.9 and cfg["solver"]["min_matches"] == 12
    exp.write_text("method: {name: sift}\ndataset: {name: demo}\nsolver: {min_matchez: 12}\n")
    with pytest.raises(UserError, match="min_matchez"):
        resolve(None, None, exp)


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
