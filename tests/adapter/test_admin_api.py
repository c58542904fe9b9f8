"""The admin API on a real admin server: bearer tokens, hostile input, the dashboard's headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from admin_harness import ROUTE, SECRET, canary_gateway

from gateway.canary.control import CanaryControl
from gateway.comparison import FieldKey
from gateway.config.schema import Admin
from gateway.errors import ConfigError
from gateway.observe.events import AdminCall, Event
from gateway.observe.metrics import Metrics
from gateway.server.admin import MAX_BODY_BYTES, AdminServer
from gateway.server.api import AdminApi
from gateway.server.tokens import AdminTokens, create_token_file, read_tokens
from gateway.shadow.compare import Comparison, FieldDiff
from gateway.shadow.sealing import NO_KEY, Sealer
from gateway.shadow.store import MismatchStore, Sample

OTHER = "another-token-for-tests-987654321"


def token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "admin.token"
    path.write_text(text)
    path.chmod(mode)
    return path


class RunningAdmin:
    """A running admin server and what its API emitted."""

    def __init__(self, url: str, metrics: Metrics, events: list[Event]) -> None:
        self.url = url
        self.metrics = metrics
        self.events = events

    async def call(
        self, method: str, path: str, token: str | None = SECRET, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, headers=headers, **kwargs) as response,
        ):
            body = await response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, (await response.json() if "json" in kind else body), response


@asynccontextmanager
async def admin_server(
    tokens: AdminTokens | None = None,
    control: CanaryControl | None = None,
    shadow_store: str | Path | None = None,
    shadow_sealer: Sealer | None = None,
) -> AsyncIterator[RunningAdmin]:
    metrics = Metrics()
    events: list[Event] = []

    def emit(event: Event) -> None:
        events.append(event)
        metrics.on_event(event)

    api = None
    if tokens is not None:
        api = AdminApi(lambda: control, tokens, shadow_store, emit, lambda: shadow_sealer)
    server = AdminServer(Admin("127.0.0.1", 0), metrics, lambda: True, api)
    host, port = await server.start()
    try:
        yield RunningAdmin(f"http://{host}:{port}", metrics, events)
    finally:
        await server.aclose()


async def test_without_a_token_file_every_api_call_is_401_and_health_is_open() -> None:
    """No admin.token_file: the API is closed, never open; /metrics, /healthz, /readyz are not."""
    async with admin_server() as admin:
        for method, path in (("GET", "/api/v1/routes"), ("POST", "/api/v1/routes/x/pause")):
            status, body, response = await admin.call(method, path)
            assert status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "token_file" in body["error"]
        for path in ("/metrics", "/healthz", "/readyz"):
            assert (await admin.call("GET", path, token=None))[0] == 200


async def test_a_missing_or_wrong_token_is_401_and_counted(tmp_path: Path) -> None:
    """Without the header, with another scheme or another secret: 401, counted as unauthorized."""
    tokens = read_tokens(token_file(tmp_path, SECRET))
    async with admin_server(tokens) as admin:
        for headers in ({}, {"Authorization": f"Basic {SECRET}"}, {"Authorization": "Bearer"}):
            async with (
                aiohttp.ClientSession() as session,
                session.get(admin.url + "/api/v1/routes", headers=headers) as response,
            ):
                assert response.status == 401
        assert (await admin.call("GET", "/api/v1/routes", token=OTHER))[0] == 401
        assert (await admin.call("GET", "/api/v1/routes", token=SECRET[:-1]))[0] == 401
        assert (await admin.call("GET", "/api/v1/routes", token=SECRET))[0] == 200
        unauthorized = "cpr_gateway_admin_calls_total"
        assert admin.metrics.value(unauthorized, call="routes", result="unauthorized") == 5
        assert admin.metrics.value(unauthorized, call="routes", result="ok") == 1
        # What a caller without a token puts in the path is not logged.
        assert (await admin.call("POST", "/api/v1/routes/0101601234/pause", token=None))[0] == 401
        assert admin.events[-1] == AdminCall(
            "pause", "", "", "unauthorized", "a bearer token is needed"
        )


async def test_a_valid_token_reads_and_a_refusal_names_the_route(tmp_path: Path) -> None:
    """With the token: routes (none without a controller); an unknown route is 404."""
    tokens = read_tokens(token_file(tmp_path, f"ops:{SECRET}\n"))
    async with admin_server(tokens) as admin:
        assert (await admin.call("GET", "/api/v1/routes"))[:2] == (200, {"routes": []})
        status, body, _ = await admin.call("POST", "/api/v1/routes/lookups/pause")
        assert status == 404
        assert body == {"error": "no canary route 'lookups'"}
        status, _, _ = await admin.call("POST", "/api/v1/routes/lookups/explode")
        assert status == 404
    assert AdminCall("pause", "lookups", "ops", "not_found", "no canary route 'lookups'") in (
        admin.events
    )


async def test_hostile_bodies_get_4xx_and_the_server_goes_on(tmp_path: Path) -> None:
    """A body over the cap is 413; not JSON, not an object, a long reason: 400; then 200 again."""
    tokens = read_tokens(token_file(tmp_path, SECRET))
    async with admin_server(tokens) as admin:
        path = "/api/v1/routes/lookups/pause"
        big = b"{" + b" " * MAX_BODY_BYTES + b"}"
        assert (await admin.call("POST", path, data=big))[0] == 413
        deep = b"[" * 5_000 + b"]" * 5_000
        for body in (b"{", b"[1]", b'{"reason": 5}', b'{"why": "x"}', deep):
            status, answer, _ = await admin.call("POST", path, data=body)
            assert status in (400, 413), body[:20]
            assert "error" in answer
        long_reason = {"reason": "x" * 501}
        assert (await admin.call("POST", path, json=long_reason))[0] == 400
        assert (await admin.call("GET", "/api/v1/routes/lookups/history?limit=0"))[0] == 400
        assert (await admin.call("GET", "/api/v1/routes"))[0] == 200


async def test_an_unauthenticated_big_body_is_401_unread(tmp_path: Path) -> None:
    """The token is checked before the body is read: no token, no work."""
    tokens = read_tokens(token_file(tmp_path, SECRET))
    async with admin_server(tokens) as admin:
        big = b"x" * (MAX_BODY_BYTES * 4)
        status, _, _ = await admin.call("POST", "/api/v1/routes/r/pause", token=None, data=big)
        assert status == 401


async def test_the_shadow_report_is_diffs_json(tmp_path: Path) -> None:
    """/api/v1/shadow is `cpr-gateway diff --json`; empty before the store exists, 404 unset."""
    tokens = read_tokens(token_file(tmp_path, SECRET))
    async with admin_server(tokens, shadow_store=tmp_path / "none.sqlite") as admin:
        status, body, _ = await admin.call("GET", "/api/v1/shadow")
        assert (status, body) == (200, {"rows_kept": 0, "operations": []})
    async with admin_server(tokens) as admin:
        assert (await admin.call("GET", "/api/v1/shadow"))[0] == 404


async def test_the_shadow_reports_values_are_shown_with_the_gateways_key_only(
    tmp_path: Path,
) -> None:
    """A sealed example's values are in /api/v1/shadow when the gateway has the key; without
    it, "(encrypted; no key)" stands in their place."""
    tokens = read_tokens(token_file(tmp_path, SECRET))
    store, sealer = tmp_path / "shadow.sqlite", Sealer(b"k" * 32)
    key = FieldKey("lookup", "001", "NAVN")
    diff = FieldDiff(key, "Ærøsen,Anne", "Ærøsen,Anne-Sofie")
    with MismatchStore.open(store, sealer=sealer) as filled:
        sample = Sample("lookups", "mainframe", "persons-v2", Comparison((key,), (diff,), "lookup"))
        filled.record(sample)
    for given, shown in ((sealer, ["Ærøsen,Anne", "Ærøsen,Anne-Sofie"]), (None, [NO_KEY] * 2)):
        async with admin_server(tokens, shadow_store=store, shadow_sealer=given) as admin:
            status, body, _ = await admin.call("GET", "/api/v1/shadow")
        example = body["operations"][0]["fields"][0]["examples"][0]
        assert (status, [example["primary"], example["candidate"]]) == (200, shown)


async def test_the_dashboard_is_served_with_a_strict_policy() -> None:
    """GET / and its two files need no token (they hold no data) and forbid anything foreign."""
    async with admin_server() as admin:
        for path, kind in (
            ("/", "text/html"),
            ("/dashboard/app.js", "text/javascript"),
            ("/dashboard/style.css", "text/css"),
        ):
            status, body, response = await admin.call("GET", path, token=None)
            assert status == 200
            assert response.headers["Content-Type"].startswith(kind)
            policy = response.headers["Content-Security-Policy"]
            assert "default-src 'self'" in policy
            assert "form-action 'none'" in policy
            assert body
        assert (await admin.call("GET", "/dashboard/index.html", token=None))[0] == 404
        assert (await admin.call("GET", "/dashboard/../tokens.py", token=None))[0] == 404


# -- the token file -----------------------------------------------------------------------------


def test_a_token_file_others_may_read_is_refused(tmp_path: Path) -> None:
    """Like the shadow key: group or world readable is a ConfigError naming the mode."""
    for mode in (0o640, 0o604, 0o644):
        with pytest.raises(ConfigError, match=f"mode {mode:o} lets others read it"):
            read_tokens(token_file(tmp_path, SECRET, mode))
    assert read_tokens(token_file(tmp_path, SECRET, 0o400)).who(SECRET) == "admin"


def test_named_tokens_name_who_made_a_change(tmp_path: Path) -> None:
    """``name:secret`` lines; a bare secret is ``admin``; comments and blank lines skipped."""
    text = f"# operators\nalice:{SECRET}\n\n{OTHER}\n"
    tokens = read_tokens(token_file(tmp_path, text))
    assert (tokens.who(SECRET), tokens.who(OTHER), tokens.who("alice")) == ("alice", "admin", None)
    first = tokens.first()
    assert first is not None and first.secret == SECRET
    assert SECRET not in repr(first)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "holds no token"),
        ("short", "line 1: the secret is shorter than 16"),
        (f"bad name:{SECRET}", "line 1: a name is"),
        (f"{SECRET}\nbob:{SECRET}", "line 2: the same secret"),
        ("a:" + "x" * 20 + ":y", "printable ASCII without spaces or ':'"),
    ],
)
def test_a_malformed_token_file_is_refused_without_quoting_it(
    tmp_path: Path, text: str, problem: str
) -> None:
    """Each bad line is named by number; no message quotes a secret."""
    with pytest.raises(ConfigError, match=problem) as caught:
        read_tokens(token_file(tmp_path, text))
    assert SECRET not in str(caught.value)


def test_create_token_file_writes_a_private_random_token_once(tmp_path: Path) -> None:
    """make run's token: mode 600, accepted by read_tokens, never overwritten."""
    path = tmp_path / "var" / "admin.token"
    assert create_token_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_text()
    assert not create_token_file(path)
    assert path.read_text() == first
    assert read_tokens(path).who(first.strip()) == "admin"


