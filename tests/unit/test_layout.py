"""Guards on the repository layout and on the cost of ``import topo_mi``."""
import configparser
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_top_level_folders_are_not_packages():
    for name in ("pipelines", "datasets"):
        assert (ROOT / name).is_dir(), name
        assert not (ROOT / name / "__init__.py").exists(), f"{name}/ must not be importable"
    assert not list((ROOT / "datasets").rglob("*.py")), "datasets/ holds data cards, never .py files"


def test_distribution_exposes_only_topo_mi():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options.packages.find"]["include"].strip() == "topo_mi*"
    from setuptools import find_packages

    pkgs = find_packages(str(ROOT), include=["topo_mi*"])
    assert pkgs and all(p == "topo_mi" or p.startswith("topo_mi.") for p in pkgs)
    assert "--import-mode=importlib" in cfg["tool:pytest"]["addopts"]


def test_torch_is_pinned_exactly():
    text = (ROOT / "setup.cfg").read_text() + (ROOT / "constraints.txt").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("torch")]
    assert lines and all(ln == "torch==2.13.0" for ln in lines), lines


def test_import_is_light():
    heavy = ["torch", "umap", "gudhi", "ripser", "matplotlib", "transformers", "datasets",
             "sklearn", "networkx", "numba", "dask"]
    code = ("import sys, json, topo_mi, topo_mi.pipelines, topo_mi.errors; "
            f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_pipeline_functions_are_not_shadowed_by_submodules():
    import importlib

    import topo_mi.pipelines as P

    for name, module in P._ATTRS.items():
        importlib.import_module(module)  # importing the submodule must not shadow the function
        assert not isinstance(getattr(P, name), type(P)), name
    assert callable(P.compare) and callable(P.betti_profile)


def test_every_public_function_and_class_has_a_docstring():
    """What ``__all__`` exports is documented: a docstring assembled at run time (the trainers share
    their parameter text) must still reach ``__doc__``."""
    import importlib
    import inspect
    import pkgutil

    import topo_mi

    names = ["topo_mi"] + [f"topo_mi.{m.name}" for m in pkgutil.iter_modules(topo_mi.__path__)
                           if not m.name.startswith("_")]
    missing = []
    for name in names:
        mod = importlib.import_module(name)
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not (obj.__doc__ or "").strip():
                missing.append(f"{name}.{attr}")
    assert not missing
    from topo_mi.dictionaries import train_sae

    assert "auxk_normalization" in train_sae.__doc__ and "{common}" not in train_sae.__doc__
