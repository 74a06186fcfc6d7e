"""Every ```python block of the README runs as written (in order, one namespace per section).

A block preceded by a line ``<!-- slow -->`` runs in the slow tier only. Figures go to the Agg
backend; the working directory is a temporary folder, so nothing is written to the checkout.
"""
import re
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks():
    text = README.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip().splitlines()[-1:] or [""]
        slow = before[0].strip() == "<!-- slow -->"
        out.append(pytest.param(m.group(1), id=f"README.md:{line}",
                                marks=[pytest.mark.slow] if slow else []))
    return out


BLOCKS = _blocks()


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_block_runs(code, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    plt.close("all")
    print(f"{time.perf_counter() - t0:.1f} s")