# -- against a gateway with a canary route and its real controller ------------------------------


async def test_every_verb_with_a_token_moves_the_route_and_is_recorded(tmp_path: Path) -> None:
    """promote, pause (with a reason), resume, rollback: each answers the route as it now is,
    and the history names the token's holder and the reason."""
    async with canary_gateway(tmp_path) as gw:
        status, body = await gw.call("GET", "/routes")
        assert status == 200
        [route] = body["routes"]
        assert (route["route"], route["step"], route["status"]) == (ROUTE, 0, "running")
        assert route["weights"] == {"mainframe": 100.0, "persons-v2": 0.0}
        assert route["steps"] == [0, 5, 50, 100]
        status, route = await gw.call("POST", f"/routes/{ROUTE}/promote")
        assert (status, route["step"], route["weights"]["persons-v2"]) == (200, 1, 5.0)
        reason = {"reason": "change freeze\n until  Monday"}
        status, route = await gw.call("POST", f"/routes/{ROUTE}/pause", json=reason)
        assert (status, route["status"], route["step"]) == (200, "paused", 1)
        assert "change freeze until Monday" in route["reason"]
        status, route = await gw.call("POST", f"/routes/{ROUTE}/resume")
        assert (status, route["status"]) == (200, "running")
        status, route = await gw.call("POST", f"/routes/{ROUTE}/rollback", json={"reason": "x"})
        assert (status, route["step"], route["weights"]["persons-v2"]) == (200, 0, 0.0)
        status, body = await gw.call("GET", f"/routes/{ROUTE}/history")
        assert status == 200
        entries = [(e["kind"], e["from_step"], e["to_step"], e["who"]) for e in body["history"]]
        assert entries[-4:] == [
            ("promote", 0, 1, "ops"),
            ("pause", 1, 1, "ops"),
            ("resume", 1, 1, "ops"),
            ("rollback", 1, 0, "ops"),
        ]
        assert "change freeze until Monday" in body["history"][-3]["reason"]
        value = gw.gateway.metrics.value
        assert value("cpr_gateway_admin_calls_total", call="promote", result="ok") == 1


