"""``python -m benchmark <verb>``: run, ablate, score, leaderboard, list, datasets check."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .errors import SampleError, UserError

log = logging.getLogger("locbench")


def _common(p: argparse.ArgumentParser, method: bool = True) -> None:
    if method:
        p.add_argument("--method", help="registered method or configs/methods/<name>.yaml preset")
    p.add_argument("--dataset", help="registered dataset or configs/datasets/<name>.yaml preset")
    p.add_argument("--experiment", help="an experiment YAML (e.g. configs/experiments/frm_max_iter.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config value with a dotted key, e.g. method.max_keypoints=2048")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("run", help="run one method on one dataset")
    _common(p)
    p.add_argument("--output", help="results folder (default results/<method>_<dataset>_<config hash>)")
    p.add_argument("--no-cache", action="store_true", help="recompute matches instead of reading the match cache")
    p.add_argument("--executor", choices=["local", "ray"], help="shortcut for --set executor.name=...")
    p.add_argument("--allow-download", action="store_true", help="let methods download missing weight files")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("ablate", help="run a sweep of one config key and tabulate accuracy and time")
    _common(p)
    p.add_argument("--sweep", metavar="KEY=V1,V2,...",
                   help="e.g. method.frm.max_iter=1,2,3,5,10 (or a sweep: key in the --experiment file)")
    p.add_argument("--output", help="folder for the ablation table and plot")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--allow-download", action="store_true")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("score", help="score a submission file against ground truth")
    _common(p, method=False)
    p.add_argument("--submission", required=True, help="the submission file (Map-free: a .zip)")
    p.add_argument("--json", action="store_true", help="print one JSON object of the metrics and nothing else")

    p = sub.add_parser("leaderboard", help="one table comparing runs")
    p.add_argument("runs", nargs="+", help="results folders (e.g. results/*)")
    p.add_argument("--output", help="folder for leaderboard.md/.csv/.tex (default: print Markdown only)")
    p.add_argument("--published", action="store_true", help="add the published reference rows (configs/published)")
    p.add_argument("--mix-protocols", action="store_true", help="allow runs of different protocol versions in one column")
    p.add_argument("--format", choices=["md", "csv", "tex"], default="md", help="what to print")

    sub.add_parser("list", help="registered methods, datasets (with their solver key), solvers and protocols")

    p = sub.add_parser("datasets", help="dataset utilities")
    dsub = p.add_subparsers(dest="dverb", required=True)
    c = dsub.add_parser("check", help="validate a dataset folder and list every problem (exit code 1 if any)")
    _common(c, method=False)
    c.add_argument("--quick", action="store_true", help="check files exist without decoding every image")
    return ap


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="[locbench] %(message)s",
                        stream=sys.stderr)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _set_threads(cfg: dict) -> None:
    import torch

    torch.set_num_threads(cfg["run"]["torch_threads"])


def run_config(args, extra: list[str] = ()) -> dict:
    """The resolved config of a run (or of one ablation value, with ``extra`` overrides)."""
    from .config import resolve
    from .registry import DATASETS
    from .solvers import run_solver_conf

    overrides = list(args.overrides) + list(extra)
    if getattr(args, "executor", None):
        overrides.append(f"executor.name={args.executor}")
    cfg = resolve(args.method, args.dataset, args.experiment, overrides, allow_sweep=getattr(args, "verb", "run") == "ablate")
    # the run uses (and records) only the solver key of its dataset's task
    cfg["solver"] = run_solver_conf(cfg["solver"], DATASETS.get(cfg["dataset"]["name"]).task)
    if getattr(args, "no_cache", False):
        cfg["run"]["cache"] = False
    return cfg


def cmd_run(args, cfg: dict | None = None, output: Path | None = None, quiet: bool = False) -> dict:
    from . import provenance, report
    from .runner import execute, prepare

    cfg = cfg or run_config(args)
    _set_threads(cfg)
    # data, weights and packages are checked, and every input identified, before any work or output
    prepared = prepare(cfg)
    run_id, protocol = prepared.run_id, prepared.protocol
    output = Path(output or getattr(args, "output", None) or cfg["run"]["output"] or Path("results") / run_id)
    # data, settings, weights, solver and the output and cache folders are checked before any work (and
    # before anything is printed: a refused run says one sentence)
    df = execute(cfg, output, use_cache=cfg["run"]["cache"], progress=not args.no_progress, prepared=prepared)
    log.info("stage 2/3: scoring %d samples", len(df))
    prov = provenance.collect(cfg, prepared)
    summary = report.summarize_run(df, protocol, cfg, run_id, prov)
    log.info("stage 3/3: writing tables, plots and submission files")
    report.write_results(output, df, summary, cfg, protocol, bool(cfg["run"]["plots"]))
    for path in protocol.write_submission(df, prepared.dataset, output):
        log.info("submission file: %s", path)
    if not quiet:
        print(f"\n{summary['method']} on {summary['dataset']} ({protocol.name} metrics)")
        print(report.summary_table(summary, label=protocol.label))
        print(f"results: {output}")
    return summary


def cmd_ablate(args) -> int:
    from .ablation import run_ablation

    run_ablation(args, cmd_run, run_config)
    return 0


def cmd_score(args) -> int:
    from .config import resolve
    from .protocols import get_protocol
    from .registry import DATASETS

    cfg = resolve("sift", args.dataset, args.experiment, args.overrides)  # the method is irrelevant to scoring
    dataset = DATASETS.get(cfg["dataset"]["name"])(cfg["dataset"])
    dataset.check()
    metrics = get_protocol(dataset.protocol).score_submission(dataset, Path(args.submission))
    if args.json:
        from .report import json_safe

        print(json.dumps(json_safe(metrics), allow_nan=False))
    else:
        for k, v in metrics.items():
            print(f"{k}: {v}")
    return 0


def cmd_leaderboard(args) -> int:
    from .leaderboard import build_leaderboard, render

    tables = build_leaderboard([Path(r) for r in args.runs], published=args.published, mix=args.mix_protocols)
    if args.output:
        out = Path(args.output)
        for fmt in ("md", "csv", "tex"):
            from .io import write_text_atomic

            write_text_atomic(out / f"leaderboard.{fmt}", render(tables, fmt))
        log.info("wrote %s/leaderboard.{md,csv,tex}", out)
    print(render(tables, args.format))
    return 0


def cmd_list(args) -> int:
    from .config import CONFIG_DIR
    from .datasets_guard import ensure_our_datasets
    from .protocols import protocols
    from .registry import DATASETS, METHODS
    from .solvers import NEEDS_TEXT, SOLVERS

    ensure_our_datasets()
    for title, reg, kind in (("methods", METHODS, "method"), ("datasets", DATASETS, "dataset")):
        print(f"{title}:")
        for name in reg.names():
            cls = reg.get(name)
            doc = (cls.__doc__ or "").strip().splitlines()
            task = f" (solver key: solver.{cls.task})" if kind == "dataset" else ""
            print(f"  {name:<18} {doc[0] if doc else ''}{task}  [{reg.origin(name)}]")
        presets = sorted(p.stem for p in (CONFIG_DIR / f"{kind}s").glob("*.yaml") if p.stem not in reg.names())
        if presets:
            print(f"  presets: {', '.join(presets)}")
    print("solvers (the key is the dataset's task):")
    for solver, origin in SOLVERS.all():
        setting = f"solver.{solver.task}={solver.name}"
        print(f"  {setting:<40} needs {NEEDS_TEXT[solver.needs]:<26} {solver.summary}  [{origin}]")
    print("protocols:")
    for name, (protocol, origin) in protocols().items():
        doc = (type(protocol).__doc__ or "").strip().splitlines()
        print(f"  {name:<18} {doc[0] if doc else ''}  [{origin}]")
    return 0


def cmd_datasets_check(args) -> int:
    from .config import resolve
    from .registry import DATASETS

    cfg = resolve("sift", args.dataset, args.experiment, args.overrides)
    dataset = DATASETS.get(cfg["dataset"]["name"])(cfg["dataset"])
    problems = dataset.problems(decode=not args.quick)
    if not problems:
        n = sum(1 for _ in dataset)
        how = "files present" if args.quick else "every image decoded"
        print(f"{cfg['dataset']['label']}: OK ({len(dataset.scenes())} scenes, {n} samples, {how})")
        return 0
    print(f"{cfg['dataset']['label']}: {len(problems)} problem(s)")
    for p in problems:
        print(f"  {p}")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _setup_logging(args.verbose)
    if getattr(args, "allow_download", False):
        from .environment import ENV_ALLOW_DOWNLOAD

        os.environ[ENV_ALLOW_DOWNLOAD] = "1"
    try:
        if args.verb == "run":
            summary = cmd_run(args)
            if summary["num_samples"] and not summary["status_counts"].get("ok"):
                top = (summary.get("failure_reasons") or [{"status": "?", "reason": "?"}])[0]
                print(f"error: every one of the {summary['num_samples']} samples failed (most often "
                      f"{top['status']}: {top['reason']}); the results above are written, but no pose was "
                      f"estimated.", file=sys.stderr)
                return 1
            return 0
        if args.verb == "datasets":
            return cmd_datasets_check(args)
        return {"ablate": cmd_ablate, "score": cmd_score, "leaderboard": cmd_leaderboard, "list": cmd_list}[args.verb](args)
    except (UserError, SampleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished shards are kept; the same command resumes", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: one line, the traceback with --verbose
        if args.verbose:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}{': ' + first if first else ''}; this is a bug in locbench: "
              f"run the command again with --verbose for the traceback and report it.", file=sys.stderr)
        return 1
