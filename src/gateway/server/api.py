"""/api/v1 on the admin port: the canary routes, their history, the shadow report, and the
operator's changes (pause, resume, promote, rollback). docs/canary.md is the reference.

Every call needs ``Authorization: Bearer <token>`` with a token of ``admin.token_file``
(:mod:`.tokens`); without one configured every call is refused, never open. Each call becomes
an :class:`AdminCall` event: counted, and each change (done or refused) logged as
``admin_action`` with who asked.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.canary.control import CanaryControl, RouteStatus
from gateway.canary.model import GateResult, SideFigures, Transition
from gateway.errors import GatewayError
from gateway.observe.events import ADMIN_CHANGES, AdminCall, Event
from gateway.server.tokens import AdminTokens
from gateway.shadow.report import Report, read_report, render_json
from gateway.shadow.sealing import Sealer
from gateway.storage.database import is_dsn

#: An operator's reason is a sentence, not a document.
MAX_REASON_CHARS = 500
#: History entries one call may ask for.
MAX_HISTORY = 1000
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cpr-gateway admin"'}
_NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked for what: the call, the route it names ("" for none), the token's name."""

    call: str
    route: str
    who: str


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Guarded = Callable[[web.Request, Caller], Awaitable[web.Response]]


class AdminApi:
    """The /api/v1 application: mount it with ``app.add_subapp("/api/v1", api.app())``."""

    def __init__(
        self,
        control: Callable[[], CanaryControl | None],
        tokens: AdminTokens,
        shadow_store: str | Path | None,
        emit: Callable[[Event], None],
        shadow_sealer: Callable[[], Sealer | None] = lambda: None,
    ) -> None:
        """``control`` gives the controller in force (a reload may replace it), None while no
        route has a plan (nothing listed, every route unknown); ``tokens`` empty: every call
        is refused; ``shadow_store``: shadowing.store, whose values ``shadow_sealer`` opens
        (None while the gateway has no shadow key: they are then shown as encrypted)."""
        self._control = control
        self._tokens = tokens
        self._shadow_store = shadow_store
        self._shadow_sealer = shadow_sealer
        self._emit = emit

    def app(self) -> web.Application:
        """A new sub-application serving the API; every handler behind the token check."""
        app = web.Application()
        guard = self._guarded
        app.router.add_get("/routes", guard("routes", self._get_routes))
        app.router.add_get("/routes/{route}/history", guard("history", self._get_history))
        app.router.add_get("/shadow", guard("shadow", self._get_shadow))
        verbs = "|".join(ADMIN_CHANGES)
        app.router.add_post(f"/routes/{{route}}/{{verb:{verbs}}}", guard("", self._post_change))
        return app

    def _guarded(self, call: str, handler: Guarded) -> Handler:
        """``handler`` for callers with a valid token; 401 (and nothing done) for the rest."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            caller = Caller(
                call or request.match_info["verb"], request.match_info.get("route", ""), ""
            )
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            who = self._tokens.who(presented.strip()) if scheme.lower() == "bearer" else None
            if who is None:
                why = _unauthorized(self._tokens, bool(presented.strip()))
                # No route: a caller without a token does not get to write text into the log.
                self._emit(AdminCall(caller.call, "", "", "unauthorized", why))
                return _error(401, f"unauthorized: {why}", headers=_CHALLENGE)
            return await handler(request, replace(caller, who=who))

        return guarded

    async def _get_routes(self, _request: web.Request, caller: Caller) -> web.Response:
        control = self._control()
        statuses = control.routes() if control is not None else []
        self._done(caller, "ok")
        return _json({"routes": [route_json(s) for s in statuses]})

    async def _get_history(self, request: web.Request, caller: Caller) -> web.Response:
        route = request.match_info["route"]
        limit = _int_param(request, "limit", 100, MAX_HISTORY)
        if limit is None:
            return self._refuse(caller, 400, "bad_request", f"limit: 1 to {MAX_HISTORY}")
        try:
            control = self._control()
            if control is None:
                raise KeyError(route)
            entries = control.history(route, limit)
        except KeyError:
            return self._refuse(caller, 404, "not_found", f"no canary route {route!r}")
        self._done(caller, "ok")
        return _json({"route": route, "history": [transition_json(t) for t in entries]})

    async def _get_shadow(self, _request: web.Request, caller: Caller) -> web.Response:
        location = self._shadow_store
        if location is None:
            return self._refuse(caller, 404, "not_found", "shadowing.store is not set")
        try:
            report = await asyncio.to_thread(_shadow_report, location, self._shadow_sealer())
        except GatewayError as exc:
            return self._refuse(caller, 503, "unavailable", str(exc))
        self._done(caller, "ok")
        return web.Response(
            text=render_json(report), content_type="application/json", headers=_NO_STORE
        )

    async def _post_change(self, request: web.Request, caller: Caller) -> web.Response:
        route, verb = request.match_info["route"], request.match_info["verb"]
        try:
            reason = await _reason(request)
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(caller, 413, "too_large", "the body is too large")
        except ValueError as exc:
            return self._refuse(caller, 400, "bad_request", str(exc))
        try:
            status = await self._change(route, verb, caller.who, reason)
        except KeyError:
            return self._refuse(caller, 404, "not_found", f"no canary route {route!r}")
        except ValueError as exc:
            return self._refuse(caller, 409, "conflict", str(exc))
        except GatewayError as exc:  # the canary store failed: nothing was changed
            return self._refuse(caller, 503, "unavailable", str(exc))
        self._done(caller, "ok", reason)
        return _json(route_json(status))

    async def _change(self, route: str, verb: str, who: str, reason: str) -> RouteStatus:
        control = self._control()
        if control is None:
            raise KeyError(route)
        match verb:
            case "pause":
                return await control.pause(route, who, reason)
            case "resume":
                return await control.resume(route, who)
            case "promote":
                return await control.promote(route, who)
            case _:
                return await control.rollback(route, who, reason)

    def _done(self, caller: Caller, result: str, detail: str = "") -> None:
        self._emit(AdminCall(caller.call, caller.route, caller.who, result, detail))

    def _refuse(self, caller: Caller, status: int, result: str, why: str) -> web.Response:
        self._done(caller, result, why)
        return _error(status, why)


def _shadow_report(location: str | Path, sealer: Sealer | None) -> Report:
    """What `cpr-gateway diff --json` shows (blocking); empty while no file has been written."""
    if not is_dsn(location) and not Path(location).exists():
        return Report((), 0)
    return read_report(location, sealer)


def _unauthorized(tokens: AdminTokens, presented: bool) -> str:
    if not tokens:
        return "the gateway has no admin.token_file, so its API is closed"
    return "the bearer token is not valid" if presented else "a bearer token is needed"


async def _reason(request: web.Request) -> str:
    """The optional ``{"reason": "..."}`` body; ValueError saying what is wrong with it."""
    body = await request.read()  # aiohttp refuses more than the app's client_max_size
    if not body.strip():
        return ""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("the body is not JSON") from None
    if not isinstance(document, dict) or set(document) - {"reason"}:
        raise ValueError('the body is {"reason": "..."} or empty')
    reason = document.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError("reason: a string")
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"reason: at most {MAX_REASON_CHARS} characters")
    return " ".join(reason.split())  # one line in the log and the history


def _int_param(request: web.Request, name: str, default: int, most: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        return None
    return int(raw)


# -- JSON ---------------------------------------------------------------------------------------


def route_json(status: RouteStatus) -> dict[str, Any]:
    """A route's status as the API and the dashboard show it."""
    state = status.state
    return {
        "route": status.route,
        "primary": status.primary,
        "candidate": status.candidate,
        "steps": list(status.steps),
        "step": state.step,
        "status": state.status.value,
        "reason": state.reason,
        "since": state.since,
        "weights": dict(status.weights),
        "gates": [gate_json(g) for g in status.gates],
        "next_evaluation": status.next_evaluation,
        "evidence": None if status.evidence is None else evidence_json(status),
    }


