"""Self-contained HTML pages (run report, run comparison, leaderboard): one file, images embedded as
data URIs, no server, no CDN, no request leaves the machine. Tables sort on a click on their header
(a few lines of inline script); everything still reads without script."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np

from .report import format_value

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;max-width:1250px;
padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f3f3f3;cursor:pointer;white-space:nowrap;text-align:left}
td.t,th.t{text-align:left}tr:nth-child(even) td{background:#fafafa}
.note{color:#666;font-size:12.5px}.bad{color:#b00}.good{color:#070}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figcaption{font-size:12.5px;color:#444;max-width:800px}
img{max-width:100%;height:auto;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:12px;max-height:32em}
.scroll{max-height:36em;overflow:auto}.wide{overflow-x:auto}.wide td{white-space:nowrap}
"""

# Click a header: sort the table's rows by that column (numbers as numbers, blanks last).
SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){
var tb=th.closest('table').tBodies[0],i=th.cellIndex,up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';
var v=function(r){var s=r.cells[i].textContent.trim(),n=parseFloat(s);return s===''?null:(isNaN(n)?s:n)};
Array.from(tb.rows).sort(function(a,b){var x=v(a),y=v(b);if(x===null)return 1;if(y===null)return -1;
return (x<y?-1:x>y?1:0)*(up?1:-1)}).forEach(function(r){tb.appendChild(r)})})});
"""


# Nothing may be fetched: images are data URIs, style and script inline (the page works offline, and a
# browser refuses any request the page would make).
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def cell(value) -> str:
    """A table cell's text: numbers compact, None/NaN empty."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return format_value(value)


def _numeric(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def table(
    columns: list[str],
    rows: list[list],
    table_id: str | None = None,
    sortable: bool = True,
    raw: bool = False,
    titles: list[str] | None = None,
) -> str:
    """An HTML table: numbers right-aligned, text left-aligned. ``raw``: the cells are already HTML;
    ``titles``: a tooltip per header (e.g. the full name of a shortened one)."""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    cls = ' class="sortable"' if sortable else ""
    tips = titles or [""] * len(columns)
    head = "".join(
        f"<th{f' title={chr(34)}{esc(t)}{chr(34)}' if t else ''}>{esc(c)}</th>" for c, t in zip(columns, tips)
    )
    body = []
    for r in rows:
        tds = "".join(f"<td{'' if _numeric(v) else ' class=t'}>{v if raw else esc(cell(v))}</td>" for v in r)
        body.append(f"<tr>{tds}</tr>")
    return f"<table{ident}{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image(path_or_bytes, alt: str, caption: str = "", mime: str | None = None, width: int | None = None) -> str:
    """A figure with the image embedded (a file path or bytes)."""
    if isinstance(path_or_bytes, (str, Path)):
        path = Path(path_or_bytes)
        data = path.read_bytes()
        mime = mime or ("image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png")
    else:
        data = path_or_bytes
    size = f' style="max-width:{int(width)}px"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(data, mime or "image/png")}" alt="{esc(alt)}"{size}>{cap}</figure>'


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )
