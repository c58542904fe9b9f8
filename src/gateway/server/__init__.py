"""Listeners: the client-facing CPR Direkte port and the admin HTTP server."""

from gateway.server.admin import AdminServer
from gateway.server.tcp import ClientListener

__all__ = ["AdminServer", "ClientListener"]
