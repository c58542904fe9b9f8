"""The image definition's shape (no image is built in the tests: no registry, no network):
a builder stage that makes wheels, a runtime stage that installs only those, as a numeric
non-root user, with the gateway as its entrypoint."""

from __future__ import annotations

import json
import re

import pytest
from deploy_tree import DEPLOY, OVERLAYS, find

_CONTAINERFILE = DEPLOY / "Containerfile"
#: Packages that would put a compiler or build tools in an image.
_BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|python3?-dev|cargo)\b")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", _CONTAINERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def _args() -> dict[str, str]:
    """Defaults of the ARGs declared before the first FROM."""
    args: dict[str, str] = {}
    for word, rest in _instructions():
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_two_stages_and_the_base_image_is_pinned_by_tag() -> None:
    """A builder and a runtime stage, both from a tagged base that is not `latest`."""
    stages = _stages()
    assert len(stages) >= 2
    args = _args()
    for stage in stages:
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        name, _, tag = image.rpartition("@")[2].rpartition(":")
        assert name and tag and tag != "latest", image


def test_the_runtime_stage_installs_only_the_builders_wheels() -> None:
    """pip from the wheel directory with --no-index; no compiler or build tool is installed."""
    runtime = _stages()[-1]
    runs = " ".join(rest for word, rest in runtime if word == "RUN")
    assert "--no-index" in runs and "from=build" in runs
    assert "apt-get install" not in runs
    assert not _BUILD_TOOLS.search(runs)


def test_it_runs_as_a_numeric_non_root_user_with_the_gateway_as_entrypoint() -> None:
    """runAsNonRoot can check a numeric USER; the default command serves the mounted config."""
    runtime = dict(_stages()[-1])
    user, _, group = runtime["USER"].partition(":")
    assert user.isdigit() and int(user) != 0
    assert group == "" or (group.isdigit() and int(group) != 0)
    assert json.loads(runtime["ENTRYPOINT"]) == ["cpr-gateway"]
    assert json.loads(runtime["CMD"]) == ["serve", "--config", "/etc/cpr-gateway/routing.yaml"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_image_runs_the_user_the_pods_ask_for(overlay: str) -> None:
    """The gateway pods' runAsUser is the image's USER."""
    user = dict(_stages()[-1])["USER"].partition(":")[0]
    pod = find(overlay, "Deployment", "cpr-gateway")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(user)
