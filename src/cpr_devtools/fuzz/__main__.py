"""``python -m cpr_devtools.fuzz``: every fuzz target, a full run's executions (10**6 together)
unless told otherwise; prints each target's executions, wall time and outcome, and exits 1
when any target crashed or hung (docs/fuzzing.md)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cpr_devtools.fuzz.run import SPECS, Outcome, report_line, run_target


def main(argv: list[str] | None = None) -> int:
    """Run the targets ``argv`` names (all by default); 0 when every one ended ok."""
    parser = argparse.ArgumentParser(prog="python -m cpr_devtools.fuzz", description=__doc__)
    parser.add_argument("targets", nargs="*", help=f"of {', '.join(SPECS)} (default: all)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="share of a full run's executions (default 1)"
    )
    parser.add_argument("--var", type=Path, default=Path("var"), help="corpora and crashes go here")
    parser.add_argument("--repo", type=Path, default=Path("."), help="where routing.yaml is")
    args = parser.parse_args(argv)
    work, repo = (args.var / "fuzz").resolve(), args.repo.resolve()
    names = args.targets or list(SPECS)
    unknown = sorted(set(names) - set(SPECS))
    if unknown:
        parser.error(f"no target {', '.join(unknown)}; there are {', '.join(SPECS)}")
    began, results = time.monotonic(), []
    for name in names:
        runs = max(1, round(SPECS[name].runs * args.scale))
        result = run_target(name, runs, work, repo)
        results.append(result)
        print(report_line(result), flush=True)
        if result.detail:
            print(result.detail, file=sys.stderr)
    total = sum(r.executions for r in results)
    failed = [r for r in results if r.outcome is not Outcome.OK]
    print(
        f"total    {total:>9,} executions  {time.monotonic() - began:7.1f} s"
        f"  {len(failed)} of {len(results)} targets crashed, hung or did not run"
    )
    for result in failed:
        if result.artifact is not None:
            print(f"replay: python -m cpr_devtools.fuzz.worker {result.target} {result.artifact}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
