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


def _add_set(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _common(p: argparse.ArgumentParser, method: bool = True) -> None:
    if method:
        p.add_argument("--method", help="registered method or configs/methods/<name>.yaml preset")
    p.add_argument("--dataset", help="registered dataset or configs/datasets/<name>.yaml preset")
    p.add_argument("--experiment", help="an experiment YAML (e.g. configs/experiments/frm_max_iter.yaml)")
    _add_set(p, "override any config value with a dotted key, e.g. method.max_keypoints=2048")


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
    p.add_argument(
        "--sweep",
        metavar="KEY=V1,V2,...",
        help="e.g. method.frm.max_iter=1,2,3,5,10 (or a sweep: key in the --experiment file)",
    )
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
    p.add_argument("--output", help="folder for leaderboard.md/.csv/.tex/.html (default: print only)")
    p.add_argument("--published", action="store_true", help="add the published reference rows (configs/published)")
    p.add_argument(
        "--mix-protocols", action="store_true", help="allow runs of different protocol versions in one column"
    )
    p.add_argument(
        "--format",
        choices=["term", "md", "csv", "tex", "html"],
        default="term",
        help="what to print: term (fits 100 columns, the default), md, csv, tex or html (a whole page)",
    )

    p = sub.add_parser("show", help="draw samples of a finished run: matches coloured by their error")
    p.add_argument("run", help="a run folder (results/<run id>)")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--sample", help="the sample_id to draw (see samples.csv)")
    pick.add_argument("--worst", type=int, metavar="N", help="the N worst samples (failed first, then by error)")
    p.add_argument("--scene", help="only samples of this scene (all of them without --worst)")
    p.add_argument("--output", help="a .png/.jpg file for one sample, else a folder (default: RUN/viz/)")
    p.add_argument(
        "--max-error", type=float, default=10.0, metavar="PX", help="error (pixels) drawn fully red (default 10)"
    )
    _add_set(p, "override the run's config, e.g. dataset.root=PATH when the data moved")

    p = sub.add_parser("compare", help="two runs: config differences, metric differences with paired intervals")
    p.add_argument("run_a", metavar="RUN_A", help="a run folder (the baseline, A)")
    p.add_argument("run_b", metavar="RUN_B", help="a run folder (B)")
    p.add_argument("--output", help="folder for compare.md/.html/.png (default results/compare_<A>_vs_<B>)")
    p.add_argument("--force", action="store_true", help="compare runs over different evaluation sets anyway")
    _add_set(p, "compare.bootstrap (1000), compare.seed (0), compare.max_listed (50)")

    sub.add_parser("list", help="registered methods, datasets (with their solver key), solvers and protocols")

    p = sub.add_parser("datasets", help="dataset utilities")
    dsub = p.add_subparsers(dest="dverb", required=True)
    c = dsub.add_parser("check", help="validate a dataset folder and list every problem (exit code 1 if any)")
    _common(c, method=False)
    c.add_argument("--quick", action="store_true", help="check files exist without decoding every image")
    return ap


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="[locbench] %(message)s", stream=sys.stderr
    )
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _set_threads(cfg: dict) -> None:
    from .environment import set_torch_threads

    set_torch_threads(cfg["run"]["torch_threads"])


def run_config(args, extra: list[str] = ()) -> dict:
    """The resolved config of a run (or of one ablation value, with ``extra`` overrides)."""
    from .config import resolve
    from .registry import DATASETS
    from .solvers import run_solver_conf

    overrides = list(args.overrides) + list(extra)
    if getattr(args, "executor", None):
        overrides.append(f"executor.name={args.executor}")
    cfg = resolve(
        args.method, args.dataset, args.experiment, overrides, allow_sweep=getattr(args, "verb", "run") == "ablate"
    )
    # the run uses (and records) only the solver key of its dataset's task
    cfg["solver"] = run_solver_conf(cfg["solver"], DATASETS.get(cfg["dataset"]["name"]).task)
    if getattr(args, "no_cache", False):
        cfg["run"]["cache"] = False
    return cfg


