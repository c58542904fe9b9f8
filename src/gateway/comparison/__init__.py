"""What config, shadow and telemetry agree on about comparing sides: values only. Pure.

routing.yaml says how a route is shadowed (:class:`Shadow`, :class:`Noise`), what its
comparison ignores and normalises (:class:`Rules`) and when a difference is real
(:class:`Thresholds`); the shadow runner works from a route's :class:`ShadowPolicy`
and judges with those; the metrics export the :class:`Verdict`. This package
imports none of gateway.config, gateway.shadow or gateway.observe, so none of them
has to import another for these.
"""

from gateway.comparison.policy import Noise, Shadow, ShadowPolicy
from gateway.comparison.rules import (
    HEADER,
    HEADER_FIELDS,
    PRESENCE,
    FieldKey,
    KeyPattern,
    Normaliser,
    Rules,
)
from gateway.comparison.verdicts import Thresholds, Verdict

__all__ = [
    "HEADER",
    "HEADER_FIELDS",
    "PRESENCE",
    "FieldKey",
    "KeyPattern",
    "Noise",
    "Normaliser",
    "Rules",
    "Shadow",
    "ShadowPolicy",
    "Thresholds",
    "Verdict",
]
