"""Tables comparing runs: only runs over the same evaluation set share a table.

A table holds the runs of one protocol (and protocol version) over one evaluation set: the dataset
and its config (split, scenes, frames, pair list, ...; not its folder), ``run.max_samples`` and the
content of the data (``provenance.json``'s ``data_hash``). Its heading says what defines it. A row is
labelled by its method plus the config keys (method, solver, seed) that differ from the method's
preset; rows whose weights are not a known released file are marked; failed samples are counted.
Published reference rows (``configs/published/*.yaml``) are marked ``[published]`` and join only the
tables of a full evaluation set of their dataset. A threshold sweep (``summary.json``'s
``threshold_sweep``) gives one ordinary row per threshold; its per-metric best threshold is an oracle
choice, listed in a table of its own (``... [oracle threshold]``) and never ranked with the others.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from .config import CONFIG_DIR, load_yaml
from .errors import UserError
from .report import format_value, markdown_table, read_summary

log = logging.getLogger("locbench.leaderboard")
PUBLISHED_TAG = "[published]"
WEIGHT_MARKS = {"unverified": "?", "modified": "†", "unknown": "†", "missing": "†"}
ORACLE_TAG = "[oracle threshold]"  # a threshold sweep's best threshold per metric, chosen on the test data
WEIGHT_KEY = (
    "weights: ? = a released file name whose checksum is not known here (unverified); "
    "† = not a known released file (random, fine-tuned or modified weights)"
)


def load_runs(paths: list[Path]) -> list[dict]:
    runs, skipped = [], []
    for p in paths:
        f = p / "summary.json" if p.is_dir() else p
        if not f.is_file():
            skipped.append(f"skipping {p}: no summary.json (not a finished run folder)")
            continue
        try:
            s = read_summary(f)
        except (ValueError, OSError) as exc:
            skipped.append(f"skipping {p}: its summary.json is unreadable ({exc})")
            continue
        s["_path"] = str(p)
        config = f.parent / "config.yaml"
        s["_config"] = load_yaml(config) if config.is_file() else {}
        runs.append(s)
    if not runs:
        raise UserError(
            f"None of {', '.join(map(str, paths))} holds a finished run (a summary.json); pass run "
            f"folders such as results/*."
        )
    for reason in skipped:
        log.warning(reason)
    return runs


def load_published() -> list[dict]:
    rows = []
    for f in sorted((CONFIG_DIR / "published").glob("*.yaml")):
        data = load_yaml(f)
        for r in data.get("rows", []):
            rows.append(
                {
                    "datasets": data.get("datasets"),
                    "protocol": data["protocol"],
                    "protocol_version": str(data.get("protocol_version", "")),
                    "method": r["method"],
                    "overall": r["metrics"],
                    "source": data.get("source", f.name),
                    "split": data.get("split", ""),
                }
            )
    return rows


def _flatten(conf, prefix: str = "") -> dict:
    out = {}
    for k, v in (conf or {}).items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def evaluation_set(run: dict, mix_protocols: bool) -> tuple[str, str]:
    """(key, heading) of the table a run belongs to."""
    prov = run.get("provenance", {})
    ev = prov.get("evaluation_set")
    version = "" if mix_protocols else f" v{run['protocol_version']}"
    if ev is None:  # a run folder written before evaluation sets were recorded
        heading = f"{run['dataset']} ({run['protocol']}{version}): evaluation set not recorded (an older run)"
        return json.dumps(["?", run["_path"]]), heading
    conf = {k: v for k, v in _flatten(ev.get("conf")).items() if v is not None}
    described = ", ".join(f"{k}={v}" for k, v in sorted(conf.items())) or "defaults"
    limit = f", first {ev['max_samples']} samples" if ev.get("max_samples") is not None else ""
    data = prov.get("data_hash", "")
    heading = (
        f"{run['dataset']} ({run['protocol']}{version}): {ev['dataset']} {described}{limit}; "
        f"{ev.get('num_samples', '?')} samples, data {data[:8]}"
    )
    key = json.dumps(
        [run["protocol"], version, ev["dataset"], conf, ev.get("max_samples"), data], sort_keys=True, default=str
    )
    return key, heading


def _preset(run: dict) -> dict | None:
    from .config import resolve

    try:
        return resolve(run["method"], run["dataset"], None, [])
    except Exception:  # the preset is not known here (a plugin, a renamed file): no diff to show
        return None


def row_label(run: dict, skip: tuple = ()) -> str:
    """The method plus the method/solver/seed keys (but ``skip``) that differ from its preset."""
    cfg, preset = run.get("_config") or {}, _preset(run)
    if not cfg or preset is None:
        return run["method"]
    mine = {
        **_flatten(cfg.get("method"), "method."),
        **_flatten(cfg.get("solver"), "solver."),
        "run.seed": cfg.get("run", {}).get("seed"),
    }
    base = {
        **_flatten(preset.get("method"), "method."),
        **_flatten(preset.get("solver"), "solver."),
        "run.seed": preset["run"].get("seed"),
    }
    diff = [
        f"{k.split('.', 1)[1] if k.startswith('method.') else k}={v}"
        for k, v in sorted(mine.items())
        if k not in ("method.name", "method.label", *skip) and base.get(k, object()) != v
    ]
    return f"{run['method']} ({', '.join(diff)})" if diff else run["method"]


def weights_mark(run: dict) -> tuple[str, str]:
    """(mark, column text) for the run's weight files."""
    files = run.get("provenance", {}).get("weight_files")
    if files is None:
        return "?", "not recorded"
    if not files:
        return "", "-"
    worst = next(
        (s for s in ("missing", "unknown", "modified", "unverified") if any(f["status"] == s for f in files)),
        "released",
    )
    text = (
        "released"
        if worst == "released"
        else f"{worst}: {', '.join(f['file'] for f in files if f['status'] != 'released')}"
    )
    return WEIGHT_MARKS.get(worst, ""), text


