"""One fuzz target under libFuzzer, coverage-guided by atheris:
``python -m cpr_devtools.fuzz.worker TARGET [libFuzzer flags] [CORPUS_DIR ...]``; given a
file instead of corpus directories, it replays that one input (a crash's reproducer).

Only the product (``gateway``) is instrumented: coverage there is what guides the fuzzer, not
coverage of PyYAML or the standard library. ``python -m cpr_devtools.fuzz`` starts one of these
per target and reads what libFuzzer prints (docs/fuzzing.md).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import atheris
from atheris import import_hook


def main(argv: list[str]) -> None:
    """Fuzz the target named ``argv[1]``; libFuzzer reads the rest of ``argv``."""
    with import_hook.instrument_imports(include=["gateway"]):
        from cpr_devtools.fuzz.targets import TARGETS  # noqa: PLC0415
    name = argv[1]
    target = TARGETS[name]() if name in TARGETS else _named(name)()
    if name == "routing":
        from cpr_devtools.fuzz.yaml_mutations import mutate  # noqa: PLC0415

        def mutator(data: bytes, max_size: int, seed: int) -> bytes:
            return mutate(data, max_size, seed, atheris.Mutate)

        atheris.Setup([argv[0], *argv[2:]], target, custom_mutator=mutator)
    else:
        atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


def _named(spec: str) -> Callable[[], Callable[[bytes], None]]:
    """What makes the target ``module:attribute`` names (not one of TARGETS)."""
    module, _, attribute = spec.partition(":")
    made: Callable[[], Callable[[bytes], None]] = getattr(
        importlib.import_module(module), attribute
    )
    return made


if __name__ == "__main__":
    main(sys.argv)