def gate_json(gate: GateResult) -> dict[str, Any]:
    return {
        "name": gate.name,
        "figure": _finite(gate.figure),
        "threshold": _finite(gate.threshold),
        "passed": gate.passed,
    }


def evidence_json(status: RouteStatus) -> dict[str, Any]:
    evidence = status.evidence
    assert evidence is not None
    return {
        "verdict": evidence.verdict.value,
        "comparisons": evidence.comparisons,
        "primary": _side_json(evidence.primary),
        "candidate": _side_json(evidence.candidate),
    }


def _side_json(side: SideFigures) -> dict[str, Any]:
    return {
        "requests": side.requests,
        "failures": side.failures,
        "failure_rate": _finite(side.failure_rate),
        "p99_s": _finite(side.p99_s),
    }


def transition_json(entry: Transition) -> dict[str, Any]:
    """One history entry."""
    return {
        "at": entry.at,
        "kind": entry.kind,
        "from_step": entry.from_step,
        "to_step": entry.to_step,
        "reason": entry.reason,
        "who": entry.who,
        "figures": {name: _finite(value) for name, value in entry.figures.items()},
    }


def _finite(value: float | str | None) -> float | str | None:
    """JSON has no infinity or NaN: such a figure is shown as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _json(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers=_NO_STORE)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": message}, status=status, headers={**_NO_STORE, **(headers or {})}
    )