def _protocol_text(run: dict) -> str:
    text = f"{run['protocol']} v{run['protocol_version']}"
    cfg = run.get("_config") or {}
    if any("opencv" in str(v) for v in (cfg.get("solver") or {}).values()):
        cv = run.get("provenance", {}).get("packages", {}).get("opencv-python-headless", "?")
        text += f", OpenCV {cv}"
    return text


def _run_rows(run: dict, cols: list[str]) -> tuple[list[dict], list[dict]]:
    """The run's rows (one per threshold of a sweep) and, for a sweep, its oracle row."""
    prov = run.get("provenance", {})
    mark, weights = weights_mark(run)
    sweep = run.get("threshold_sweep")
    label = row_label(run, (sweep["key"],) if sweep else ()) + (f" {mark}" if mark else "")

    def row(method, metrics, ok):
        return {
            "method": method,
            **{c: metrics.get(c) for c in cols},
            "samples": run["num_samples"],
            "failed": None if ok is None else run["num_samples"] - ok,
            "weights": weights,
            "protocol": _protocol_text(run),
            "commit": str(prov.get("git", {}).get("commit", ""))[:8],
            "run": run["run_id"],
        }

    if not sweep:
        return [row(label, run["overall"], run["status_counts"].get("ok", 0))], []
    rows = [
        row(f"{label} [{sweep['key']}={format_value(p['threshold'])}]", p["overall"], p["status_counts"].get("ok", 0))
        for p in sweep["per_threshold"]
    ]
    listed = "/".join(format_value(t) for t in sweep["thresholds"])
    best = {c: v["value"] for c, v in sweep["oracle_best"].items()}
    return rows, [row(f"{label} {ORACLE_TAG} best of {sweep['key']}={listed}", best, None)]


def _full_set(run: dict) -> bool:
    ev = run.get("provenance", {}).get("evaluation_set") or {}
    conf = ev.get("conf") or {}
    return ev.get("max_samples") is None and not any(conf.get(k) for k in ("scenes", "sequences", "queries"))


def build_leaderboard(paths: list[Path], published: bool = False, mix: bool = False) -> dict[str, pd.DataFrame]:
    """{table heading: table}; rows sorted by the protocol's ranking column."""
    from .protocols import get_protocol

    groups: dict[str, tuple[str, list]] = {}
    for run in load_runs(paths):
        key, heading = evaluation_set(run, mix)
        if key not in groups and any(h == heading for h, _ in groups.values()):
            heading = f"{heading} [{run['_path']}]"  # another evaluation set with the same description
        groups.setdefault(key, (heading, []))[1].append(run)
    extra = load_published() if published else []
    tables = {}
    for heading, runs in groups.values():
        protocol = get_protocol(runs[0]["protocol"])
        cols = protocol.headline
        rows, oracle_rows = [], []
        for r in runs:
            plain, oracle = _run_rows(r, cols)
            rows += plain
            oracle_rows += oracle
        if _full_set(runs[0]):
            for p in extra:
                if p["protocol"] == protocol.name and (not p["datasets"] or runs[0]["dataset"] in p["datasets"]):
                    rows.append(
                        {
                            "method": f"{p['method']} {PUBLISHED_TAG}",
                            **{c: p["overall"].get(c) for c in cols},
                            "samples": None,
                            "failed": None,
                            "weights": "",
                            "protocol": f"{p['protocol']} (published)",
                            "commit": "",
                            "run": f"{p['source']} ({p['split']})",
                        }
                    )
        df = pd.DataFrame(rows)
        key, ascending = protocol.rank_by
        if key in df:
            df = df.sort_values(key, ascending=ascending, na_position="last", kind="stable")
        tables[heading] = df.reset_index(drop=True)
        if oracle_rows:  # never ranked with fixed-threshold rows: a table of their own
            tables[f"{heading} {ORACLE_TAG}"] = pd.DataFrame(oracle_rows)
    return tables


def _fmt(df: pd.DataFrame) -> pd.DataFrame:
    return df.map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else format_value(v))


def render(tables: dict[str, pd.DataFrame], fmt: str) -> str:
    parts = []
    for heading, df in tables.items():
        if fmt == "csv":
            parts.append(df.assign(table=heading).to_csv(index=False))
        elif fmt == "tex":
            body = _fmt(df.drop(columns=["commit", "run"]))
            parts.append(body.to_latex(index=False, escape=True, caption=heading, label=f"tab:{len(parts)}"))
        else:
            parts.append(f"### {heading}\n\n" + markdown_table(df))
    if fmt != "csv" and any(df["method"].str.contains("[?†]", regex=True).any() for df in tables.values()):
        parts.append(WEIGHT_KEY + "\n")
    return "\n".join(parts)
