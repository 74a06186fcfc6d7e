"""Run a declarative spec end to end: dataset -> model -> activations -> analyses -> report.

``run(spec)`` is what ``topo-mi run SPEC`` calls. A run's output folder holds

- ``results.json``: every summary figure (deterministic: same spec and seed, same file);
- ``analyses/<name>/``: each analysis result (``result.json`` + ``arrays.npz``, reloadable with
  ``topo_mi.load_result``);
- ``figures/<name>.png``; ``index.html``: a self-contained report (figures embedded);
- ``run.json``: the resolved spec, package versions, seeds, timings, the git commit if any.

The folder is written under a temporary name and renamed when complete; an existing non-empty
folder is refused unless ``force=True``.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from topo_mi import __version__
from topo_mi._io import dumps, write_json, write_text
from topo_mi._results import Result, result_dataclass
from topo_mi.errors import InvalidParameterError, SpecError, TopoMIError
from topo_mi.pipelines.spec import load_spec, validate_spec

DEMO_SPEC = """\
# The main job: `topo-mi demo` (and `make demo`) runs this spec.
name = "demo"
description = "ReLU MLP trained on Naitzat et al.'s D-I: topology, geometry, dynamics and circuits across depth"
seed = 0

[dataset]
name = "naitzat_d1"

[model]
zoo = "mlp-naitzat-d1-relu"

[activations]
layers = ["act*"]
reduce = "last"

# Betti numbers of class a (the nine disks) across depth, with Naitzat et al.'s kNN hop metric.
[analyses.topology]
max_dim = 1
metric = "knn_geodesic"
k = 14
threshold = 3      # hops: the Betti numbers are read at 2 hops; a finite threshold keeps the complex small
class_label = 0

[analyses.geometry]
subsample = 1000
n_boot = 20

[analyses.dynamics]
subsample = 500

