"""``python -m benchmark ablate --sweep KEY=V1,V2,...``: one run per value, one table, one plot.

Any config key can be swept. A method may declare baselines for keys it owns
(``Matcher.ablation_baselines``: key prefix -> extra overrides), e.g. MASt3R adds a
brute-force reciprocal-matching run to sweeps of ``method.frm.*``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import yaml

from .config import config_hash
from .errors import UserError
from .io import atomic_path
from .report import markdown_table

log = logging.getLogger("locbench.ablate")


def parse_sweep(text: str) -> tuple[str, list]:
    if "=" not in text:
        raise UserError(f"--sweep '{text}' must look like key.path=v1,v2,... (e.g. method.frm.max_iter=1,2,3).")
    key, raw = text.split("=", 1)
    values = [yaml.safe_load(v) for v in raw.split(",") if v.strip()]
    if not key.strip() or not values:
        raise UserError(f"--sweep '{text}' needs a key and at least one value.")
    return key.strip(), values


def _row(summary: dict, label: str, key: str, value) -> dict:
    stages = {f"time_{k}_s": v for k, v in summary.get("mean_stage_time_s", {}).items()}
    return {key: value, "variant": label, **{c: summary["overall"].get(c) for c in summary["headline"]},
            "time_match_s": summary["mean_time_match_s"], **stages, "samples": summary["num_samples"],
            "ok": summary["status_counts"].get("ok", 0), "run": summary["run_id"]}


# The time a sweep is plotted against: the matching stage itself when the method reports it
# (MASt3R: reciprocal matching, without the network's forward pass), else the whole match call.
PLOT_TIME = ("time_reciprocal_s", "time_match_s")


def summary_headline(row: dict, key: str) -> list[str]:
    """The accuracy columns of an ablation row (everything but the swept value, times and counts)."""
    return [c for c in row if c not in (key, "variant", "samples", "ok", "run") and not c.startswith("time_")]


def run_ablation(args, run_fn) -> pd.DataFrame:
    from .config import resolve
    from .registry import METHODS

    key, values = parse_sweep(args.sweep)
    base_cfg = resolve(args.method, args.dataset, args.experiment, args.overrides)
    out = Path(args.output or Path("results") / f"ablation_{base_cfg['method']['label']}_{base_cfg['dataset']['label']}_"
               f"{key.replace('.', '-')}_{config_hash([str(v) for v in values], 6)}")
    rows = []
    for value in values:
        log.info("ablation: %s=%s", key, value)
        summary = run_fn(args, [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"],
                         out / f"{key}={value}", quiet=True)
        rows.append(_row(summary, f"{key}={value}", key, value))
    method_cls = METHODS.get(base_cfg["method"]["name"])
    baseline = None
    for prefix, extra in getattr(method_cls, "ablation_baselines", {}).items():
        if key.startswith(prefix):
            log.info("ablation baseline: %s", " ".join(extra))
            summary = run_fn(args, list(extra), out / "baseline", quiet=True)
            baseline = _row(summary, "baseline: " + " ".join(extra), key, None)
    table = pd.DataFrame(rows + ([baseline] if baseline else []))
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "ablation.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text(markdown_table(table))
    from .plots import ablation_plot

    metrics = summary_headline(rows[0], key)[:2]
    time_col = next(c for c in PLOT_TIME if c in rows[0] and rows[0][c] is not None)
    ablation_plot(pd.DataFrame(rows), key, time_col, metrics, out / "ablation.png", baseline)
    print(markdown_table(table))
    print(f"ablation table and plot: {out}/ablation.csv, ablation.md, ablation.png")
    return table
