"""Who may call the services: a valid session, or the gateway's identity (mutual TLS).

Every call goes through :class:`CallerCheck`, a server interceptor that refuses by default:

- **Calls that carry their own proof** pass through to the servicer, which checks it there:
  Logon and ChangePassword a password; ValidateSession, ReadPerson and BatchReadPersons the
  session in their message. Health and reflection are open (a load balancer's probe).
- **Every other call** (GetPerson, SubscriptionService.Create and Delete, and any method added
  later) needs the gateway's identity or a valid session in metadata ``x-cpr-session-bin``
  (:data:`gateway.backends.grpc_wire.SESSION_KEY`); a subscription's customer must be the
  session's. Without either: UNAUTHENTICATED, logged ``caller_refused`` with the method
  and the peer's address.

The gateway's identity is the common name of a client certificate the TLS layer has verified
against ``--client-ca`` (``--gateway-identity NAME``): names are honoured only when client
certificates are required and verified, never from a certificate merely presented.

A Logon marked ``x-cpr-repeat: 1`` (:data:`gateway.backends.grpc_wire.REPEAT_KEY`) is the
gateway repeating a client's logon from another side; :func:`is_gateway_repeat` says so only
for the gateway's identity, and a refused repeat then does not count towards the user's lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import grpc
import grpc.aio
import structlog
from google.protobuf.message import DecodeError

from gateway.backends.grpc_wire import REPEAT_KEY, REPEAT_VALUE, SESSION_KEY
from gateway.cprv1.pb.cpr.v1 import auth_pb2

_log = structlog.get_logger("cpr_services")
_Context = grpc.aio.ServicerContext[Any, Any]
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # subscriptable in the stubs only
#: Checks a session as AuthService.ValidateSession does (ends the call when it is not valid).
Authorize = Callable[[auth_pb2.ValidateSessionRequest, Any], Awaitable[auth_pb2.Task]]

#: Methods that prove their caller themselves (a password, or a session in the message), or
#: must answer anyone (health, reflection).
SELF_PROVING = frozenset(
    {
        "/cpr.v1.AuthService/Logon",
        "/cpr.v1.AuthService/ChangePassword",
        "/cpr.v1.AuthService/ValidateSession",
        "/cpr.v1.PersonService/ReadPerson",
        "/cpr.v1.PersonService/BatchReadPersons",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }
)
#: The largest session metadata accepted: a ValidateSessionRequest is a few dozen bytes.
_MAX_SESSION_BYTES = 256


class CallerCheck(grpc.aio.ServerInterceptor):
    """Refuses a call that neither proves itself nor comes from the gateway or a session."""

    def __init__(self, identities: frozenset[str], authorize: Authorize) -> None:
        """``identities``: client certificate common names that are the gateway (empty: none;
        only meaningful when the server requires verified client certificates)."""
        self._identities = identities
        self._authorize = authorize

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(details)
        if handler is None or details.method in SELF_PROVING:
            return handler
        if handler.unary_unary is None:  # every cpr.v1 method is unary: unknown to others
            _log.warning("caller_refused", method=details.method, reason="not unary")
            return None
        return _checked(handler, details.method, self._admit)

    async def _admit(self, method: str, request: object, context: _Context) -> None:
        """Return when the call may go on; end it UNAUTHENTICATED otherwise."""
        if is_gateway(context, self._identities):
            return
        session = _session(context.invocation_metadata())
        if session is not None:
            await self._authorize(session, context)  # ends the call when it is not valid
            customer = getattr(request, "customer", session.customer)
            if customer == session.customer:
                return
        _log.warning("caller_refused", method=method, peer=context.peer())
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED, "a session or the gateway's certificate is required"
        )


def is_gateway(context: Any, identities: frozenset[str]) -> bool:
    """True when the call's verified client certificate names one of ``identities``."""
    if not identities:
        return False
    names = context.auth_context().get("x509_common_name", ())
    return any(name.decode("utf-8", "replace") in identities for name in names)


def is_gateway_repeat(context: Any, identities: frozenset[str]) -> bool:
    """True for a Logon the gateway marks as its repeat of a client's logon elsewhere; the mark
    from anyone else is ignored (and the logon counts as any other)."""
    marked = any(
        key == REPEAT_KEY and value == REPEAT_VALUE
        for key, value in context.invocation_metadata() or ()
    )
    return marked and is_gateway(context, identities)


def _session(
    metadata: Iterable[tuple[str, str | bytes]] | None,
) -> auth_pb2.ValidateSessionRequest | None:
    """The session a call's metadata names, or None (absent, oversized or not a session)."""
    sent = [value for key, value in metadata or () if key == SESSION_KEY]
    if len(sent) != 1 or not isinstance(sent[0], bytes) or len(sent[0]) > _MAX_SESSION_BYTES:
        return None
    try:
        return auth_pb2.ValidateSessionRequest.FromString(sent[0])
    except DecodeError:
        return None


Admit = Callable[[str, object, _Context], Awaitable[None]]


def _checked(handler: _Handler, method: str, admit: Admit) -> _Handler:
    """``handler`` with ``admit`` run on each request before the servicer sees it."""
    inner: Any = handler.unary_unary  # an async servicer method (the stubs know sync ones)

    async def call(request: object, context: _Context) -> object:
        await admit(method, request, context)
        return await inner(request, context)

    return grpc.unary_unary_rpc_method_handler(
        call,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
