"""A run's HTML report: one self-contained ``index.html`` (figures embedded, every text escaped).

Layout, top to bottom:

1. **Summary**: the model, the data, the model's accuracy (classifiers) and each analysis'
   headline in a sentence, with links to the sections.
2. One section per analysis, built from the result's ``report_section()`` (the report
   contract, :meth:`topo_mi._results.Result.report_section`): the headline, a table (layers as
   rows, metrics as columns), the figure with its caption (what is plotted, units, the class, the
   scale rule, the certified error), and links to the saved result (``result.json``,
   ``arrays.npz``; reload with ``topo_mi.load_result``).
3. **Parameters** of the run as a table of key paths, then timings and versions.

Results without ``report_section`` (or written before it existed) fall back to their summary.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from topo_mi._io import write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2330;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:1px solid #dde;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem 0;font-size:.88rem}
td,th{border:1px solid #d5d9e2;padding:.25rem .6rem;text-align:left;vertical-align:top}
thead th{background:#f1f3f8}tbody th{background:#fafbfd;font-weight:600}
.num{font-variant-numeric:tabular-nums;text-align:right}
figure{margin:1rem 0}figcaption{font-size:.88rem;color:#3a4150;max-width:900px;margin-top:.3rem}
img{max-width:100%;border:1px solid #e3e6ee;border-radius:4px}
.headline{font-size:1.02rem;background:#f4f7fc;border-left:4px solid #5b7bd5;padding:.5rem .8rem}
.summary li{margin:.3rem 0}.muted{color:#667}.files{font-size:.85rem}
pre{background:#f6f7fa;padding:.8rem;overflow:auto;font-size:.8rem;border-radius:4px}
details{margin:.5rem 0 1rem 0}summary{cursor:pointer;color:#445}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        text = json.dumps(v)
        return text if len(text) < 240 else text[:237] + "..."
    return str(v)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _kv_table(d: dict, *, head: tuple[str, str] | None = None) -> str:
    rows = [f"<tr><th>{_esc(k)}</th><td>{_esc(_fmt(v))}</td></tr>" for k, v in d.items()]
    if not rows:
        return '<p class="muted">(none)</p>'
    thead = f"<thead><tr><th>{_esc(head[0])}</th><th>{_esc(head[1])}</th></tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{''.join(rows)}</tbody></table>"


def _grid_table(table: dict, corner: str = "") -> str:
    """``{"index", "columns", "rows"}`` as an HTML table (row names as header cells)."""
    cols = list(table.get("columns", []))
    index = list(table.get("index", []))
    rows = list(table.get("rows", []))
    if not rows:
        return '<p class="muted">(no table)</p>'
    head = "".join(f"<th>{_esc(c)}</th>" for c in [corner, *cols])
    body = []
    for name, row in zip(index, rows):
        cells = "".join(("<td class=\"num\">" if _is_num(v) else "<td>") + _esc(_fmt(v)) + "</td>" for v in row)
        body.append(f"<tr><th>{_esc(name)}</th>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(_flatten(v, key))
            else:
                out[key] = v if not isinstance(v, dict) else "(defaults)"
    return out


def _title(kind: str) -> str:
    return kind.replace("_", " ").capitalize()


def _fallback_section(summary: dict) -> dict:
    from topo_mi._results import per_layer_table

    scalars, table = per_layer_table(summary)
    facts = ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in list(scalars.items())[:6])
    if table is None:
        table = {"index": list(scalars), "columns": ["value"], "rows": [[v] for v in scalars.values()]}
    return {"headline": facts + "." if facts else "", "table": table, "caption": ""}


def _summary_items(results: dict, run_info: dict) -> list[str]:
    items = []
    model = results.get("model") or {}
    spec = run_info.get("spec", {})
    if model.get("models"):
        names = ", ".join(map(str, model["models"]))
        src = spec.get("model", {})
        how = ("zoo model" if src.get("zoo") else "HuggingFace model" if src.get("hf") else
               "checkpoint" if src.get("checkpoint") else "trained from scratch" if src.get("architecture") else "")
        items.append(f"<li><b>Model</b>: {_esc(names)}{' (' + _esc(how) + ')' if how else ''}</li>")
    ds = results.get("dataset")
    if ds:
        acts = results.get("activations") or {}
        n_used = acts.get("n_samples")
        used = f", {n_used} analysed" if n_used is not None and n_used != ds.get("n") else ""
        layers = acts.get("layers")
        lay = f"; layers {', '.join(map(str, layers))}" if layers else ""
        items.append(f"<li><b>Data</b>: {_esc(ds.get('name'))}, {_esc(ds.get('n'))} samples{_esc(used)}"
                     f"{_esc(lay)}</li>")
    acc = model.get("accuracy")
    if acc:
        vals = [a for a in acc if a is not None]
        if vals:
            text = ", ".join(f"{100 * a:.2f} %" for a in vals)
            items.append(f"<li><b>Accuracy</b> of the model on the dataset: {_esc(text)}</li>")
    return items


def render(results: dict, run_info: dict, figures: dict[str, str], root: Path,
           sections: dict[str, dict] | None = None) -> str:
    """The HTML report of a run: its results, run record, figures (files under ``root``, embedded)
    and each analysis's section; one self-contained page, every value escaped."""
    name = results.get("name", "run")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>topo_mi run: {_esc(name)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>topo_mi run: {_esc(name)}</h1>",
        f'<p class="muted">seed {_esc(results.get("seed"))} &middot; topo_mi {_esc(run_info.get("topo_mi"))}'
        f' &middot; {_esc(run_info.get("created", ""))}</p>',
    ]
    desc = run_info.get("spec", {}).get("description")
    if desc:
        parts.append(f"<p>{_esc(desc)}</p>")
    analyses = results.get("analyses", {})
    secs = {kind: (sections or {}).get(kind) or _fallback_section(summary) for kind, summary in analyses.items()}

    parts.append('<h2 id="summary">Summary</h2>')
    items = _summary_items(results, run_info)
    for kind, sec in secs.items():
        items.append(f'<li><a href="#{_esc(kind)}"><b>{_esc(_title(kind))}</b></a>: {_esc(sec.get("headline", ""))}'
                     "</li>")
    parts.append(f'<ul class="summary">{"".join(items)}</ul>' if items else '<p class="muted">(nothing ran)</p>')

    for kind, sec in secs.items():
        parts.append(f'<section id="{_esc(kind)}" class="analysis">')
        parts.append(f"<h2>{_esc(_title(kind))}</h2>")
        if sec.get("headline"):
            parts.append(f'<p class="headline">{_esc(sec["headline"])}</p>')
        fig = figures.get(kind)
        if fig and (root / fig).is_file():
            data = base64.b64encode((root / fig).read_bytes()).decode("ascii")
            caption = sec.get("caption") or f"{_title(kind)}."
            parts.append(f'<figure><img alt="{_esc(_title(kind))} figure" src="data:image/png;base64,{data}">'
                         f"<figcaption><b>Figure.</b> {_esc(caption)}</figcaption></figure>")
        parts.append(_grid_table(sec.get("table", {})))
        saved = [f for f in ("result.json", "arrays.npz") if (root / "analyses" / kind / f).is_file()]
        if saved:
            links = " &middot; ".join(f'<a href="analyses/{_esc(kind)}/{f}">{f}</a>' for f in saved)
            parts.append(f'<p class="files">Saved result: {links} &middot; reload with '
                         f'<code>topo_mi.load_result("analyses/{_esc(kind)}")</code></p>')
        summary = analyses.get(kind) or {}
        if summary:
            parts.append("<details><summary>All summary figures</summary>")
            parts.append(_kv_table(summary))
            parts.append("</details>")
        parts.append("</section>")

    parts.append('<h2 id="parameters">Parameters</h2>')
    spec = dict(run_info.get("spec", {}))
    params = _flatten(spec)
    if run_info.get("executor"):
        params["executor (resolved)"] = run_info["executor"]
    parts.append(_kv_table(params, head=("parameter", "value")))
    parts.append("<h2>Timings (s)</h2>")
    parts.append(_kv_table(run_info.get("timings_s", {}), head=("step", "seconds")))
    parts.append("<h2>Versions</h2>")
    versions = dict(run_info.get("versions", {}))
    if run_info.get("git_commit"):
        versions["git commit"] = run_info["git_commit"]
    parts.append(_kv_table(versions, head=("package", "version")))
    parts.append("<details><summary>The spec as JSON</summary>")
    parts.append(f"<pre>{_esc(json.dumps(run_info.get('spec', {}), indent=2, sort_keys=True, default=str))}</pre>")
    parts.append("</details>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(root, *, results: dict, run_info: dict, figures: dict[str, str],
                 sections: dict[str, dict] | None = None) -> Path:
    """Write ``root/index.html`` atomically and return its path.

    ``sections``: analysis name -> ``report_section()`` dict (``headline``, ``table``,
    ``caption``); analyses without one are shown from their summary in ``results``.
    """
    root = Path(root)
    path = root / "index.html"
    write_text(path, render(results, run_info, figures, root, sections))
    return path


__all__ = ["render", "write_report"]
