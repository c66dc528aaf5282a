"""Configs: YAML files under ``configs/`` merged in a fixed order, then ``--set`` overrides.

Order (later wins): ``configs/default.yaml`` < the dataset's defaults < ``configs/datasets/<name>.yaml``
< the method's defaults < ``configs/methods/<name>.yaml`` < an experiment file < ``--set key=value``.

Every key must already exist in the layer below it (the defaults declare the
schema), so a typo is an error that names the key instead of being ignored.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

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


def merge(base: dict, override: dict, source: str, prefix: str = "", open_keys: tuple[str, ...] = ()) -> dict:
    """Return ``base`` updated with ``override``; unknown keys are an error naming ``source``.

    Keys listed in ``open_keys`` (dotted) accept new sub-keys (free-form dicts such as ``dataset.extra``).
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in out and prefix.rstrip(".") not in open_keys:
            known = ", ".join(sorted(map(str, out))) or "(none)"
            raise UserError(f"Unknown config key '{dotted}' in {source}; known keys here: {known}.")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, source, dotted + ".", open_keys)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value typed by YAML: 3 -> int, 1.5 -> float, [1,2] -> list)."""
    if "=" not in text:
        raise UserError(f"Override '{text}' must look like key.path=value (e.g. --set method.max_keypoints=2048).")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"Override '{text}' has an empty key; write it as key.path=value.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def nested(keys: list[str], value: Any) -> dict:
    out: Any = value
    for k in reversed(keys):
        out = {k: out}
    return out


def get_dotted(cfg: dict, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"Unknown config key '{dotted}'.")
        node = node[part]
    return node


def apply_overrides(cfg: dict, overrides: list[str], open_keys: tuple[str, ...] = ()) -> dict:
    for text in overrides:
        keys, value = parse_override(text)
        cfg = merge(cfg, nested(keys, value), f"--set {text}", open_keys=open_keys)
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


def _section_defaults(kind: str, name: str) -> tuple[dict, dict, tuple[str, ...]]:
    """(section defaults incl. name/label, the preset file's contents, open keys) for a method or dataset."""
    from .registry import DATASETS, METHODS

    cls_name, data = named_config(kind, name)
    cls = (METHODS if kind == "method" else DATASETS).get(cls_name)
    section = {"name": cls_name, "label": name, **copy.deepcopy(cls.default_conf)}
    open_keys = tuple(f"{kind}.{k}" for k in getattr(cls, "open_conf_keys", ()))
    data = copy.deepcopy(data)
    if kind in data:
        data[kind] = {k: v for k, v in data[kind].items() if k != "name"}
    return section, data, open_keys


def resolve(method: str | None, dataset: str | None, experiment: str | Path | None = None,
            overrides: list[str] = ()) -> dict:
    """The full run config, every layer merged and validated (see the module docstring)."""
    cfg = load_yaml(CONFIG_DIR / "default.yaml")
    exp = load_yaml(Path(experiment)) if experiment else {}
    exp.pop("sweep", None)
    exp_method, exp_dataset = dict(exp.pop("method", {}) or {}), dict(exp.pop("dataset", {}) or {})
    method = method or exp_method.pop("name", None)
    dataset = dataset or exp_dataset.pop("name", None)
    exp_method.pop("name", None)
    exp_dataset.pop("name", None)
    if not method or not dataset:
        raise UserError("Say which method and dataset to run: --method NAME --dataset NAME "
                        "(or an experiment file that names them).")
    open_keys: tuple[str, ...] = ()
    for kind, name in (("dataset", dataset), ("method", method)):
        section, data, keys = _section_defaults(kind, name)
        open_keys += keys
        cfg[kind] = section
        source = f"configs/{kind}s/{name}.yaml"
        cfg = merge(cfg, data, source, open_keys=open_keys)
    if experiment:
        exp["method"], exp["dataset"] = exp_method, exp_dataset
        cfg = merge(cfg, exp, str(experiment), open_keys=open_keys)
    return apply_overrides(cfg, list(overrides), open_keys)


def section_hash(cfg: dict, kind: str) -> str:
    return config_hash({k: v for k, v in cfg[kind].items() if k != "label"})