def cmd_run(args, cfg: dict | None = None, output: Path | None = None, quiet: bool = False) -> dict:
    from . import provenance, report
    from .run_report import write_report
    from .runner import execute, prepare
    from .show import write_worst

    cfg = cfg or run_config(args)
    _set_threads(cfg)
    # data, weights and packages are checked, and every input identified, before any work or output
    prepared = prepare(cfg)
    run_id, protocol = prepared.run_id, prepared.protocol
    output = Path(output or getattr(args, "output", None) or cfg["run"]["output"] or Path("results") / run_id)
    # data, settings, weights, solver and the output and cache folders are checked before any work (and
    # before anything is printed: a refused run says one sentence)
    plotter = report.start_plotter() if cfg["run"]["plots"] else None  # imports matplotlib while the run works
    try:
        df = execute(cfg, output, use_cache=cfg["run"]["cache"], progress=not args.no_progress, prepared=prepared)
        log.info("stage 2/3: scoring %d samples", len(df))
        per_scene = report.per_scene_summaries(df, protocol)
        # the plots are drawn (by the plotter process) while the summary and tables are computed and written
        plots = report.draw_plots(output, df, per_scene, cfg, protocol, plotter) if cfg["run"]["plots"] else None
        summary = report.summarize_run(df, protocol, cfg, run_id, provenance.collect(cfg, prepared), per_scene)
        log.info("stage 3/3: writing tables, plots, report and submission files")
        report.write_results(output, df, summary, cfg)
        for path in protocol.write_submission(df, prepared.dataset, output):
            log.info("submission file: %s", path)
        try:
            worst = write_worst(output, df, cfg, prepared.dataset, prepared.method, protocol, cfg["run"]["viz_worst"])
        except Exception as exc:  # the results are written: a picture that cannot be drawn must not lose them
            log.warning(
                "the worst samples could not be drawn (%s: %s); report.html is written without them",
                type(exc).__name__,
                exc,
            )
            worst = []
        if plots is not None:
            plots.result()  # report.html shows them
    finally:
        if plotter is not None:
            plotter.shutdown(wait=False, cancel_futures=True)
    log.info("report: %s", write_report(output, df, summary, cfg, protocol, worst))
    if not quiet:
        print(f"\n{summary['method']} on {summary['dataset']} ({protocol.name} metrics)")
        print(report.summary_table(summary, label=protocol.label))
        print(f"results: {output}")
    return {**summary, "output": str(output)}  # where it was written (not part of summary.json)


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
    from .io import write_text_atomic
    from .leaderboard import build_leaderboard, render
    from .leaderboard_pages import render_html, render_term

    paths = [Path(r) for r in args.runs]
    tables = build_leaderboard(paths, published=args.published, mix=args.mix_protocols)
    page = render_html(tables, paths) if args.output or args.format == "html" else None
    if args.output:
        out = Path(args.output)
        for fmt in ("md", "csv", "tex"):
            write_text_atomic(out / f"leaderboard.{fmt}", render(tables, fmt))
        write_text_atomic(out / "leaderboard.html", page)
        log.info("wrote %s/leaderboard.{md,csv,tex,html}", out)
    print(
        {"term": lambda: render_term(tables), "html": lambda: page}.get(
            args.format, lambda: render(tables, args.format)
        )()
    )
    return 0


def cmd_show(args) -> int:
    from .show import show

    show(
        Path(args.run),
        args.overrides,
        args.sample,
        args.worst,
        args.scene,
        Path(args.output) if args.output else None,
        args.max_error,
    )
    return 0


def cmd_compare(args) -> int:
    from .compare_pages import run_compare

    run_compare(
        Path(args.run_a), Path(args.run_b), args.overrides, args.force, Path(args.output) if args.output else None
    )
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
                print(
                    f"error: every one of the {summary['num_samples']} samples failed (most often "
                    f"{top['status']}: {top['reason']}); the results above are written, but no pose was "
                    f"estimated.",
                    file=sys.stderr,
                )
                return 1
            return 0
        if args.verb == "datasets":
            return cmd_datasets_check(args)
        return {
            "ablate": cmd_ablate,
            "score": cmd_score,
            "leaderboard": cmd_leaderboard,
            "list": cmd_list,
            "show": cmd_show,
            "compare": cmd_compare,
        }[args.verb](args)
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
        print(
            f"error: unexpected {type(exc).__name__}{': ' + first if first else ''}; this is a bug in locbench: "
            f"run the command again with --verbose for the traceback and report it.",
            file=sys.stderr,
        )
        return 1
