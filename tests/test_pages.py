"""report.html, compare and the leaderboard page on two real demo runs (OpenCV's ORB, fast, with 1000
and 300 features), checked as files and, where Chromium is installed, in a headless browser
(tests/browser.py)."""

import json
import re
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmark import api
from benchmark.cli import main
from benchmark.compare import compare
from benchmark.registry import METHODS
from benchmark.run_report import MAX_SAMPLE_ROWS
from benchmark.types import Matches
from methods.base import Matcher

from .browser import assert_offline_and_loaded, inspect


def rows_of(text: str, table_id: str) -> int:
    body = re.search(rf'<table id="{table_id}".*?<tbody>(.*?)</tbody>', text, flags=re.S)
    return body.group(1).count("<tr>") if body else -1


class OrbTest(Matcher):
    """ORB + mutual nearest neighbours (tests only: a real matcher that costs milliseconds)."""

    default_conf = {"max_features": 1000}
    calls = 0

    def _match(self, image0, image1):
        type(self).calls += 1
        orb = cv2.ORB_create(int(self.conf["max_features"]))
        k0, d0 = orb.detectAndCompute(cv2.cvtColor(image0, cv2.COLOR_RGB2GRAY), None)
        k1, d1 = orb.detectAndCompute(cv2.cvtColor(image1, cv2.COLOR_RGB2GRAY), None)
        found = (
            cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d0, d1) if d0 is not None and d1 is not None else []
        )
        return Matches(
            np.array([k0[m.queryIdx].pt for m in found]).reshape(-1, 2),
            np.array([k1[m.trainIdx].pt for m in found]).reshape(-1, 2),
            np.array([1.0 / (1.0 + m.distance) for m in found]),
            num_keypoints0=len(k0),
            num_keypoints1=len(k1),
        )


@pytest.fixture(scope="module", autouse=True)
def orb_test():
    with METHODS.registered("orb_test", OrbTest):
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pages")
    settings = ["run.bootstrap=200", f"run.cache_dir={tmp / 'cache'}"]
    assert (
        main(
            [
                "run",
                "--method",
                "orb_test",
                "--dataset",
                "demo",
                "--output",
                str(tmp / "a"),
                "--no-progress",
                "--set",
                "method.max_features=1000",
                *(x for s in settings for x in ("--set", s)),
            ]
        )
        == 0
    )
    b = api.run("orb_test", "demo", ["method.max_features=300", *settings], output=tmp / "b")  # the Python API
    return {"a": tmp / "a", "b": b}


def test_a_run_writes_its_report_with_the_worst_samples(runs):
    run = runs["a"]
    text = (run / "report.html").read_text()
    df = pd.read_parquet(run / "samples.parquet")
    summary = json.loads((run / "summary.json").read_text())
    pictures = sorted((run / "viz").glob("worst-*.jpg"))
    assert len(pictures) == 6  # run.viz_worst's default
    for section in (
        "Headline metrics",
        "Status",
        "Per scene",
        "Plots",
        "Worst samples",
        "Samples",
        "Config",
        "Provenance",
    ):
        assert f"<h2>{section}</h2>" in text, section
    assert rows_of(text, "per-scene") == len(summary["per_scene"])
    assert rows_of(text, "samples") == min(len(df), MAX_SAMPLE_ROWS)
    assert rows_of(text, "worst") == len(pictures)
    assert rows_of(text, "headline") == len(summary["headline"])
    assert text.count("data:image/") == len(pictures) + 2  # both plots and every picture embedded
    for key, (lo, hi) in summary["ci95"].items():
        if key in summary["headline"]:
            assert lo <= summary["overall"][key] <= hi or summary["overall"][key] != summary["overall"][key]


def test_report_in_a_browser(runs, tmp_path):
    run = runs["a"]
    seen = inspect(run / "report.html", tmp_path)
    assert_offline_and_loaded(seen, min_images=8)
    df = pd.read_parquet(run / "samples.parquet")
    summary = json.loads((run / "summary.json").read_text())
    assert seen["rows"]["per-scene"] == len(summary["per_scene"])
    assert seen["rows"]["samples"] == min(len(df), MAX_SAMPLE_ROWS)
    assert seen["rows"]["worst"] == 6


