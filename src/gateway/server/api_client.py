"""``cpr-gateway canary``: the operator's client of the admin API (:mod:`.api`).

``status`` prints every canary route as a table (or the API's JSON); ``pause``, ``resume``,
``promote`` and ``rollback`` ask for a change and print the route as it then is. Exit status:
0 done, 1 refused (by the API, or no gateway answered), 2 a usage problem (no token).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.server.tokens import AdminToken

#: An admin call is one small request to a local server: waiting longer means it is not there.
TIMEOUT_S = 10.0
DEFAULT_ADMIN = "http://127.0.0.1:9100"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the API answered: the HTTP status and the JSON body (None if it was not JSON)."""

    status: int
    body: Any


class Unreachable(Exception):
    """No admin API answered at the address."""


async def call(
    admin: str, token: AdminToken, method: str, path: str, body: object = None
) -> Answer:
    """One /api/v1 call; Unreachable if nothing answers at ``admin``."""
    url = admin.rstrip("/") + "/api/v1" + path
    headers = {"Authorization": f"Bearer {token.secret}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session,
            session.request(method, url, headers=headers, json=body) as response,
        ):
            try:
                return Answer(response.status, await response.json(content_type=None))
            except ValueError:
                return Answer(response.status, None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Unreachable(f"no admin API at {admin} ({type(exc).__name__}: {exc})") from None


async def run_canary(
    admin: str, token: AdminToken, verb: str, route: str | None, *, reason: str, as_json: bool
) -> int:
    """The ``canary`` command once its token is known."""
    try:
        if verb == "status":
            answer = await call(admin, token, "GET", "/routes")
        else:
            assert route is not None
            body = {"reason": reason} if reason else None
            answer = await call(admin, token, "POST", f"/routes/{route}/{verb}", body)
    except Unreachable as exc:
        print(f"cpr-gateway canary: {exc}", file=sys.stderr)
        return 1
    if answer.status != 200:
        error = answer.body.get("error") if isinstance(answer.body, dict) else None
        what = "status" if verb == "status" else f"{verb} {route}"
        print(f"cpr-gateway canary: {what}: {error or answer.status}", file=sys.stderr)
        return 1
    routes = answer.body["routes"] if verb == "status" else [answer.body]
    if as_json:
        print(json.dumps(answer.body, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_table(routes))
    return 0


# -- the table ----------------------------------------------------------------------------------

#: The gates last: the longest cell, and the one a narrow terminal may wrap.
_HEADINGS = ("route", "status", "step", "weights", "reason", "gates")


def render_table(routes: list[dict[str, Any]]) -> str:
    """Canary routes (the API's JSON) as a table for a terminal."""
    if not routes:
        return "No route has a canary plan.\n"
    rows = [_HEADINGS, *(_row(route) for route in routes)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADINGS) - 1)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _row(route: dict[str, Any]) -> tuple[str, ...]:
    step = route["step"]
    steps = route["steps"]
    weights = ", ".join(f"{b} {_percent(w)}" for b, w in route["weights"].items())
    gates = ", ".join(_gate(g) for g in route["gates"]) or "not evaluated yet"
    return (
        route["route"],
        route["status"],
        f"{step}/{len(steps) - 1} ({_percent(steps[step])})",
        weights,
        route["reason"] or "-",
        gates,
    )


def _gate(gate: dict[str, Any]) -> str:
    mark = {True: "ok", False: "FAILED", None: "waiting"}[gate["passed"]]
    return f"{gate['name']} {_figure(gate['figure'])}/{_figure(gate['threshold'])} {mark}"


def _figure(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _percent(value: float) -> str:
    return f"{value:g}%"
