"""`python -m cpr_bench`: the benchmark, until `cpr-gateway bench` is wired in."""

import sys

from cpr_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
