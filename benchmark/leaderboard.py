"""One table comparing runs, grouped by dataset, with each benchmark's headline columns.

Published reference rows live as data in ``configs/published/*.yaml`` and are marked
``[published]`` wherever they appear. Runs scored under different protocol versions
are refused in one group unless ``--mix-protocols`` is given.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .config import CONFIG_DIR, load_yaml
from .errors import UserError
from .report import format_value, markdown_table, read_summary

log = logging.getLogger("locbench.leaderboard")
PUBLISHED_TAG = "[published]"


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
        runs.append(s)
    if not runs:
        raise UserError(f"None of {', '.join(map(str, paths))} holds a finished run (a summary.json); pass run "
                        f"folders such as results/*.")
    for reason in skipped:
        log.warning(reason)
    return runs


def load_published() -> list[dict]:
    rows = []
    for f in sorted((CONFIG_DIR / "published").glob("*.yaml")):
        data = load_yaml(f)
        for r in data.get("rows", []):
            rows.append({"datasets": data.get("datasets"), "protocol": data["protocol"],
                         "protocol_version": str(data.get("protocol_version", "")), "method": r["method"],
                         "overall": r["metrics"], "source": data.get("source", f.name), "split": data.get("split", "")})
    return rows


def build_leaderboard(paths: list[Path], published: bool = False, mix: bool = False) -> dict[str, pd.DataFrame]:
    """{dataset label: table}; rows sorted by the first headline column as the protocol orders it."""
    from .protocols import get_protocol

    groups: dict[str, list[dict]] = {}
    for run in load_runs(paths):
        groups.setdefault(run["dataset"], []).append(run)
    extra = load_published() if published else []
    tables = {}
    for dataset, runs in groups.items():
        versions = {str(r["protocol_version"]) for r in runs}
        if len(versions) > 1 and not mix:
            detail = "; ".join(f"{r['_path']}: v{r['protocol_version']}" for r in runs)
            raise UserError(f"Runs on {dataset} use different protocol versions ({detail}); re-run them with one "
                            f"version or pass --mix-protocols to put them in one table anyway.")
        protocol = get_protocol(runs[0]["protocol"])
        cols = protocol.headline
        rows = []
        for r in runs:
            prov = r.get("provenance", {})
            rows.append({"method": r["method"], **{c: r["overall"].get(c) for c in cols},
                         "samples": r["num_samples"], "failed": r["num_samples"] - r["status_counts"].get("ok", 0),
                         "source": "measured", "protocol": f"{r['protocol']} v{r['protocol_version']}",
                         "config": prov.get("config_hash", ""), "commit": str(prov.get("git", {}).get("commit", ""))[:8],
                         "run": r["run_id"]})
        for p in extra:
            if p["protocol"] == protocol.name and (not p["datasets"] or dataset in p["datasets"]):
                rows.append({"method": f"{p['method']} {PUBLISHED_TAG}", **{c: p["overall"].get(c) for c in cols},
                             "samples": None, "failed": None, "source": f"{p['source']} ({p['split']})",
                             "protocol": f"{p['protocol']} (published)", "config": "", "commit": "", "run": ""})
        df = pd.DataFrame(rows)
        key, ascending = protocol.rank_by
        if key in df:
            df = df.sort_values(key, ascending=ascending, na_position="last", kind="stable")
        tables[dataset] = df.reset_index(drop=True)
    return tables


def _fmt(df: pd.DataFrame) -> pd.DataFrame:
    return df.map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else format_value(v))


def render(tables: dict[str, pd.DataFrame], fmt: str) -> str:
    parts = []
    for dataset, df in tables.items():
        if fmt == "csv":
            parts.append(df.assign(dataset=dataset).to_csv(index=False))
        elif fmt == "tex":
            body = _fmt(df.drop(columns=["config", "commit", "run"]))
            latex = body.to_latex(index=False, escape=True, caption=f"Results on {dataset}", label=f"tab:{dataset}")
            parts.append(latex)
        else:
            parts.append(f"### {dataset}\n\n" + markdown_table(df))
    return "\n".join(parts)
