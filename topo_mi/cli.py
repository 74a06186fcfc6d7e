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
    r.add_argument("spec", type=Path, help="path to a .toml spec")
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


def _print_summary(results: dict, out=None) -> None:
    out = out or sys.stdout
    print(f"run {results.get('name')!r} (seed {results.get('seed')})", file=out)
    for kind, summary in results.get("analyses", {}).items():
        print(f"\n  {kind}", file=out)
        for k, v in summary.items():
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

    spec_dir = Path.cwd() / "pipelines"
    if not spec_dir.is_dir():
        spec_dir = Path(__file__).resolve().parents[1] / "pipelines"
    print("pipelines:", file=out)
    print("  demo (built in)", file=out)
    if spec_dir.is_dir():
        for f in sorted(spec_dir.glob("*.toml")):
            print(f"  {f}", file=out)
    print("datasets:", file=out)
    for n in datasets.names():
        print(f"  {n}", file=out)
    print("models (zoo):", file=out)
    for n in models.zoo_names():
        print(f"  {n}", file=out)
    print("analyses: topology, geometry, dynamics, circuits, compare, lyapunov_gain", file=out)


def main(argv=None) -> int:
    from topo_mi.errors import InvalidParameterError, SpecError, TopoMIError
    from topo_mi.pipelines.runner import DEMO_SPEC, RunStepError, read_results, run

    parser = _parser()
    args = parser.parse_args(argv)
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
            print(f"topo-mi: error: spec: expected a TOML file, got {str(args.spec)!r} which does not exist",
                  file=sys.stderr)
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
