"""The HTML report: well-formed, references only existing files, renders in headless Chromium."""
import shutil
import subprocess

import numpy as np
import pytest

from topo_mi.report import write_report


def _make_report(tmp_path):
    from topo_mi.plotting import get_ax, save_figure

    ax = get_ax()
    ax.plot(np.arange(10), np.arange(10) ** 2, label="<b>escaped</b>")
    ax.legend()
    (tmp_path / "figures").mkdir()
    save_figure(ax, tmp_path / "figures" / "topology.png")
    results = {"name": "<script>alert(1)</script>", "seed": 0,
               "analyses": {"topology": {"betti_0": [9, 3, 1], "note": "a < b & c"}}}
    run_info = {"spec": {"name": "x"}, "versions": {"numpy": np.__version__}, "timings_s": {"topology": 0.1},
                "topo_mi": "0", "created": "now"}
    return write_report(tmp_path, results=results, run_info=run_info, figures={"topology": "figures/topology.png"})


def test_report_structure(tmp_path, report_checker):
    path = _make_report(tmp_path)
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "run.json").write_text("{}")
    report_checker(tmp_path)
    text = path.read_text()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text
    assert "data:image/png;base64," in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make browser-test installs it)")
def test_browser_renders_report(tmp_path):
    path = _make_report(tmp_path)
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--window-size=1200,900"]
    proc = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", path.as_uri()], capture_output=True,
                          text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "rror" in ln)]
    assert not console, console
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.std() > 0.01  # not blank
