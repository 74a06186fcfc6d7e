"""The ``topo-mi`` command: a thin layer over :func:`topo_mi.pipelines.run`.

Exit codes: 0 success; 2 bad input (spec, arguments, files); 1 failure during a run (the message
names the step that failed).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from topo_mi import __version__

EPILOG_RUN = """examples:
  topo-mi run minilm_layers                # a shipped spec, by name
  topo-mi run pipelines/naitzat_d1.toml --out runs/d1
  topo-mi run pipelines/compare_seeds.toml --workers 2 --seed 1
  topo-mi run pipelines/demo.toml --scheduler tcp://10.0.0.5:8786 --out runs/demo-dask
"""
EPILOG_DEMO = """examples:
  topo-mi demo                 # writes runs/demo (refuses an existing folder)
  topo-mi demo --out /tmp/d --force
"""
EPILOG_MAIN = """examples:
  topo-mi demo
  topo-mi run pipelines/minilm_layers.toml --out runs/minilm
  topo-mi show runs/minilm
  topo-mi list
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="topo-mi", description="Topology, geometry, dynamics and circuits of "
                                "neural-network representations.", epilog=EPILOG_MAIN,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"topo-mi {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp):
        sp.add_argument("--out", type=Path, help="output folder (default: runs/<spec name>)")
        sp.add_argument("--force", action="store_true", help="replace an existing output folder")
        sp.add_argument("--quiet", "-q", action="store_true", help="no progress output")
        sp.add_argument("--workers", type=int, help="run independent analyses in N local processes")
        sp.add_argument("--scheduler", metavar="ADDRESS", help="fan out on a Dask cluster at ADDRESS")
        sp.add_argument("--seed", type=int, help="override the spec's seed")

    r = sub.add_parser("run", help="run a pipeline spec (TOML)", epilog=EPILOG_RUN,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("spec", type=Path, help="path to a .toml spec, or the name of a shipped one (topo-mi list)")
    common(r)
    d = sub.add_parser("demo", help="the main job on the built-in default", epilog=EPILOG_DEMO,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common(d)
    sub.add_parser("list", help="pipelines, datasets and models available",
                   epilog="example:\n  topo-mi list", formatter_class=argparse.RawDescriptionHelpFormatter)
    s = sub.add_parser("show", help="summary table of a run folder", epilog="example:\n  topo-mi show runs/demo",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("run_dir", type=Path)
    return p


def _executor(args):
    from topo_mi.parallel import get_executor

    if args.scheduler:
        return get_executor("dask", address=args.scheduler)
    if args.workers is not None:
        if args.workers < 1:
            raise ValueError(f"--workers: expected an integer >= 1, got {args.workers}")
        return get_executor("process", n_workers=args.workers)
    return None


def _spec_dir() -> Path | None:
    """The folder of shipped specs: ./pipelines, else the checkout's pipelines/."""
    for d in (Path.cwd() / "pipelines", Path(__file__).resolve().parents[1] / "pipelines"):
        if d.is_dir():
            return d
    return None


def _shipped(name: str) -> Path | None:
    d = _spec_dir()
    if d is None or "/" in name or name.endswith(".toml"):
        return None
    p = d / f"{name}.toml"
    return p if p.is_file() else None


def _network_order(keys, layers) -> list:
    """Summary keys with ``name[layer]`` entries grouped by name, layers in network order."""
    import re

    pos = {str(layer): i for i, layer in enumerate(layers or [])}
    first: dict[str, int] = {}
    parsed = []
    for i, k in enumerate(keys):
        m = re.fullmatch(r"(.*)\[(.*)\]", str(k))
        base, layer = (m.group(1), m.group(2)) if m else (str(k), None)
        first.setdefault(base, i)
        # unknown layers keep a natural order (act2 before act10)
        natural = [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", layer or "")]
        parsed.append(((first[base], pos.get(layer, len(pos)), [str(t).zfill(8) for t in natural]), k))
    return [k for _, k in sorted(parsed, key=lambda t: t[0])]


def _print_summary(results: dict, out=None) -> None:
    out = out or sys.stdout
    print(f"run {results.get('name')!r} (seed {results.get('seed')})", file=out)
    layers = (results.get("activations") or {}).get("layers")
    for kind, summary in results.get("analyses", {}).items():
        print(f"\n  {kind}", file=out)
        for k in _network_order(list(summary), layers):
            v = summary[k]
            if isinstance(v, float):
                v = f"{v:.4g}"
            elif isinstance(v, (list, dict)):
                import json

                v = json.dumps(v)
                v = v if len(v) <= 90 else v[:87] + "..."
            print(f"    {k:<32} {v}", file=out)


def _list(out=None) -> None:
    out = out or sys.stdout
    from topo_mi import datasets, models

    spec_dir = _spec_dir()
    print("pipelines (topo-mi run NAME):", file=out)
    print("  demo (built in)", file=out)
    if spec_dir is not None:
        for f in sorted(spec_dir.glob("*.toml")):
            print(f"  {f.stem:<16} {f}", file=out)
    print("datasets:", file=out)
    for n in datasets.names():
        print(f"  {n}", file=out)
    print("models (zoo):", file=out)
    for n in models.zoo_names():
        print(f"  {n}", file=out)
    print("analyses: topology, geometry, dynamics, circuits, compare, lyapunov_gain", file=out)


def main(argv=None) -> int:
    """The command line; returns the exit code (warning filters set by -q end with the call)."""
    import warnings

    with warnings.catch_warnings():
        return _main(argv)


def _main(argv=None) -> int:
    from topo_mi.errors import InvalidParameterError, SpecError, TopoMIError
    from topo_mi.pipelines.runner import DEMO_SPEC, RunStepError, read_results, run

    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False):
        import warnings

        from topo_mi.errors import TopoMIWarning

        warnings.simplefilter("ignore", TopoMIWarning)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "list":
            _list()
            return 0
        if args.command == "show":
            _print_summary(read_results(args.run_dir))
            return 0
        spec = DEMO_SPEC if args.command == "demo" else args.spec
        if args.command == "run" and not args.spec.exists():
            spec = _shipped(str(args.spec))
            if spec is None:
                d = _spec_dir()
                names = ", ".join(sorted(f.stem for f in d.glob("*.toml"))) if d is not None else "(none found)"
                print(f"topo-mi: error: spec: expected a TOML file or the name of a shipped spec ({names}), "
                      f"got {str(args.spec)!r}", file=sys.stderr)
                return 2
        out = args.out or (Path("runs/demo") if args.command == "demo" else None)
        result = run(spec, out=out, executor=_executor(args), force=args.force, seed=args.seed,
                     progress=not args.quiet)
    except SpecError as exc:
        print(f"topo-mi: error: {exc}", file=sys.stderr)
        return 2
    except RunStepError as exc:
        print(f"topo-mi: run failed: {exc}", file=sys.stderr)
        return 1
    except (InvalidParameterError, ValueError, OSError) as exc:
        # OSError: files and folders (missing, not writable, a file in the way) are bad input
        print(f"topo-mi: error: {exc}", file=sys.stderr)
        return 2
    except TopoMIError as exc:
        print(f"topo-mi: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("topo-mi: interrupted", file=sys.stderr)
        return 130
    if not args.quiet:
        _print_summary(result.results)
        print(f"\nreport: {Path(result.out_dir) / 'index.html'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
