"""Configs: YAML files under ``configs/`` merged in a fixed order, then ``--set`` overrides.

Order (later wins): ``configs/default.yaml`` < the dataset's defaults < ``configs/datasets/<name>.yaml``
< the method's defaults < ``configs/methods/<name>.yaml`` < an experiment file < ``--set key=value``.

Every key must already exist in the layer below it (the defaults declare the
schema), so a typo is an error that names the key instead of being ignored; every value is
checked against the key's type (``benchmark.config_types``) as its layer is merged, so a wrong
type is an error naming the key, the type and the layer before any work.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from .config_types import Key, build_schema, check_value, class_schema, lookup, wants_text
from .errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"


def load_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Config file {path} does not exist; check the path.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise UserError(f"Config file {path}{line} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax.")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"Config file {path} must hold a mapping of keys to values, not {type(data).__name__}.")
    return data


def merge(base: dict, override: dict, source: str, prefix: str = "", schema: dict | None = None) -> dict:
    """Return ``base`` updated with ``override``, every value checked against ``schema`` (default: the
    types of ``base``) and normalised; an unknown key or a wrong type is an error naming ``source``."""
    schema = build_schema(base, {}) if schema is None else schema
    if not isinstance(override, dict):
        raise UserError(
            f"{prefix.rstrip('.') or 'The config'} in {source} must be a mapping of keys to values, not {override!r}."
        )
    out = copy.deepcopy(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        spec = schema.get(key)
        if spec is None:
            known = ", ".join(sorted(map(str, schema))) or "(none)"
            raise UserError(f"Unknown config key '{dotted}' in {source}; known keys here: {known}.")
        if isinstance(spec, dict):
            if value is None:  # an empty section in a YAML file
                continue
            if not isinstance(value, dict):
                raise UserError(
                    f"{dotted} is a section of keys ({', '.join(spec)}), not a value: set one of "
                    f"them (e.g. {dotted}.{next(iter(spec), 'KEY')}=...) instead of {value!r} (in {source})."
                )
            out[key] = merge(out.get(key) or {}, value, source, dotted + ".", spec)
        elif spec.type is dict and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **copy.deepcopy(value)}  # a free-form mapping takes new sub-keys
        else:
            out[key] = check_value(spec, copy.deepcopy(value), dotted, source)
    return out


def parse_override(text: str) -> tuple[list[str], str]:
    """``a.b.c=value`` -> (["a", "b", "c"], "value"); the value is typed by :func:`override_value`."""
    if "=" not in text:
        raise UserError(f"Override '{text}' must look like key.path=value (e.g. --set method.max_keypoints=2048).")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"Override '{text}' has an empty key; write it as key.path=value.")
    return key.split("."), raw


def override_value(raw: str, key=None) -> Any:
    """An override's value typed by YAML (3 -> int, 1.5 -> float, [1, 2] -> list, null -> None), except
    that a key holding strings takes the text as written (a CO3D sequence 110_13051_23361 is no number)."""
    if not raw.strip():
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if value is not None and key is not None and wants_text(key):
        try:
            return yaml.load(raw, Loader=yaml.BaseLoader)  # every scalar a string
        except yaml.YAMLError:
            return raw
    return value


def nested(keys: list[str], value: Any) -> dict:
    out: Any = value
    for k in reversed(keys):
        out = {k: out}
    return out


def apply_overrides(cfg: dict, overrides: list[str], schema: dict | None = None) -> dict:
    schema = build_schema(cfg, {}) if schema is None else schema
    for text in overrides:
        keys, raw = parse_override(text)
        value = override_value(raw, lookup(schema, keys))
        cfg = merge(cfg, nested(keys, value), f"--set {text}", schema=schema)
    return cfg


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable hash of a JSON-able config section (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def named_config(kind: str, name: str) -> tuple[str, dict]:
    """Read ``configs/<kind>s/<name>.yaml`` if present. Returns (registered class name, file contents).

    A YAML file may be a preset of a registered class (``method: {name: superglue, weights: indoor}``
    in ``configs/methods/superglue_indoor.yaml``); without a file the name is the class name.
    """
    path = CONFIG_DIR / f"{kind}s" / f"{name}.yaml"
    if not path.is_file():
        return name, {}
    data = load_yaml(path)
    section = data.get(kind, {})
    if not isinstance(section, dict):
        raise UserError(f"Config file {path}: '{kind}' must be a mapping.")
    return section.get("name", name), data


META_KEYS = ("name", "label")  # in the method/dataset sections: registered class and preset name

# What the defaults of configs/default.yaml cannot say (see benchmark.config_types).
CORE_TYPES = {
    "run.seed": Key(int, min=0),
    "run.output": str | None,
    "run.shard_size": Key(int, min=1),
    "run.max_samples": Key(int | None, min=1),
    "run.bootstrap": Key(int, min=0),
    "run.torch_threads": Key(int, min=1),
    "run.pipeline": Key(str | bool, choices=("auto", True, False)),
    "run.pipeline_threads": Key(int | None, min=1),
    "run.read_threads": Key(int, min=1),
    "run.read_ahead": Key(int, min=1),
    "run.solve_queue": Key(int, min=1),
    "run.viz_worst": Key(int, min=0),
    "run.plots_log_x": Key(str | bool, choices=("auto", True, False)),
    "solver.min_matches": Key(int, min=1),
    "solver.confidence": Key(str, choices=("inliers", "inlier_ratio", "mean_score")),
    "solver.scale_threshold": Key(float, above=0),
    "solver.lift": Key(str, choices=("nearest", "pointmap", "auto")),
    "solver.lift_radius": Key(float, above=0),
    # a list is a threshold sweep
    "solver.ransac.max_error": Key(float | list[float], above=0),
    "solver.ransac.confidence": Key(float, above=0, max=1),
    "solver.ransac.min_iterations": Key(int, min=1),
    "solver.ransac.max_iterations": Key(int, min=1),
    "executor.name": Key(str, choices=("local", "ray")),
    "executor.address": str | None,
    "executor.num_cpus": Key(int | None, min=1),
    "executor.cpus_per_task": Key(float, above=0),
    "executor.gpus_per_task": Key(float, min=0),
}


def _section(kind: str, name: str) -> tuple[dict, dict, dict]:
    """(section defaults incl. name/label, its schema, the preset file's contents) for a method or dataset."""
    from .registry import DATASETS, METHODS

    cls_name, data = named_config(kind, name)
    cls = (METHODS if kind == "method" else DATASETS).get(cls_name)
    section = {"name": cls_name, "label": name, **copy.deepcopy(cls.default_conf)}
    schema = {**{k: Key(str) for k in META_KEYS}, **class_schema(cls)}
    data = copy.deepcopy(data)
    if isinstance(data.get(kind), dict):
        data[kind] = {k: v for k, v in data[kind].items() if k != "name"}
    return section, schema, data


def read_experiment(experiment: str | Path | None) -> tuple[dict, dict | None]:
    """An experiment file's layer, and its ``sweep:`` ({key: [values]}; None when it has none)."""
    exp = load_yaml(Path(experiment)) if experiment else {}
    sweep = exp.pop("sweep", None)
    if sweep in (None, {}):
        return exp, None
    if not (isinstance(sweep, dict) and len(sweep) == 1 and isinstance(next(iter(sweep)), str)):
        raise UserError(
            f"sweep: in {experiment} must map one dotted key to its values "
            f"(e.g. sweep: {{method.frm.max_iter: [1, 2, 3]}}), not {sweep!r}."
        )
    key, values = next(iter(sweep.items()))
    values = values if isinstance(values, list) else [values]
    if not values:
        raise UserError(f"sweep: {key} in {experiment} lists no values; give at least one.")
    return exp, {key: values}


def resolve(
    method: str | None,
    dataset: str | None,
    experiment: str | Path | None = None,
    overrides: list[str] = (),
    allow_sweep: bool = False,
) -> dict:
    """The full run config, every layer merged and type-checked (see the module docstring).

    An experiment file with a ``sweep:`` is refused unless ``allow_sweep`` (``ablate`` runs it)."""
    cfg = load_yaml(CONFIG_DIR / "default.yaml")
    schema = build_schema(cfg, CORE_TYPES)
    cfg = merge({}, cfg, "configs/default.yaml", schema=schema)
    exp, sweep = read_experiment(experiment)
    if sweep and not allow_sweep:
        key = next(iter(sweep))
        raise UserError(
            f"{experiment} has a sweep: of {key}, which only `python -m benchmark ablate --experiment "
            f"{experiment}` runs; remove the sweep: key to use the file here."
        )
    exp_method, exp_dataset = exp.pop("method", {}) or {}, exp.pop("dataset", {}) or {}
    for kind, part in (("method", exp_method), ("dataset", exp_dataset)):
        if not isinstance(part, dict):
            raise UserError(f"{kind}: in {experiment} must be a mapping of keys to values, not {part!r}.")
    exp_method, exp_dataset = dict(exp_method), dict(exp_dataset)
    method = method or exp_method.pop("name", None)
    dataset = dataset or exp_dataset.pop("name", None)
    exp_method.pop("name", None)
    exp_dataset.pop("name", None)
    if not method or not dataset:
        raise UserError(
            "Say which method and dataset to run: --method NAME --dataset NAME (or an experiment file that names them)."
        )
    for kind, name in (("dataset", dataset), ("method", method)):
        section, schema[kind], data = _section(kind, name)
        cfg[kind] = merge({}, section, f"the '{name}' {kind} defaults", f"{kind}.", schema[kind])
        cfg = merge(cfg, data, f"configs/{kind}s/{name}.yaml", schema=schema)
    if experiment:
        exp["method"], exp["dataset"] = exp_method, exp_dataset
        cfg = merge(cfg, exp, str(experiment), schema=schema)
    return apply_overrides(cfg, list(overrides), schema)


def section_hash(cfg: dict, kind: str) -> str:
    return config_hash({k: v for k, v in cfg[kind].items() if k != "label"})
