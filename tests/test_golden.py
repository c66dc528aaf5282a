"""Golden numbers: the headline metrics of SIFT on demo and on the ScanNet sample, pinned.

Any change of code that moves a printed number fails here and must be explained (and these values
updated in the same commit). RANSAC and SIFT come from pycolmap and OpenCV, whose releases may move
numbers too: with the package versions below the values must match to 1e-6; with other versions the
test still checks them within a tolerance of one sample's worth and says which versions differ.
"""

import json
from importlib import metadata

import pytest

from benchmark.cli import main

PINNED_WITH = {"pycolmap": "4.2.1", "opencv-python-headless": "5.1.0.95", "numpy": "2.4.6", "scipy": "1.17.1"}
GOLDEN = {
    "demo": {  # 30 evaluated queries of 3 scenes, all estimated
        "Precision @ Pose Error < (25.0cm, 5deg)": 0.8333333333333334,
        "AUC @ Pose Error < (25.0cm, 5deg)": 0.9795821435600944,
        "Precision @ VCRE < 90px": 0.9,
        "AUC @ VCRE < 90px": 0.9899999976158143,
        "Average Median Translation Error": 0.002394492357619255,
        "Average Median Rotation Error": 0.05119285883208904,
        "Average Median Reprojection Error": 0.1464290974801873,
        "Estimates for % of frames": 1.0,
    },
    "scannet_sample": {  # 15 real ScanNet pairs, essential_opencv at 640 x 480
        "AUC@5": 0.0,
        "AUC@10": 0.0,
        "AUC@20": 5.256391433012735,
        "Prec": 16.072322956291945,
        "MScore": 0.5826657952790495,
    },
}
LOOSE = {"demo": 1 / 30 + 1e-9, "scannet_sample": 1.5}  # one query of 30; ScanNet metrics are percent


def _versions_differ() -> list[str]:
    out = []
    for name, pinned in PINNED_WITH.items():
        try:
            here = metadata.version(name)
        except metadata.PackageNotFoundError:
            here = "absent"
        if here != pinned:
            out.append(f"{name} {here} (pinned with {pinned})")
    return out


@pytest.mark.parametrize("dataset", sorted(GOLDEN))
def test_sift_headline_numbers_are_pinned(dataset, tmp_path, data_dir, capsys):
    extra = [] if dataset == "demo" else ["--set", f"dataset.root={data_dir / 'superglue_scannet_sample'}"]
    argv = [
        "run",
        "--method",
        "sift",
        "--dataset",
        dataset,
        *extra,
        "--set",
        f"run.cache_dir={tmp_path / 'cache'}",
        "--set",
        "run.bootstrap=0",
        "--set",
        "run.plots=false",
        "--output",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    assert main(argv) == 0
    overall = json.loads((tmp_path / "run/summary.json").read_text())["overall"]
    differ = _versions_differ()
    for key, expected in GOLDEN[dataset].items():
        tolerance = LOOSE[dataset] if differ else 1e-6 * max(1.0, abs(expected))
        assert overall[key] == pytest.approx(expected, abs=tolerance), (
            f"{dataset} {key}: {overall[key]} != pinned {expected}"
            + (f" (other package versions: {', '.join(differ)})" if differ else "")
        )
