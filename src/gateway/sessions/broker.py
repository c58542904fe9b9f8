"""A client's request as each side gets it, and each side's answer as the client gets it. Pure.

The rules are docs/sessions.md's: a side gets the token it issued for the client's
logon, and its answer goes back carrying the client's token; a token the gateway
does not know passes unchanged (the side decides); a lookup routed to a side that
holds no token for the session falls back to the home side, a write never does.
The dispatcher (the client's own request) and the shadow runner (its copies) both
go through here, so the two cannot drift apart. Finding a session is the caller's:
the dispatcher may have to ask its sibling workers first (:mod:`.peers`).
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.codec import FramedRequest, LogonRequest, LookupRequest, customer_number, user_id
from gateway.codec.headers import answer_token, answer_with_token
from gateway.model import Operation
from gateway.sessions.table import Session, SessionBroker


def open_session(
    table: SessionBroker, logon: LogonRequest, answer: bytes, home: str, tokens: Mapping[str, str]
) -> tuple[str, Session]:
    """Remember a successful ``logon`` answered by ``home``, and the ``tokens`` the other
    sides gave it: the client's token (returned with the session) is the one in ``home``'s
    answer."""
    customer, user = customer_number(logon.customer), user_id(logon.user)
    client_token = answer_token(answer)
    return client_token, table.open(client_token, customer, user, home, tokens)


def session_of(table: SessionBroker, request: LookupRequest) -> Session | None:
    """The live session ``request``'s token opened for its customer and user, if any."""
    return table.find(request.token, customer_number(request.customer), user_id(request.user))


def for_side(client: FramedRequest, session: Session | None, side: str) -> FramedRequest | None:
    """The client's request as ``side`` gets it: carrying the token ``side`` issued.

    A logon carries no token, and without a session the client's token passes
    unchanged. None when the session holds no token for ``side`` (its logon there
    failed, or it has answered 07 since).
    """
    request = client.request
    if session is None or isinstance(request, LogonRequest):
        return client
    token = session.token_for(side)
    if token is None:
        return None
    return client if token == request.token else client.with_token(token)


def route_in_session(
    client: FramedRequest, session: Session | None, side: str
) -> tuple[str, FramedRequest]:
    """The side the client's request is sent to, and as what: ``side``, with its token.

    A lookup for which the session holds no token for ``side`` goes to the session's
    home side instead, with the client's own token; a write goes to ``side`` with the
    client's token (writes go to exactly one side, the routed one: it decides).
    """
    sent = for_side(client, session, side)
    if sent is not None:
        return side, sent
    if session is not None and client.request.operation is Operation.LOOKUP:
        return session.home, client
    return side, client


def for_client(answer: bytes, sent: FramedRequest, client_token: str) -> bytes:
    """A side's ``answer`` to ``sent`` as the client gets it: carrying ``client_token``.

    Left as it is when ``sent`` carried the client's token already (an answer echoes
    its request's token), so a route that rewrites nothing answers byte for byte as
    its side did.
    """
    if sent.token == client_token:
        return answer
    return answer_with_token(answer, client_token)
