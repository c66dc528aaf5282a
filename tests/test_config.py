"""Config layering, --set overrides and unknown-key errors."""

import re

import pytest

from benchmark.config import apply_overrides, config_hash, merge, parse_override, resolve
from benchmark.config_types import Key, check_value, undeclared_nulls
from benchmark.errors import UserError


def test_merge_rejects_unknown_key_and_names_it():
    with pytest.raises(UserError, match=r"Unknown config key 'solver\.ransac\.max_eror' in test"):
        merge({"solver": {"ransac": {"max_error": 1.0}}}, {"solver": {"ransac": {"max_eror": 2}}}, "test")


def test_overrides_are_typed_by_yaml_and_checked_against_the_defaults():
    cfg = {"a": {"b": 1.0, "c": "x", "e": [1]}}
    out = apply_overrides(cfg, ["a.b=2", "a.c=hello world", "a.e=[1, 2]"])
    assert out == {"a": {"b": 2.0, "c": "hello world", "e": [1, 2]}} and isinstance(out["a"]["b"], float)
    assert cfg["a"]["b"] == 1.0  # inputs untouched
    with pytest.raises(UserError, match=r"^a\.b must be a number, not 'abc' \(in --set a\.b=abc\)\.$"):
        apply_overrides(cfg, ["a.b=abc"])
    with pytest.raises(UserError, match=r"^a is a section of keys \(b, c, e\)"):
        apply_overrides(cfg, ["a=3"])


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
    exp.write_text("method: {name: sift, max_keypoints: many}\ndataset: {name: demo}\n")
    with pytest.raises(UserError, match=f"method.max_keypoints must be an integer, not 'many' \\(in {exp}\\)"):
        resolve(None, None, exp)


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


@pytest.mark.parametrize(
    "override, message",
    [
        ("run.shard_size=abc", "run.shard_size must be an integer >= 1, not 'abc'"),
        ("run.shard_size=0", "run.shard_size must be an integer >= 1, not 0"),
        ("run.bootstrap=-1", "run.bootstrap must be an integer >= 0, not -1"),
        ("run.max_samples=1.5", "run.max_samples must be an integer >= 1 or null, not 1.5"),
        ("run.seed=[1,2]", "run.seed must be an integer >= 0, not [1, 2]"),
        ("run.plots=1", "run.plots must be true or false, not 1"),
        ("solver.ransac.max_error=abc", "solver.ransac.max_error must be a number or a list of numbers > 0, not 'abc'"),
        ("solver.ransac.max_error=[1, -2]", "solver.ransac.max_error must be a number or a list of numbers > 0"),
        ("solver.ransac.confidence=1.5", "solver.ransac.confidence must be a number in (0, 1], not 1.5"),
        ("solver.confidence=best", "solver.confidence must be one of inliers, inlier_ratio, mean_score, not 'best'"),
        ("method.ratio=0", "method.ratio must be a number in (0, 1] or null, not 0"),
        ("dataset.split=train2", "dataset.split must be one of train, val, test, not 'train2'"),
        ("executor.num_cpus=0", "executor.num_cpus must be an integer >= 1 or null, not 0"),
    ],
)
def test_wrong_types_and_ranges_name_key_type_value_and_layer(override, message):
    with pytest.raises(UserError, match=re.escape(message) + rf".* \(in --set {re.escape(override)}\)\.$"):
        resolve("sift", "demo", overrides=[override])


def test_values_are_normalised():
    cfg = resolve(
        "sift",
        "demo",
        overrides=[
            "dataset.scenes=s90000",
            "solver.ransac.max_error=2",
            "solver.ransac.confidence=1",
            "method.ratio=null",
        ],
    )
    assert cfg["dataset"]["scenes"] == ["s90000"]  # one string for a list key: a one-element list
    assert cfg["solver"]["ransac"]["max_error"] == 2.0 and isinstance(cfg["solver"]["ransac"]["max_error"], float)
    assert cfg["method"]["ratio"] is None and cfg["executor"]["cpus_per_task"] == 1.0
    sweep = resolve("sift", "demo", overrides=["solver.ransac.max_error=[1, 2.5]"])["solver"]["ransac"]["max_error"]
    assert sweep == [1.0, 2.5] and all(isinstance(v, float) for v in sweep)  # a threshold sweep
    # a key holding strings takes the text as written: YAML would read 110_13051_23361 as an integer
    cfg = resolve("sift", "co3d", overrides=["dataset.sequences=110_13051_23361", "dataset.root=0123"])
    assert cfg["dataset"]["sequences"] == ["110_13051_23361"] and cfg["dataset"]["root"] == "0123"
    cfg = resolve("sift", "co3d", overrides=["dataset.sequences=[110_13051_23361, apple]"])
    assert cfg["dataset"]["sequences"] == ["110_13051_23361", "apple"]


def test_numbers_in_a_file_for_a_string_key_say_to_quote(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("method: {name: sift}\ndataset: {name: co3d, sequences: [110_13051_23361]}\n")
    with pytest.raises(
        UserError,
        match="dataset.sequences must be a list of strings or null, not \\[1101305123361\\] "
        ".*put a value that looks like a number in quotes",
    ):
        resolve(None, None, exp)


def test_key_types_and_their_words():
    assert check_value(Key(float | list[float], above=0), 3, "k", "s") == 3.0
    assert check_value(Key(list[str] | None), "a", "k", "s") == ["a"]
    assert check_value(Key(list[str] | None), None, "k", "s") is None
    assert check_value(Key(int, min=0, below=10), 9, "k", "s") == 9
    assert Key(float, min=0, below=1).describe() == "a number in [0, 1)"
    assert Key(str | None, choices=("a", "b")).describe() == "one of a, b, null"
    for bad, key in ((True, Key(int)), (1, Key(bool)), (10, Key(int, below=10)), ("x", Key(list[int]))):
        with pytest.raises(UserError):
            check_value(key, bad, "k", "s")


def test_every_null_default_of_a_builtin_declares_its_type():
    from benchmark.registry import DATASETS, METHODS

    for registry in (METHODS, DATASETS):
        for name in registry.names():
            assert undeclared_nulls(registry.get(name)) == [], name


def test_experiment_sweep_is_refused_by_run(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("method: {name: sift}\ndataset: {name: demo}\nsweep: {method.ratio: [0.7, 0.8]}\n")
    with pytest.raises(UserError, match="has a sweep: of method.ratio, which only `python -m benchmark ablate "):
        resolve(None, None, exp)
    assert resolve(None, None, exp, allow_sweep=True)["method"]["ratio"] == 0.8


def test_the_example_experiment_resolves_and_only_ablate_runs_its_sweep():
    from benchmark.config import CONFIG_DIR
    from benchmark.errors import UserError

    path = CONFIG_DIR / "experiments/frm_max_iter.yaml"
    cfg = resolve(None, None, path, [], allow_sweep=True)
    assert cfg["method"]["name"] == "mast3r" and cfg["dataset"]["name"] == "demo" and cfg["run"]["max_samples"] == 10
    with pytest.raises(UserError, match="sweep: of method.frm.max_iter"):
        resolve(None, None, path, [])
