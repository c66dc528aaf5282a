"""Building DUSt3R/MASt3R networks from released checkpoints, safely.

Accepted inputs of :func:`load_model`:
- an official ``.pth`` (dict with ``model`` = state dict and ``args`` = ``argparse.Namespace`` whose
  ``model`` field is the constructor call as a string); read with ``weights_only=True`` and only
  ``argparse.Namespace`` allow-listed; the string is parsed with ``ast`` (no ``eval``);
- a bare state dict (``.pth`` or ``.safetensors``) plus ``config=`` (constructor string, kwargs dict or
  ``config.json``);
- a Hugging Face folder (``config.json`` + ``model.safetensors``), whose file drops the aliased
  ``dpt.scratch.layer_rn.N`` keys;
- a known weights name (see :data:`KNOWN_NAMES`), resolved through ``methods.weights``.
Non-official head widths (the tiny fixtures) come from the checkpoint's ``head_widths`` entry,
``head_widths.json`` beside a Hugging Face folder, or ``head_widths=``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.errors import UserError
from methods.checkpoints import first_line, fit_problems, read_weights, shapes

from .heads import HeadWidths
from .model import NETWORKS, Dust3rNet, Mast3rNet
from .releases import DISPLAY, DUST3R_DEFAULT, KNOWN_NAMES, MAST3R_DEFAULT, RELEASED_CONSTRUCTORS, resolve_weights  # noqa: F401  (re-exported)

HEAD_WIDTH_KEYS = tuple(f.name for f in dataclasses.fields(HeadWidths))
_ALIAS = re.compile(r"^(.*\.scratch\.)(?:layer_rn\.(\d)|layer(\d)_rn)\.weight$")


@dataclass
class NetworkSpec:
    """Which class to build (its official name) and with which keyword arguments."""

    class_name: str
    kwargs: dict

    @property
    def family(self) -> str:
        return NETWORKS[self.class_name].family

    def inference_form(self) -> "NetworkSpec":
        """What the official loaders instantiate: PatchEmbedDust3R and landscape_only=False."""
        kwargs = dict(self.kwargs)
        if kwargs.get("patch_embed_cls") == "ManyAR_PatchEmbed":
            kwargs["patch_embed_cls"] = "PatchEmbedDust3R"
        kwargs["landscape_only"] = False
        return NetworkSpec(self.class_name, kwargs)

    def constructor(self) -> str:
        return f"{self.class_name}({', '.join(f'{k}={_literal_repr(v)}' for k, v in self.kwargs.items())})"


def _literal_repr(value) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal_repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


# -------------------------------------------------------------------------------------------------
# constructor strings
def _literal(node: ast.AST, text: str):
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(e, text) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, text)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name) and node.id == "inf":
        return math.inf
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "float"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and str(node.args[0].value).strip().lstrip("+-").lower() in ("inf", "infinity")
    ):
        return float(node.args[0].value)
    raise UserError(
        f"The model constructor string contains '{ast.get_source_segment(text, node)}', which is not a "
        "literal (only strings, numbers, booleans, None, tuples and inf are allowed)."
    )


def accepted_arguments(cls) -> list:
    names = []
    for klass in (cls, Dust3rNet) if cls is Mast3rNet else (cls,):
        names += [
            p.name
            for p in inspect.signature(klass.__init__).parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"
        ]
    return names


def parse_constructor(text: str) -> NetworkSpec:
    """``"AsymmetricMASt3R(pos_embed='RoPE100', ...)"`` (or a released network's name) -> NetworkSpec,
    without evaluating anything."""
    text = RELEASED_CONSTRUCTORS.get(text, text)
    try:
        tree = ast.parse(str(text).strip(), mode="eval")
    except SyntaxError:
        raise UserError(f"The model constructor string {text!r} is not a valid call expression.") from None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, (ast.Name, ast.Attribute)):
        raise UserError(f"The model constructor string {text!r} is not a call like AsymmetricMASt3R(...).")
    name = call.func.id if isinstance(call.func, ast.Name) else call.func.attr
    if name not in NETWORKS:
        raise UserError(
            f"Unknown model class '{name}' in the constructor string; expected one of {', '.join(NETWORKS)}."
        )
    if call.args or any(k.arg is None for k in call.keywords):
        raise UserError(f"The model constructor string for {name} must use keyword arguments only.")
    kwargs = {k.arg: _literal(k.value, text) for k in call.keywords}
    return make_spec(name, kwargs)


def make_spec(class_name: str, kwargs: dict) -> NetworkSpec:
    if class_name not in NETWORKS:
        raise UserError(f"Unknown model class '{class_name}'; expected one of {', '.join(NETWORKS)}.")
    accepted = accepted_arguments(NETWORKS[class_name])
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise UserError(f"Unknown argument(s) {', '.join(unknown)} for {class_name}; accepted: {', '.join(accepted)}.")
    return NetworkSpec(class_name, dict(kwargs))


def spec_from_config(config) -> NetworkSpec:
    """config: NetworkSpec; constructor string or a released network's name; ``argparse.Namespace`` with a
    ``model`` string; dict with a ``model``/``constructor`` string (and optionally ``head_widths``, like the
    fixtures' meta.json) or of constructor kwargs (Hugging Face ``config.json``; the class is told by
    ``output_mode``); or a path to such a JSON file."""
    if isinstance(config, NetworkSpec):
        return config
    if isinstance(config, (str, Path)) and str(config).endswith(".json"):
        return spec_from_config(_read_json(Path(config)))
    if isinstance(config, str):
        return parse_constructor(config)
    if isinstance(config, argparse.Namespace) and isinstance(getattr(config, "model", None), str):
        return with_head_widths(parse_constructor(config.model), getattr(config, "head_widths", None))
    if isinstance(config, dict):
        config = dict(config)
        widths = config.pop("head_widths", None)
        text = next((config[k] for k in ("model", "constructor") if isinstance(config.get(k), str)), None)
        if text is not None:
            return with_head_widths(parse_constructor(text), widths)
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        mast3r = str(kwargs.get("output_mode", "")).startswith("pts3d+desc") or any(
            k in kwargs for k in ("desc_mode", "two_confs", "desc_conf_mode")
        )
        return with_head_widths(
            make_spec(Mast3rNet.official_name if mast3r else Dust3rNet.official_name, kwargs), widths
        )
    raise UserError(
        f"config must be a constructor string, a dict of constructor arguments or a config.json path, "
        f"got {type(config).__name__}."
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"The model config {path} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"The model config {path} is not valid JSON ({exc}).") from None


def with_head_widths(spec: NetworkSpec, head_widths: dict | None, source: str = "head_widths") -> NetworkSpec:
    if not head_widths:
        return spec
    unknown = [k for k in head_widths if k not in HEAD_WIDTH_KEYS]
    if unknown:
        raise UserError(
            f"Unknown head width(s) {', '.join(unknown)} in {source}; accepted: {', '.join(HEAD_WIDTH_KEYS)}."
        )
    return NetworkSpec(
        spec.class_name, {**spec.kwargs, **{k: tuple(v) if isinstance(v, list) else v for k, v in head_widths.items()}}
    )


def build_network(spec, device=None):
    """Instantiate (on ``device``; "meta" allocates nothing) from a NetworkSpec/string/dict, in eval mode."""
    spec = spec_from_config(spec)
    with torch.device(device or "cpu"):
        net = NETWORKS[spec.class_name](**spec.kwargs)
    net.spec = spec
    return net.eval()


# -------------------------------------------------------------------------------------------------
# files
@dataclass
class CheckpointContent:
    state_dict: dict
    spec: NetworkSpec | None = None
    head_widths: dict | None = None


def _torch_load(path: Path):
    return read_weights(path, "DUSt3R/MASt3R", (argparse.Namespace,))


def _safetensors_load(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(
            f"{path} is truncated or not a safetensors file ({first_line(exc)}); download it again."
        ) from None


def _check_tensors(sd, path) -> dict:
    if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
        raise UserError(f"{path} holds no state dict of tensors; expected an official DUSt3R/MASt3R checkpoint.")
    return sd


def read_checkpoint(path: Path) -> CheckpointContent:
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
            raise UserError(f"The folder {path} is not a Hugging Face model folder (config.json + model.safetensors).")
        widths = _read_json(path / "head_widths.json") if (path / "head_widths.json").exists() else None
        return CheckpointContent(
            _check_tensors(_safetensors_load(path / "model.safetensors"), path),
            spec_from_config(_read_json(path / "config.json")),
            widths,
        )
    if path.suffix == ".safetensors":
        if (path.parent / "config.json").exists() and path.name == "model.safetensors":
            return read_checkpoint(path.parent)
        return CheckpointContent(_check_tensors(_safetensors_load(path), path))
    obj = _torch_load(path)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        args = obj.get("args")
        text = args.get("model") if isinstance(args, dict) else getattr(args, "model", None)
        widths = obj.get("head_widths") or (
            args.get("head_widths") if isinstance(args, dict) else getattr(args, "head_widths", None)
        )
        return CheckpointContent(
            _check_tensors(obj["model"], path), parse_constructor(text) if isinstance(text, str) else None, widths
        )
    return CheckpointContent(_check_tensors(obj, path))


def _with_aliases(sd: dict, expected) -> dict:
    """Fill the ``layer_rn.N`` <-> ``layerN+1_rn`` twin keys (Hugging Face files keep only one name)."""
    sd = dict(sd)
    for key in expected:
        m = _ALIAS.match(key)
        if m is None or key in sd:
            continue
        prefix, idx, num = m.groups()
        twin = (
            f"{prefix}layer{int(idx) + 1}_rn.weight" if idx is not None else f"{prefix}layer_rn.{int(num) - 1}.weight"
        )
        if twin in sd:
            sd[key] = sd[twin]
    return sd


def _fitting(net, state_dict: dict, source: str) -> dict:
    """The state dict (aliases filled) when every key is present, none extra, all shapes equal."""
    sd = _with_aliases(state_dict, net.state_dict())
    problems = fit_problems(shapes(net.state_dict()), shapes(sd))
    if problems:
        raise UserError(
            f"{source} does not fit the {type(net).official_name} built from its configuration "
            f"({'; '.join(problems)}); give the matching file."
        )
    return sd


def load_weights(net, state_dict: dict, source: str = "the state dict"):
    """Strict load: every key present, none extra, same shapes; tensors are used in place (float32)."""
    sd = _fitting(net, state_dict, source)
    sd = {k: (v.float() if v.is_floating_point() and v.dtype != torch.float32 else v) for k, v in sd.items()}
    net.load_state_dict(sd, strict=True, assign=True)
    return net


# -------------------------------------------------------------------------------------------------
def _network_and_weights(path_or_name, config, head_widths, expect, inference_form, allow_download):
    """The network a checkpoint describes (built on the meta device: no memory) and the file's state dict."""
    if expect not in (None, "mast3r", "dust3r"):
        raise ValueError(f"expect must be None, 'mast3r' or 'dust3r', got {expect!r}")
    path = resolve_weights(path_or_name, allow_download)
    content = read_checkpoint(path)
    spec = spec_from_config(config) if config is not None else content.spec
    if spec is None:
        raise UserError(
            f"{path} is a bare state dict: pass config= with the constructor string "
            '(e.g. "AsymmetricMASt3R(...)") or a config.json.'
        )
    if expect is not None and spec.family != expect:
        wanted = MAST3R_DEFAULT if expect == "mast3r" else DUST3R_DEFAULT
        raise UserError(
            f"{path} holds a {DISPLAY[spec.family]} network ({spec.class_name}) but a "
            f"{DISPLAY[expect]} one is needed here; use e.g. {wanted}.pth."
        )
    spec = with_head_widths(spec, content.head_widths, f"{path}")
    spec = with_head_widths(spec, head_widths)
    if inference_form:
        spec = spec.inference_form()
    return build_network(spec, device="meta"), content.state_dict, path


def check_checkpoint(path_or_name, expect: str | None = None) -> None:
    """Everything :func:`load_model` checks (readable, a checkpoint, the family, every key and shape), reading
    only the file's keys and shapes (zip checkpoints are memory-mapped) and allocating no network."""
    net, state_dict, path = _network_and_weights(path_or_name, None, None, expect, True, False)
    _fitting(net, state_dict, str(path))


def load_model(
    path_or_name=None,
    device="cpu",
    *,
    config=None,
    head_widths: dict | None = None,
    expect: str | None = None,
    inference_form: bool = True,
    allow_download: bool = False,
):
    """Build the network a checkpoint describes, load its weights strictly, return it in eval mode on ``device``.

    config: overrides/supplies the constructor (needed for bare state dicts). expect: "mast3r" or "dust3r"
    to refuse the other family. inference_form: rewrite ManyAR_PatchEmbed -> PatchEmbedDust3R and
    landscape_only -> False, as the official loaders do.
    """
    net, state_dict, path = _network_and_weights(
        path_or_name, config, head_widths, expect, inference_form, allow_download
    )
    load_weights(net, state_dict, str(path))
    net.source = str(path)
    return net.to(device).eval()
