"""The HTML report: well-formed, escaped, references only existing files, and every section —
summary, per-analysis headline, table, captioned figure, parameters — renders in headless Chromium."""
import html.parser
import json
import shutil
import subprocess

import numpy as np
import pytest

from topo_mi.report import write_report


def _results_objects():
    """Real results of small analyses (seconds): a Betti profile and a layer x layer comparison."""
    from topo_mi import datasets
    from topo_mi.pipelines import betti_profile, compare

    c = datasets.make("circle", n=100, noise=0.05, seed=0).X
    rng = np.random.default_rng(0)
    acts = {"act1": c @ rng.normal(size=(2, 6)), "act2": np.tanh(c @ rng.normal(size=(2, 5)))}
    return {"topology": betti_profile(acts, seed=0, progress=False),
            "compare": compare(acts, methods=("cka",), n_boot=10, seed=0, names=("mlp", "mlp"), progress=False)}


def _make_report(tmp_path):
    from topo_mi.plotting import save_figure

    objs = _results_objects()
    (tmp_path / "figures").mkdir()
    figures, sections, analyses = {}, {}, {}
    for kind, res in objs.items():
        save_figure(res.plot(), tmp_path / "figures" / f"{kind}.png")
        figures[kind] = f"figures/{kind}.png"
        sections[kind] = res.report_section()
        analyses[kind] = res.summary()
        res.save(tmp_path / "analyses" / kind)
    sections["topology"]["headline"] += " <script>alert(1)</script>"
    results = {"name": "<script>alert(1)</script>", "seed": 0, "dataset": {"name": "circle", "n": 100},
               "model": {"models": ["mlp"], "accuracy": [0.975]},
               "activations": {"layers": ["act1", "act2"], "n_samples": 100},
               "analyses": analyses}
    run_info = {"spec": {"name": "x", "dataset": {"name": "circle"}, "analyses": {"topology": {"max_dim": 1}}},
                "versions": {"numpy": np.__version__}, "timings_s": {"topology": 0.1}, "topo_mi": "0",
                "created": "now"}
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "run.json").write_text(json.dumps(run_info))
    path = write_report(tmp_path, results=results, run_info=run_info, figures=figures, sections=sections)
    return path, sections


class _Sections(html.parser.HTMLParser):
    """Text of the summary list, and per <section id=...>: headline, caption, table rows, images."""

    def __init__(self):
        super().__init__()
        self.sections, self.current, self.where, self.summary, self.ids = {}, None, [], [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "section":
            self.current = a["id"]
            self.sections[self.current] = {"headline": "", "caption": "", "rows": 0, "img": 0}
        cls = a.get("class", "")
        self.where.append("headline" if cls == "headline" else "caption" if tag == "figcaption" else
                          "summary" if cls == "summary" else tag)
        if self.current and tag == "img" and a.get("src", "").startswith("data:image/png;base64,"):
            self.sections[self.current]["img"] += 1
        if self.current and tag == "tr" and "tbody" in self.where and "details" not in self.where:
            self.sections[self.current]["rows"] += 1
        if tag == "img":
            self.where.pop()

    def handle_endtag(self, tag):
        if self.where:
            self.where.pop()
        if tag == "section":
            self.current = None

    def handle_data(self, data):
        if "summary" in self.where:
            self.summary.append(data)
        if self.current and self.where:
            for key in ("headline", "caption"):
                if key in self.where:
                    self.sections[self.current][key] += data


def _check_sections(text, sections):
    p = _Sections()
    p.feed(text)
    assert {"summary", "parameters", *sections} <= p.ids
    summary = " ".join(p.summary)
    assert "Model" in summary and "Data" in summary and "97.50 %" in summary
    for kind, sec in sections.items():
        got = p.sections[kind]
        assert got["headline"].strip() == sec["headline"], kind
        assert got["caption"].strip() == "Figure. " + sec["caption"], kind
        assert got["rows"] == len(sec["table"]["index"]) and got["img"] == 1, (kind, got)
        assert sec["headline"] in summary  # each headline is in the summary too


def test_report_structure(tmp_path, report_checker):
    path, sections = _make_report(tmp_path)
    report_checker(tmp_path)  # balanced HTML, every link (the saved arrays) exists
    text = path.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert 'href="analyses/topology/arrays.npz"' in text
    assert "per layer: 0.2 quantile" in sections["topology"]["caption"]  # the scale rule is said
    assert sections["topology"]["table"]["index"] == ["act1", "act2"]
    _check_sections(text, sections)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make browser-test installs it)")
def test_browser_renders_every_section_and_caption(tmp_path):
    path, sections = _make_report(tmp_path)
    prof = [f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *FLAGS, *prof, "--dump-dom", path.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    _check_sections(dom.stdout, sections)  # what the browser parsed, not the file
    shot = tmp_path / "shot.png"
    proc = subprocess.run([CHROMIUM, *FLAGS, *prof, "--window-size=1200,2400", f"--screenshot={shot}",
                           path.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "rror" in ln)]
    assert not console, console
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.std() > 0.01  # not blank
    # the embedded figures were decoded and drawn: plenty of non-white, coloured pixels
    coloured = (np.abs(img[..., 0] - img[..., 2]) > 0.2).mean()
    assert coloured > 0.002, coloured
