"""Open a page in headless Chromium and report what the browser saw.

A copy of the page gets a small probe script at the top of its head; after the load event it writes,
into the DOM, every image's ``naturalWidth``, the number of body rows of every table with an id, the
URLs the page fetched (Resource Timing) and every request the page's security policy refused. Chromium
runs with ``--dump-dom`` (no DevTools client needed) and the probe's result is read back from the dump.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROBE = """<script>(function(){var refused=[];
document.addEventListener('securitypolicyviolation',function(e){refused.push(e.blockedURI)});
window.addEventListener('load',function(){setTimeout(function(){var r={images:[],rows:{},fetched:[],refused:refused};
Array.prototype.forEach.call(document.images,function(i){r.images.push({alt:i.alt,width:i.naturalWidth})});
document.querySelectorAll('table[id]').forEach(function(t){r.rows[t.id]=t.tBodies[0].rows.length});
performance.getEntriesByType('resource').forEach(function(e){r.fetched.push(e.name)});
var p=document.createElement('pre');p.id='probe-result';p.textContent=JSON.stringify(r);
document.body.appendChild(p)},200)})})();</script>"""
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=10000",
    "--dump-dom",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip(
        "headless Chromium is not installed here (apt-get install -y chromium): the browser checks "
        "of the HTML pages are skipped"
    )


def external_links(text: str) -> list[str]:
    """src/href values that would leave the machine (anything but data URIs, fragments and plain names)."""
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", text, flags=re.I)
    links += re.findall(r"url\(([^)]*)\)", text)
    return [u for u in links if not u.startswith(("data:", "#")) and (":" in u or u.startswith("//"))]


def inspect(page: Path, tmp: Path) -> dict:
    """What Chromium saw on ``page`` (a copy beside it carries the probe, so relative links still work)."""
    binary = chromium()
    text = Path(page).read_text()
    probed = Path(page).with_name(f".probe-{Path(page).name}")
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1))
    profile = tmp / f"chromium-profile-{page.stem}"
    try:
        out = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", probed.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        probed.unlink()
        shutil.rmtree(profile, ignore_errors=True)
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', out.stdout, flags=re.S)
    assert found, f"Chromium returned no probe result (exit {out.returncode}):\n{out.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    result["external_links"] = external_links(text)
    return result


def assert_offline_and_loaded(seen: dict, min_images: int = 1) -> None:
    assert len(seen["images"]) >= min_images, seen["images"]
    assert all(i["width"] > 0 for i in seen["images"]), [i["alt"] for i in seen["images"] if i["width"] <= 0]
    assert not seen["refused"], f"the page tried to fetch {seen['refused']}"
    assert all(u.startswith("file:") for u in seen["fetched"]), seen["fetched"]
    assert not seen["external_links"], seen["external_links"]
