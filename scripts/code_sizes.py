"""Module and function sizes of the hand-written code: ``python scripts/code_sizes.py [DIR]``.

Prints the number of modules and their line counts (median, largest, how many over 400), the
number of functions and theirs (median, 90th percentile, largest, how many over 40), and what
``gateway/`` holds at its top level. Generated protobuf code (any ``pb`` folder) is left out.
The figures quoted in closing notes and reviews come from here.
"""

from __future__ import annotations

import ast
import statistics
import sys
from pathlib import Path

MODULE_LIMIT, FUNCTION_LIMIT = 400, 40


def main(root: Path) -> None:
    """Print the figures for every ``*.py`` under ``root``."""
    modules: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    for path in sorted(root.rglob("*.py")):
        if "pb" in path.relative_to(root).parts:
            continue
        text = path.read_text(encoding="utf-8")
        modules.append((len(text.splitlines()), str(path)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                functions.append((node.end_lineno - node.lineno + 1, f"{path}:{node.name}"))
    sizes = [n for n, _ in modules]
    lengths = sorted(n for n, _ in functions)
    print(
        f"modules {len(modules)}: lines median {statistics.median(sizes)}, "
        f"max {max(modules)[0]} ({max(modules)[1]}), over {MODULE_LIMIT}: "
        f"{sum(n > MODULE_LIMIT for n in sizes)}, total {sum(sizes)}"
    )
    print(
        f"functions {len(functions)}: lines median {statistics.median(lengths)}, "
        f"p90 {lengths[int(0.9 * len(lengths))]}, max {max(functions)[0]} ({max(functions)[1]}), "
        f"over {FUNCTION_LIMIT}: {sum(n > FUNCTION_LIMIT for n in lengths)}"
    )
    product = root / "gateway"
    if product.is_dir():
        tops = [p for p in product.iterdir() if p.suffix == ".py"]
        subs = [p for p in product.iterdir() if (p / "__init__.py").exists()]
        print(f"gateway/ top level: {len(tops)} modules, {len(subs)} subpackages")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("src"))
