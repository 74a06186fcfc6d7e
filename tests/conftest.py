import html.parser
import json
import os
import re
from pathlib import Path

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


class _Refs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.stack, self.errors = [], [], []

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.refs.append(v)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}>")
        else:
            self.stack.pop()


def check_report(out: Path):
    for name in ("results.json", "run.json", "index.html"):
        assert (out / name).is_file(), name
    parser = _Refs()
    parser.feed((out / "index.html").read_text())
    assert not parser.errors and parser.stack == [], (parser.errors, parser.stack)
    for ref in parser.refs:
        if not re.match(r"^(data:|#|https?:)", ref):
            assert (out / ref).exists(), ref
    return json.loads((out / "results.json").read_text())


@pytest.fixture
def report_checker():
    """check_report(folder): results.json/run.json/index.html exist, HTML balanced, refs exist."""
    return check_report
