"""`cpr-gateway canary` as an operator runs it, against a running gateway's admin API."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from admin_harness import ROUTE, CanaryGateway, canary_gateway

ROOT = Path(__file__).resolve().parents[2]


async def cli(*args: str) -> tuple[int, str, str]:
    """The console script in a process of its own (the gateway keeps serving in this loop)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "canary", *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def admin_args(gw: CanaryGateway) -> tuple[str, ...]:
    return ("--admin", gw.admin, "--token-file", str(gw.token_file))


async def test_status_is_a_table_and_json(tmp_path: Path) -> None:
    """status prints one row per canary route with its step, weights and state; --json the API's."""
    async with canary_gateway(tmp_path) as gw:
        code, out, err = await cli("status", *admin_args(gw))
        assert code == 0, err
        heading, row = out.splitlines()
        assert heading.split() == ["route", "status", "step", "weights", "reason", "gates"]
        assert row.startswith(f"{ROUTE}  running  0/3 (0%)  mainframe 100%, persons-v2 0%")
        code, out, _ = await cli("status", "--json", *admin_args(gw))
        assert code == 0
        assert json.loads(out)["routes"][0]["weights"] == {"mainframe": 100.0, "persons-v2": 0.0}


async def test_each_verb_changes_the_route_and_a_refusal_exits_1(tmp_path: Path) -> None:
    """promote and pause change the route (seen through the API); an impossible resume of a
    running route and an unknown route exit 1 with the API's reason."""
    async with canary_gateway(tmp_path) as gw:
        code, out, err = await cli("promote", ROUTE, *admin_args(gw))
        assert code == 0, err
        assert "1/3 (5%)" in out
        code, _, err = await cli("pause", ROUTE, "--reason", "night", *admin_args(gw))
        assert code == 0, err
        [route] = (await gw.call("GET", "/routes"))[1]["routes"]
        assert (route["step"], route["status"]) == (1, "paused")
        assert "night" in route["reason"]
        assert (await cli("resume", ROUTE, *admin_args(gw)))[0] == 0
        code, _, err = await cli("resume", ROUTE, *admin_args(gw))
        assert code == 1
        assert err.startswith(f"cpr-gateway canary: resume {ROUTE}: ")
        code, _, err = await cli("rollback", "nowhere", *admin_args(gw))
        assert (code, err) == (
            1,
            "cpr-gateway canary: rollback nowhere: no canary route 'nowhere'\n",
        )


async def test_a_wrong_token_exits_1_and_changes_nothing(tmp_path: Path) -> None:
    """Another secret in the token file: refused, 1, the route where it was."""
    async with canary_gateway(tmp_path) as gw:
        wrong = tmp_path / "wrong.token"
        wrong.write_text("not-the-gateways-token-at-all\n")
        wrong.chmod(0o600)
        code, _, err = await cli("promote", ROUTE, "--admin", gw.admin, "--token-file", str(wrong))
        assert code == 1
        assert "unauthorized" in err
        [route] = (await gw.call("GET", "/routes"))[1]["routes"]
        assert route["step"] == 0


async def test_usage_problems_exit_2_and_no_gateway_exits_1(tmp_path: Path) -> None:
    """No token file, a route given to status or none to a verb: 2; nothing listening: 1."""
    token = tmp_path / "admin.token"
    token.write_text("a-token-that-is-long-enough\n")
    token.chmod(0o600)
    assert (await cli("status", "--token-file", str(tmp_path / "none")))[0] == 2
    assert (await cli("status", "lookups", "--token-file", str(token)))[0] == 2
    assert (await cli("pause", "--token-file", str(token)))[0] == 2
    no_config = await cli("status", "--config", str(tmp_path / "routing.yaml"))
    assert no_config[0] == 2
    assert "--token-file" in no_config[2]
    code, _, err = await cli("status", "--admin", "http://127.0.0.1:9", "--token-file", str(token))
    assert code == 1
    assert "no admin API at http://127.0.0.1:9" in err


async def test_the_token_file_comes_from_routing_yaml(tmp_path: Path) -> None:
    """Without --token-file the command reads --config's admin.token_file."""
    async with canary_gateway(tmp_path) as gw:
        code, out, err = await cli(
            "status", "--admin", gw.admin, "--config", str(tmp_path / "routing.yaml")
        )
        assert code == 0, err
        assert ROUTE in out
