"""What the gateway's gRPC channel and the services agree on beyond the cpr.v1 messages.

The agreements, each kept here once so that both sides read the same value:

- **Keepalive.** The gateway's channel pings every connection to a service replica after
  ``keepalive`` without traffic, calls or not, so a replica that vanished (a pod deleted, a
  firewall that forgot the flow) is noticed by a failed ping rather than by the next
  request's deadline. A gRPC server counts pings that come more often than it accepts as
  "strikes" and, after two, closes the connection with GOAWAY "too_many_pings" (grpc's
  doc/keepalive.md); its defaults accept neither pings without calls nor pings more often
  than every 5 minutes. So the services accept pings without calls and down to
  :data:`ACCEPTED_PING_INTERVAL_S`, half the shortest keepalive routing.yaml allows: a ping
  that arrives early through network jitter is still not a strike.
- **The client's address.** A gateway that knows its client's IP address (from the socket or a
  PROXY header) sends it as metadata :data:`CLIENT_ADDRESS_KEY`; the services check a
  customer's allow-list against it only when the call comes from a trusted gateway
  (``cpr-gateway backend --trusted-gateways``), and against the caller's own address otherwise.

- **Who may call.** Every call needs a valid session or the gateway's identity: the
  common name of the client certificate it presents over mutual TLS (``cpr-gateway backend
  --client-ca --gateway-identity``). A call whose message holds no session carries the
  session as metadata :data:`SESSION_KEY`; a logon the gateway repeats is marked
  :data:`REPEAT_KEY`, and only the gateway's identity may mark one.

- **Re-resolving names.** grpc resolves a ``dns:`` name again only when a connection
  closes, so replicas added behind an unchanged name (a scaled Deployment behind a headless
  Service) would get no calls from a channel that is already connected. The services close
  each connection after :data:`MAX_CONNECTION_AGE_S` (GOAWAY, calls on the way finish
  within :data:`MAX_CONNECTION_AGE_GRACE_S`); the channel then reconnects, re-resolves, and
  round_robin spreads over every replica it now finds.

No grpc import: the values are plain, for the config loader and the services alike.
"""

from __future__ import annotations

#: Metadata key carrying the client's IP address as text (no port) from gateway to services.
CLIENT_ADDRESS_KEY = "x-cpr-client-address"
#: Metadata key marking a Logon the gateway repeats for a client that logged on on another side
#: (value :data:`REPEAT_VALUE`): the services honour it only from the gateway's identity, and
#: a refused repeat does not count towards the user's lock (docs/sessions.md).
REPEAT_KEY = "x-cpr-repeat"
REPEAT_VALUE = "1"
#: Metadata key carrying the session a call is made in, as a serialized
#: ``cpr.v1.ValidateSessionRequest`` (binary: the ``-bin`` suffix), on the calls whose
#: messages hold no session (PersonService.GetPerson, SubscriptionService.Create and Delete):
#: the services answer a call UNAUTHENTICATED unless it has a valid session or comes from
#: the gateway's identity (its client certificate).
SESSION_KEY = "x-cpr-session-bin"

#: routing.yaml's default ``keepalive``: a dead replica is noticed within about this long
#: plus :data:`KEEPALIVE_TIMEOUT_S`.
DEFAULT_KEEPALIVE_S = 30.0
#: The shortest ``keepalive`` routing.yaml accepts (the services' acceptance is paired to it).
MIN_KEEPALIVE_S = 10.0
#: The longest: idle flows through firewalls and NAT are commonly dropped well within an hour.
MAX_KEEPALIVE_S = 3600.0
#: How long a ping may go unanswered before the connection counts as dead. A replica answers
#: pings from grpc's own threads, so only a dead peer or network is this slow.
KEEPALIVE_TIMEOUT_S = 10.0
#: The services accept pings this often at most: half of :data:`MIN_KEEPALIVE_S` (see above).
ACCEPTED_PING_INTERVAL_S = MIN_KEEPALIVE_S / 2


#: How long the services keep one connection: the longest a new replica waits for calls.
MAX_CONNECTION_AGE_S = 300.0
#: How long calls on a connection being aged out get to finish.
MAX_CONNECTION_AGE_GRACE_S = 30.0


def client_keepalive_options(keepalive_s: float) -> list[tuple[str, int]]:
    """Channel options: ping after ``keepalive_s`` without traffic, calls on the way or not."""
    return [
        ("grpc.keepalive_time_ms", _ms(keepalive_s)),
        ("grpc.keepalive_timeout_ms", _ms(KEEPALIVE_TIMEOUT_S)),
        ("grpc.keepalive_permit_without_calls", 1),
        # grpc stops pinging after two pings without data unless this is 0: an idle channel
        # would then be checked twice and never again.
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_keepalive_options(
    accepted_interval_s: float = ACCEPTED_PING_INTERVAL_S,
) -> list[tuple[str, int]]:
    """Server options: accept a client's pings without calls, down to ``accepted_interval_s``,
    and age connections out so that clients re-resolve names (see above)."""
    return [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(accepted_interval_s)),
        ("grpc.max_connection_age_ms", _ms(MAX_CONNECTION_AGE_S)),
        ("grpc.max_connection_age_grace_ms", _ms(MAX_CONNECTION_AGE_GRACE_S)),
    ]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