[analyses.circuits]
subsample = 2000
"""


class RunStepError(TopoMIError, RuntimeError):
    """A step of a run failed; ``.step`` names it."""

    def __init__(self, step: str, exc: BaseException):
        self.step = step
        super().__init__(f"step {step!r} failed: {type(exc).__name__}: {exc}")


@result_dataclass
class RunResult(Result):
    """What a run produced: the output folder, every summary and the timings."""

    out_dir: str
    name: str
    results: dict
    timings: dict

    def summary(self) -> dict:
        return {"out_dir": self.out_dir, "analyses": ", ".join(self.results.get("analyses", {}))}


# ---------------------------------------------------------------------------------------------


def _accepts(fn) -> set[str] | None:
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _analysis_function(kind: str):
    from topo_mi import pipelines

    return {
        "topology": lambda: pipelines.betti_profile,
        "geometry": lambda: pipelines.geometry_profile,
        "dynamics": lambda: pipelines.stability_profile,
        "circuits": lambda: pipelines.circuit_graph,
        "compare": lambda: pipelines.compare,
        "lyapunov_gain": lambda: _lyapunov_gain_fn(),
        "guarantees": lambda: pipelines.proof_table,
    }[kind]()


def _lyapunov_gain_fn():
    from topo_mi.dynamics import lyapunov_vs_gain

    return lyapunov_vs_gain


RUNNER_KEYS = {"subsample"}  # handled by the runner: a seeded random subsample for this analysis only

_SUPPLIED = {  # arguments the runner fills in itself
    "topology": {"acts", "seed", "executor", "progress"},
    "geometry": {"acts", "seed", "executor", "progress"},
    "dynamics": {"model", "inputs", "layers", "seed", "executor", "progress"},
    "circuits": {"model", "data", "seed", "executor", "progress"},
    "compare": {"acts_a", "acts_b", "seed", "executor", "progress"},
    "lyapunov_gain": {"seed", "executor", "progress"},
    "guarantees": {"model", "seed", "progress"},
}

_MODEL_ONLY = {"guarantees"}  # analyses that read the model's weights, not its activations


def check_analysis_params(spec: dict) -> None:
    """Reject analysis parameters the pipeline functions do not take (all at once, with key paths)."""
    problems = []
    for kind, params in spec.get("analyses", {}).items():
        try:
            fn = _analysis_function(kind)
        except (ImportError, AttributeError) as exc:
            problems.append((f"analyses.{kind}", f"this analysis is not available: {exc}"))
            continue
        accepted = _accepts(fn)
        if accepted is None:
            continue
        for key in params:
            if key in RUNNER_KEYS:
                v = params[key]
                if not isinstance(v, int) or isinstance(v, bool) or v < 2:
                    problems.append((f"analyses.{kind}.{key}", f"expected an integer >= 2, got {v!r}"))
                continue
            if key not in accepted or key in _SUPPLIED[kind]:
                valid = sorted(accepted - _SUPPLIED[kind])
                problems.append((f"analyses.{kind}.{key}",
                                 f"unknown parameter; expected one of {', '.join(valid) or '(none)'}"))
    if problems:
        raise SpecError(problems)


# ---------------------------------------------------------------------------------------------
class _Steps:
    def __init__(self, progress: bool):
        self.timings: dict[str, float] = {}
        self.progress = progress

    def __call__(self, name):
        steps = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()
                if steps.progress:
                    print(f"[topo-mi] {name} ...", file=sys.stderr, flush=True)

            def __exit__(self, et, ev, tb):
                steps.timings[name] = round(time.perf_counter() - self.t0, 3)
                if ev is not None and not isinstance(ev, (RunStepError, KeyboardInterrupt)):
                    raise RunStepError(name, ev) from ev
                return False

        return _Ctx()


def _make_dataset(spec: dict, seed: int):
    from topo_mi.datasets import make

    ds = spec["dataset"]
    kwargs = dict(ds.get("params", {}))
    if ds.get("n") is not None:
        kwargs["n"] = ds["n"]
    return make(ds["name"], seed=ds.get("seed", seed), **kwargs)


def _build_models(spec: dict, dataset, seed: int, base_dir: Path | None, progress: bool) -> list:
    """Return ``[(label, model, extra)]``: one model, or one per seed."""
    import torch

    from topo_mi import models as zoo

    m = spec["model"]
    if m.get("zoo"):
        return [(m["zoo"], zoo.pretrained(m["zoo"], progress=progress), None)]
    if m.get("hf"):
        from topo_mi.activations.hf import load_hf, load_minilm

        model, tok = load_minilm() if m["hf"] == "minilm" else load_hf(m["hf"])
        return [(m["hf"], model, tok)]
    arch = m["architecture"]
    cls = {"mlp": zoo.MLP, "residual_mlp": zoo.ResidualMLP, "attention_only": zoo.AttentionOnlyTransformer,
           "rnn": zoo.TanhRNN}[arch]
    params = dict(m.get("params", {}))
    if arch in ("mlp", "residual_mlp"):
        X = np.asarray(dataset.X)
        params.setdefault("in_dim", X.shape[1])
        if dataset.y is not None:
            params.setdefault("out_dim", int(np.max(dataset.y)) + 1)
    if m.get("checkpoint"):
        path = Path(m["checkpoint"])
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        model = cls(**params)
        zoo.load_checkpoint(path, model)
        return [(path.name, model, None)]
    out = []
    for s in (m.get("seeds") or [seed]):
        model = cls(**params, seed=s)
        train = dict(m.get("train", {}))
        if dataset.y is None:
            raise InvalidParameterError("model.architecture: training from scratch needs a labelled dataset")
        zoo.train_classifier(model, torch.as_tensor(np.asarray(dataset.X), dtype=torch.float32),
                             torch.as_tensor(np.asarray(dataset.y)), seed=s, **train)
        out.append((f"{arch}-seed{s}", model, None))
    return out


def _default_layers(model) -> list[str]:
    names = getattr(model, "hidden_names", None)
    if names:
        return list(names)
    from topo_mi.activations.hf import MINILM_LAYERS

    mods = dict(model.named_modules())
    if all(n in mods for n in MINILM_LAYERS):
        return MINILM_LAYERS
    raise InvalidParameterError("activations.layers: this model has no default layers; list module names")


def _collect(spec: dict, model, extra, dataset, *, seed: int, progress: bool):
    """Collect (and cache by content hash) the activations of ``model`` on the dataset."""
    import topo_mi as tm
    from topo_mi._config import data_home
    from topo_mi.activations import model_fingerprint, resolve_layers
    from topo_mi.activations._store import hash_batch

    a = spec["activations"]
    X = np.asarray(dataset.X)
    y = None if dataset.y is None else np.asarray(dataset.y)
    idx = np.arange(len(X))
    if a.get("max_samples") and len(X) > a["max_samples"]:
        from topo_mi._sampling import random_subsample

        idx = random_subsample(len(X), a["max_samples"], seed=seed)
    layers = a.get("layers") or _default_layers(model)
    names = [n for n, _ in resolve_layers(model, layers)]
    if extra is not None:  # a tokenizer: text data
        enc = extra([str(s) for s in X[idx]], padding=True, truncation=True, max_length=64, return_tensors="pt")
        inputs = dict(enc)
    else:
        import torch

        sub = X[idx]
        inputs = torch.as_tensor(sub, dtype=torch.long if sub.dtype.kind in "iu" else torch.float32)
    from topo_mi.activations._store import STORE_FORMAT

    # the store format is part of the key: caches written by an older format are not reused
    key = hashlib.sha256("|".join([STORE_FORMAT, model_fingerprint(model), hash_batch(inputs), ",".join(names),
                                   str(a.get("reduce")), str(a.get("batch_size"))]).encode()).hexdigest()[:24]
    store = data_home() / "activations" / key if a.get("cache", True) else None
    acts = tm.collect(model, inputs, layers=names, reduce=a.get("reduce", "last"),
                      batch_size=a.get("batch_size", 256), store=store, progress=progress,
                      labels=None if y is None else y[idx], sample_ids=idx,
                      dataset_id=spec["dataset"]["name"], seed=seed)
    if y is not None and acts.labels is None:
        from topo_mi.activations import Activations

        acts = Activations(dict(acts.items()), labels=y[idx], sample_ids=acts.sample_ids, meta=acts.meta,
                           check_finite=False, _path=acts.path)
    return acts, inputs


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "topo_mi": __version__}
    for pkg in ("numpy", "scipy", "torch", "scikit-learn", "gudhi", "ripser", "umap-learn", "networkx"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _jsonable(obj):
    """Summaries to JSON-safe data with deterministic rounding of floats (12 significant digits)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if not np.isfinite(v) else float(f"{v:.12g}")
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def run(spec_or_path: Any, *, out=None, executor=None, force: bool = False, seed: int | None = None,
        progress: bool = True) -> RunResult:
    """Run a pipeline spec (a path, a TOML string or a dict) and write its output folder.

    Raises :class:`~topo_mi.errors.SpecError` (bad spec, nothing run),
    :class:`~topo_mi.errors.InvalidParameterError` (bad output folder) or :class:`RunStepError`
    naming the step that failed.
    """
    from topo_mi.parallel import get_executor

    base_dir = Path(spec_or_path).resolve().parent if isinstance(spec_or_path, Path) or (
        isinstance(spec_or_path, str) and spec_or_path.endswith(".toml")) else None
    spec = load_spec(spec_or_path) if not isinstance(spec_or_path, dict) else validate_spec(spec_or_path)
    if seed is not None:
        spec["seed"] = int(seed)
    seed = spec["seed"]
    check_analysis_params(spec)
    out = Path(out or spec.get("out") or Path("runs") / spec["name"])
    spec_file = Path(spec_or_path) if base_dir is not None else None
    check_output_folder(out, force=force, spec_file=spec_file)
    ex_spec = spec.get("executor", {})
    if executor is None:
        executor = get_executor(ex_spec.get("kind", "serial"), n_workers=ex_spec.get("workers"),
                                address=ex_spec.get("address"))
    else:
        executor = get_executor(executor)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    (tmp / "figures").mkdir(parents=True)
    (tmp / "analyses").mkdir()
    steps = _Steps(progress)
    results: dict[str, Any] = {"name": spec["name"], "seed": seed, "analyses": {}}
    figures: dict[str, str] = {}
    try:
        dataset = models = acts_list = inputs = None
        if "dataset" in spec:
            with steps("dataset"):
                dataset = _make_dataset(spec, seed)
                results["dataset"] = _jsonable({"name": spec["dataset"]["name"], "n": len(dataset.X),
                                                "params": dataset.card.get("params", {})})
        if "model" in spec:
            with steps("model"):
                models = _build_models(spec, dataset, seed, base_dir, progress)
                results["model"] = {"models": [m[0] for m in models]}
            needs_acts = any(kind not in _MODEL_ONLY for kind in spec["analyses"])
            with steps("activations") if needs_acts else contextlib.nullcontext():
                acts_list, inputs_list = [], []
                for _, model, extra in (models if needs_acts else []):
                    acts, inputs = _collect(spec, model, extra, dataset, seed=seed, progress=progress)
                    acts_list.append(acts)
                    inputs_list.append(inputs)
                if needs_acts:
                    inputs = inputs_list[0]
                    results["activations"] = {"layers": acts_list[0].layers,
                                              "n_samples": acts_list[0].n_samples}
        for kind, params in spec["analyses"].items():
            with steps(kind):
                res = _run_analysis(kind, params, spec=spec, models=models, acts_list=acts_list, inputs=inputs,
                                    dataset=dataset, seed=seed, executor=executor)
                results["analyses"][kind] = _jsonable(res.summary())
                res.save(tmp / "analyses" / kind)
                try:
                    ax = res.plot()
                    from topo_mi.plotting import save_figure

                    save_figure(ax if not isinstance(ax, (list, tuple, np.ndarray)) else np.ravel(ax)[0],
                                tmp / "figures" / f"{kind}.png")
                    figures[kind] = f"figures/{kind}.png"
                except TypeError:
                    pass
        write_json(tmp / "results.json", results)
        run_info = {"spec": spec, "versions": _versions(), "seed": seed, "timings_s": steps.timings,
                    "git_commit": _git_commit(), "executor": repr(executor), "topo_mi": __version__,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_json(tmp / "run.json", run_info)
        from topo_mi.report import write_report

        write_report(tmp, results=results, run_info=run_info, figures=figures)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if executor is not None and ex_spec.get("kind") == "dask":
            executor.close()
    _replace_folder(tmp, out)
    return RunResult(out_dir=str(out), name=spec["name"], results=results, timings=steps.timings)


# ---------------------------------------------------------------------------------------------
# the output folder: what --force may replace
# ---------------------------------------------------------------------------------------------
RUN_MARKER = "run.json"


def is_run_folder(path) -> bool:
    """True for a folder that :func:`run` wrote (it holds ``run.json`` with a ``topo_mi`` version)."""
    from topo_mi._io import read_json

    marker = Path(path) / RUN_MARKER
    if not marker.is_file():
        return False
    try:
        info = read_json(marker)
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "topo_mi" in info and "spec" in info


def check_output_folder(out, *, force: bool, spec_file=None) -> None:
    """Refuse an output folder that a run must not write or replace (before anything runs).

    - A missing folder or an empty one is used as is.
    - An existing non-empty folder is replaced only with ``force`` *and* only when topo_mi wrote it
      (:func:`is_run_folder`); never the file system root, the home folder, the working directory,
      a folder that contains the working directory or the spec, whatever ``force`` says.
    """
    out = Path(out)
    resolved = out.resolve()
    protected = {Path("/").resolve(), Path.home().resolve(), Path.cwd().resolve()}
    if resolved in protected or resolved in Path.cwd().resolve().parents:
        raise InvalidParameterError(
            f"out: expected a folder for this run's output, got {str(out)!r}, which is the root, the home "
            f"folder, the working directory or one of its parents; topo_mi never writes or replaces that")
    if spec_file is not None:
        spec_res = Path(spec_file).resolve()
        if resolved == spec_res or resolved in spec_res.parents:
            raise InvalidParameterError(
                f"out: expected a folder that does not contain the spec, got {str(out)!r}, which contains "
                f"{str(spec_file)!r}; choose another output folder")
    for parent in [out.parent, *out.parent.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidParameterError(f"out: expected a folder path, got {str(out)!r}, but "
                                            f"{str(parent)!r} is a file")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InvalidParameterError(f"out: expected a writable location, got {str(out)!r}; "
                                            f"{str(parent)!r} is not writable")
            break
    if not out.exists():
        return
    if not out.is_dir():
        raise InvalidParameterError(f"out: expected a folder, got {str(out)!r}, which is a file")
    if not any(out.iterdir()):
        return
    if not force:
        raise InvalidParameterError(f"out: {str(out)!r} exists and is not empty; pass --force (force=True) "
                                    "to replace a previous run's folder")
    if not is_run_folder(out):
        raise InvalidParameterError(
            f"out: --force replaces only a folder that topo_mi wrote (it holds {RUN_MARKER}); "
            f"{str(out)!r} is not one, so nothing was deleted; choose another output folder")


def _replace_folder(new: Path, out: Path) -> None:
    """Move ``new`` into place at ``out``; an old run folder is renamed aside first, deleted last.

    A crash at any point leaves the old run or the new one at ``out`` (or the old one beside it as
    ``.<name>.old-*``), never neither.
    """
    old = None
    if out.exists():
        if any(out.iterdir()) and not is_run_folder(out):  # checked before the run; re-checked here
            shutil.rmtree(new, ignore_errors=True)
            raise InvalidParameterError(f"out: {str(out)!r} changed during the run and is not a topo_mi run "
                                        "folder; nothing was replaced")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        out.rename(old)
    try:
        new.rename(out)
    except BaseException:
        if old is not None and not out.exists():
            old.rename(out)
        shutil.rmtree(new, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)



def _run_analysis(kind, params, *, spec, models, acts_list, inputs, dataset, seed, executor):
    fn = _analysis_function(kind)
    sig = inspect.signature(fn).parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.values())

    def opt(**kw):
        # Named parameters are passed when the function declares them; through **kwargs only the seed.
        return {k: v for k, v in kw.items() if k in sig or (var_kw and k == "seed")}

    base = opt(seed=seed, executor=executor, progress=False)
    params = dict(params)
    n_sub = params.pop("subsample", None)
    if n_sub is not None and acts_list and acts_list[0].n_samples > n_sub:
        from topo_mi._sampling import random_subsample

        idx = random_subsample(acts_list[0].n_samples, n_sub, seed=seed)
        acts_list = [a.take(idx) for a in acts_list]
        inputs = _take_rows(inputs, idx)
    if kind in ("topology", "geometry"):
        return fn(acts_list[0], **base, **params)
    if kind == "compare":
        if len(acts_list) > 1:
            from topo_mi.pipelines import compare_many

            many = inspect.signature(compare_many).parameters
            kw = {k: v for k, v in base.items() if k in many}
            return compare_many(acts_list, **kw, **params)
        return fn(acts_list[0], acts_list[0], **base, **params)
    if kind == "dynamics":
        model = models[0][1]
        layers = acts_list[0].layers
        return fn(model, inputs, **opt(layers=layers), **base, **params)
    if kind == "circuits":
        model = models[0][1]
        return fn(model, inputs, **base, **params)
    if kind == "lyapunov_gain":
        return fn(**base, **params)
    if kind == "guarantees":
        return fn(models[0][1] if models else None, **base, **params)
    raise InvalidParameterError(f"analyses: unknown analysis {kind!r}")  # pragma: no cover


def _take_rows(inputs, idx):
    if isinstance(inputs, dict):
        return {k: v[idx] for k, v in inputs.items()}
    return inputs[idx]


def read_results(run_dir) -> dict:
    """``results.json`` of a run folder."""
    from topo_mi._io import read_json

    p = Path(run_dir) / "results.json"
    if not p.is_file():
        raise InvalidParameterError(f"run_dir: expected a run folder with results.json, got {str(run_dir)!r}")
    try:
        doc = read_json(p)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"run_dir: expected a results.json written by topo-mi run, got "
                                    f"{str(p)!r}, which is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("analyses"), dict):
        raise InvalidParameterError(f"run_dir: expected a results.json written by topo-mi run (with an "
                                    f"'analyses' table), got {str(p)!r}, which is not one")
    return doc


__all__ = ["run", "RunResult", "RunStepError", "DEMO_SPEC", "check_analysis_params", "read_results"]
