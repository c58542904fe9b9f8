"""The committed gRPC code is what scripts/gen_proto.py makes from proto/ today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "src" / "gateway" / "cprv1" / "pb"


def _tree(root: Path) -> dict[str, bytes]:
    """Relative path → bytes of every generated file (bytecode caches are not generated)."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    """Regenerating into a temporary directory gives the committed files byte for byte."""
    fresh = tmp_path / "pb"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(fresh)],
        check=True,
        capture_output=True,
    )
    expected, committed = _tree(fresh), _tree(COMMITTED)
    assert sorted(committed) == sorted(expected), "run: python scripts/gen_proto.py"
    stale = [name for name in expected if committed[name] != expected[name]]
    assert stale == [], "stale generated code; run: python scripts/gen_proto.py"
