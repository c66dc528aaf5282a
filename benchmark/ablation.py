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

from .config import config_hash, read_experiment
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


def sweep_of(args) -> tuple[str, list]:
    """The swept key and values: ``--sweep``, or the ``sweep:`` key of the ``--experiment`` file."""
    _, from_file = read_experiment(args.experiment)
    if args.sweep and from_file:
        raise UserError(f"Give the sweep once: --sweep {args.sweep} or the sweep: key of {args.experiment}, not both.")
    if args.sweep:
        return parse_sweep(args.sweep)
    if from_file:
        return next(iter(from_file.items()))
    raise UserError(
        "Say what to sweep: --sweep KEY=V1,V2,... (e.g. method.frm.max_iter=1,2,3), or an experiment "
        "file with a sweep: key."
    )


def _override(key: str, value) -> str:
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def _row(summary: dict, label: str, key: str, value, folder: Path) -> dict:
    stages = {f"time_{k}_s": v for k, v in summary.get("mean_stage_time_s", {}).items()}
    ok = summary["status_counts"].get("ok", 0)
    row = {
        key: value,
        "variant": label,
        **{c: summary["overall"].get(c) for c in summary["headline"]},
        "time_match_s": summary["mean_time_match_s"],
        **stages,
        "samples": summary["num_samples"],
        "ok": ok,
        "status": "ok" if ok else "failed",
        "reason": "",
        "run": summary["run_id"],
    }
    if not ok:  # every sample failed: the row says why instead of showing numbers of nothing
        counts = ", ".join(f"{s} {n}" for s, n in summary["status_counts"].items() if n)
        reasons = pd.read_parquet(folder / "samples.parquet", columns=["reason"])["reason"]
        top = reasons[reasons != ""].value_counts()
        row["reason"] = f"all {summary['num_samples']} samples failed ({counts})" + (
            f"; most often: {top.index[0]}" if len(top) else ""
        )
        log.warning("ablation: %s: %s", label, row["reason"])
    return row


# The time a sweep is plotted against: the matching stage itself when the method reports it
# (MASt3R: reciprocal matching, without the network's forward pass), else the whole match call.
PLOT_TIME = ("time_reciprocal_s", "time_match_s")


def summary_headline(row: dict, key: str) -> list[str]:
    """The accuracy columns of an ablation row (everything but the swept value, times, counts and status)."""
    return [
        c
        for c in row
        if c not in (key, "variant", "samples", "ok", "status", "reason", "run") and not c.startswith("time_")
    ]


def run_ablation(args, run_fn, config_fn) -> pd.DataFrame:
    """One run per value (``run_fn(args, cfg, folder, quiet=True)``), every value's config resolved by
    ``config_fn(args, extra overrides)`` and checked before the first run starts."""
    from .registry import METHODS
    from .runner import build, preflight

    key, values = sweep_of(args)
    base_cfg = config_fn(args, [])
    out = Path(
        args.output
        or Path("results")
        / f"ablation_{base_cfg['method']['label']}_{base_cfg['dataset']['label']}_"
        f"{key.replace('.', '-')}_{config_hash([str(v) for v in values], 6)}"
    )
    variants = [
        (f"{key}={value}", value, config_fn(args, [_override(key, value)]), out / f"{key}={value}") for value in values
    ]
    for prefix, extra in getattr(METHODS.get(base_cfg["method"]["name"]), "ablation_baselines", {}).items():
        if key.startswith(prefix):
            variants.append(("baseline: " + " ".join(extra), None, config_fn(args, list(extra)), out / "baseline"))
    for _, _, cfg, _ in variants:  # a value that cannot run stops the ablation before any work
        dataset, method, _ = build(cfg)
        preflight(cfg, dataset, method)
    rows = []
    for label, value, cfg, folder in variants:
        log.info("ablation: %s", label)
        rows.append(_row(run_fn(args, cfg, folder, quiet=True), label, key, value, folder))
    baseline = rows.pop() if len(variants) > len(values) else None
    table = pd.DataFrame(rows + ([baseline] if baseline else []))
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "ablation.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text(markdown_table(table))
    from .plots import ablation_plot

    metrics = summary_headline(rows[0], key)[:2]
    time_col = next((c for c in PLOT_TIME if any(r.get(c) is not None for r in rows)), None)
    ablation_plot(pd.DataFrame(rows), key, time_col, metrics, out / "ablation.png", baseline)
    print(markdown_table(table))
    print(f"ablation table and plot: {out}/ablation.csv, ablation.md, ablation.png")
    return table