async def test_a_request_without_a_valid_token_changes_nothing(tmp_path: Path) -> None:
    """401 for every verb without the token or with another; route and history as they were."""
    async with canary_gateway(tmp_path) as gw:
        before = (await gw.call("GET", "/routes"))[1]
        history = (await gw.call("GET", f"/routes/{ROUTE}/history"))[1]
        for verb in ("pause", "resume", "promote", "rollback"):
            for token in (None, OTHER, SECRET.upper()):
                status, body = await gw.call("POST", f"/routes/{ROUTE}/{verb}", token=token)
                assert status == 401, (verb, token)
                assert "unauthorized" in body["error"]
        after = (await gw.call("GET", "/routes"))[1]
        assert after["routes"][0]["step"] == before["routes"][0]["step"]
        assert after["routes"][0]["status"] == before["routes"][0]["status"]
        assert (await gw.call("GET", f"/routes/{ROUTE}/history"))[1] == history


async def test_an_impossible_change_is_409_with_the_reason_and_an_unknown_route_404(
    tmp_path: Path,
) -> None:
    """Promote past the last step, resume a running route: 409 saying why; no such route: 404."""
    async with canary_gateway(tmp_path) as gw:
        assert (await gw.call("POST", f"/routes/{ROUTE}/resume"))[0] == 409
        for _ in range(3):
            assert (await gw.call("POST", f"/routes/{ROUTE}/promote"))[0] == 200
        status, body = await gw.call("POST", f"/routes/{ROUTE}/promote")
        assert status == 409
        assert body["error"]
        status, body = await gw.call("POST", "/routes/rest/pause")
        assert (status, body) == (404, {"error": "no canary route 'rest'"})
        assert (await gw.call("GET", "/routes/nowhere/history"))[0] == 404
        [route] = (await gw.call("GET", "/routes"))[1]["routes"]
        assert route["step"] == 3
