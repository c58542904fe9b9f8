"""Telemetry: typed events, Prometheus metrics and structured logs.

The only package that imports prometheus_client and configures structlog.
"""

from gateway.observe.events import EventBus
from gateway.observe.logs import configure_logging, log_event
from gateway.observe.metrics import Metrics

__all__ = ["EventBus", "Metrics", "configure_logging", "log_event"]
