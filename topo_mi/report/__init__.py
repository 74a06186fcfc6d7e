"""A run's HTML report: one self-contained ``index.html`` (figures embedded, every text escaped)."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from topo_mi._io import write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2330;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:1px solid #dde;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem 0;font-size:.9rem}
td,th{border:1px solid #d5d9e2;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f1f3f8}.num{font-variant-numeric:tabular-nums;text-align:right}
img{max-width:100%;border:1px solid #e3e6ee;border-radius:4px}
pre{background:#f6f7fa;padding:.8rem;overflow:auto;font-size:.8rem;border-radius:4px}
.muted{color:#667}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        text = json.dumps(v)
        return text if len(text) < 240 else text[:237] + "..."
    return str(v)


def _table(d: dict) -> str:
    rows = []
    for k, v in d.items():
        cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        rows.append(f"<tr><th>{_esc(k)}</th><td{cls}>{_esc(_fmt(v))}</td></tr>")
    return "<table>" + "".join(rows) + "</table>" if rows else '<p class="muted">(no figures)</p>'


def render(results: dict, run_info: dict, figures: dict[str, str], root: Path) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>topo_mi run: {_esc(results.get('name', 'run'))}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>topo_mi run: {_esc(results.get('name', 'run'))}</h1>",
        f'<p class="muted">seed {_esc(results.get("seed"))} &middot; topo_mi {_esc(run_info.get("topo_mi"))}'
        f' &middot; {_esc(run_info.get("created", ""))}</p>',
    ]
    desc = run_info.get("spec", {}).get("description")
    if desc:
        parts.append(f"<p>{_esc(desc)}</p>")
    overview = {}
    for key in ("dataset", "model", "activations"):
        if key in results:
            overview[key] = results[key]
    if overview:
        parts.append("<h2>Inputs</h2>")
        parts.append(_table({k: v for k, v in overview.items()}))
    for kind, summary in results.get("analyses", {}).items():
        parts.append(f'<h2 id="{_esc(kind)}">{_esc(kind.replace("_", " ").title())}</h2>')
        parts.append(_table(summary))
        fig = figures.get(kind)
        if fig and (root / fig).is_file():
            data = base64.b64encode((root / fig).read_bytes()).decode("ascii")
            parts.append(f'<img alt="{_esc(kind)} figure" src="data:image/png;base64,{data}">')
    parts.append("<h2>Timings (s)</h2>")
    parts.append(_table(run_info.get("timings_s", {})))
    parts.append("<h2>Spec</h2>")
    parts.append(f"<pre>{_esc(json.dumps(run_info.get('spec', {}), indent=2, sort_keys=True, default=str))}</pre>")
    parts.append("<h2>Versions</h2>")
    parts.append(_table(run_info.get("versions", {})))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(root, *, results: dict, run_info: dict, figures: dict[str, str]) -> Path:
    """Write ``root/index.html`` atomically and return its path."""
    root = Path(root)
    path = root / "index.html"
    write_text(path, render(results, run_info, figures, root))
    return path


__all__ = ["render", "write_report"]
