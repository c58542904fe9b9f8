"""docs/routing.md stays true: its examples load, and its diff output is what the code prints."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from gateway.config import GatewayConfig, diff_tables, load_routing
from gateway.config.schema import Split

DOC = Path(__file__).resolve().parents[2] / "docs" / "routing.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = [block for block in re.findall(r"```yaml\n(.*?)```", TEXT, re.S) if "version:" in block]
OUTPUTS = re.findall(r"```text\n(.*?)```", TEXT, re.S)


def _load(tmp_path: Path, index: int) -> GatewayConfig:
    path = tmp_path / f"example{index}.yaml"
    path.write_text(EXAMPLES[index], encoding="utf-8")
    return load_routing(path)


def test_the_three_examples_load(tmp_path: Path) -> None:
    """All-legacy, one operation moved, and the canary are valid files."""
    assert len(EXAMPLES) == 3
    configs = [_load(tmp_path, index) for index in range(3)]
    assert [len(config.routes) for config in configs] == [1, 2, 3]
    assert isinstance(configs[2].routes[1].target, Split)


def test_the_documented_diff_lines_are_what_the_code_prints(tmp_path: Path) -> None:
    """The check-config --against output shown in the doc, for the first → third example."""
    legacy, _moved, canary = (_load(tmp_path, index) for index in range(3))
    documented = [line for line in OUTPUTS[0].splitlines() if line.startswith("lookup")]
    assert diff_tables(legacy.routes, canary.routes) == documented
    split = canary.routes[1].target
    assert isinstance(split, Split)
    ramped = Split(split.key, (("mainframe", 9000), ("persons-v2", 1000)))
    raised = (canary.routes[0], replace(canary.routes[1], target=ramped), canary.routes[2])
    assert diff_tables(canary.routes, raised) == OUTPUTS[1].splitlines()


def test_the_shipped_file_holds_lookups_on_the_mainframe_under_a_plan(tmp_path: Path) -> None:
    """routing.yaml: lookups answered by the mainframe, shadowed to the services, with a canary
    plan that starts at 0% (shadow only; docs/canary.md); the rest as the documented example."""
    shipped = load_routing(DOC.parents[1] / "routing.yaml")
    lookups, rest = shipped.routes
    assert lookups.target == "mainframe" and lookups.canary is not None
    assert lookups.canary.candidate == "persons-v2" and lookups.canary.steps[0] == 0
    assert [shadow.backend for shadow in lookups.shadows] == ["persons-v2"]
    canary = _load(tmp_path, 2)
    assert (rest.target, rest.match) == (canary.routes[-1].target, canary.routes[-1].match)