def test_compare_prints_differences_with_paired_intervals(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        main(["compare", str(runs["a"]), str(runs["b"]), "--output", str(out), "--set", "compare.bootstrap=100"]) == 0
    )
    printed = capsys.readouterr().out
    assert "config: method.max_features: 1000 -> 300" in printed
    assert "95 % interval of B-A" in printed and "paired bootstrap over 3 shared scenes" in printed
    assert "rough" in printed  # 3 scenes: the note says the interval means little
    assert max(len(line) for line in printed.splitlines() if str(tmp_path) not in line) <= 100
    for name in ("compare.md", "compare.html", "compare.png"):
        assert (out / name).stat().st_size > 0
    c = compare(runs["a"], runs["b"], ["compare.bootstrap=20"])
    assert [k for k, *_ in c.diff] == ["method.max_features"]
    for r in c.metrics.to_dict("records"):
        assert r["B-A"] == pytest.approx(r["B"] - r["A"])
        if r["lo"] is not None:
            assert r["lo"] <= r["hi"]
    seen = inspect(out / "compare.html", tmp_path)
    assert_offline_and_loaded(seen, min_images=1)
    assert seen["rows"]["metrics"] == len(c.metrics)
    assert seen["rows"]["per-scene"] == 3
    assert seen["rows"].get("changed", 0) == min(len(c.changed), c.settings["max_listed"])


def test_a_run_against_itself_differs_by_nothing(runs):
    c = compare(runs["a"], runs["a"], ["compare.bootstrap=50"])
    assert c.diff == [] and c.changed.empty
    for r in c.metrics.to_dict("records"):
        if r["lo"] is not None:
            assert r["B-A"] == 0 and r["lo"] == 0 and r["hi"] == 0


def test_compare_refuses_different_evaluation_sets_unless_forced(runs, tmp_path, capsys):
    other = tmp_path / "fewer"
    shutil.copytree(runs["b"], other)
    df = pd.read_parquet(other / "samples.parquet")
    df.iloc[1:].to_parquet(other / "samples.parquet")
    assert main(["compare", str(runs["a"]), str(other), "--output", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "not over the same evaluation set" in err and "1 only in A" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (
        main(
            [
                "compare",
                str(runs["a"]),
                str(other),
                "--force",
                "--output",
                str(tmp_path / "c"),
                "--set",
                "compare.bootstrap=50",
            ]
        )
        == 0
    )
    assert "compared with --force although" in capsys.readouterr().out
    assert main(["compare", str(runs["a"]), str(other), "--set", "compare.nope=1"]) == 2
    assert "Unknown config key 'compare.nope'" in capsys.readouterr().err


def test_leaderboard_term_fits_100_columns_and_html_renders(runs, tmp_path, capsys):
    assert main(["leaderboard", str(runs["a"]), str(runs["b"]), "--published"]) == 0
    printed = capsys.readouterr().out
    assert max(map(len, printed.splitlines())) <= 100 and "key:" in printed
    assert main(["leaderboard", str(runs["a"]), str(runs["b"]), "--output", str(tmp_path / "lb")]) == 0
    page = tmp_path / "lb" / "leaderboard.html"
    text = page.read_text()
    assert rows_of(text, "table-1") == 2
    seen = inspect(page, tmp_path)
    assert_offline_and_loaded(seen, min_images=1)  # the two runs' curves overlaid
    assert seen["rows"]["table-1"] == 2


def test_show_draws_the_worst_samples_from_the_match_cache(runs, tmp_path, capsys):
    calls = OrbTest.calls
    assert main(["show", str(runs["a"]), "--worst", "2", "--output", str(tmp_path / "w")]) == 0
    assert len(list((tmp_path / "w").glob("*.png"))) == 2
    assert OrbTest.calls == calls and "matched again" not in capsys.readouterr().out  # looked up by pair key
    scene = pd.read_parquet(runs["a"] / "samples.parquet")["scene"].iloc[0]
    assert main(["show", str(runs["a"]), "--scene", scene, "--worst", "1", "--output", str(tmp_path / "one.png")]) == 0
    assert (tmp_path / "one.png").stat().st_size > 0
    assert main(["show", str(runs["a"]), "--sample", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Sample 'nope' is not in" in err and len(err.strip().splitlines()) == 1


def test_python_api_reads_a_run_and_draws_a_sample(runs):
    results = api.load(runs["b"])
    assert results.config["method"]["max_features"] == 300 and len(results.samples) == results.summary["num_samples"]
    picture = api.draw(runs["b"], results.samples["sample_id"].iloc[0])
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[1] >= 640
