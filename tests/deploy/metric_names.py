"""Metric names: the ones the gateway exports, read from its live registry, and the ones a
PromQL expression uses.

The exported names are those :class:`gateway.observe.metrics.Metrics` registers, spelled as
the Prometheus text format exposes each type (a counter ``x`` is scraped as ``x_total``), so
a rule or a panel can name only a series a scrape can return.
"""

from __future__ import annotations

import re

from gateway.observe.metrics import Metrics

#: Series Prometheus makes itself for every scrape target, not the gateway.
PROMETHEUS_OWN = frozenset({"up"})
#: How the text format names the series of each metric type (``_created``: OpenMetrics).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan"}
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?")


def exported() -> frozenset[str]:
    """Every series name a scrape of the gateway's /metrics can contain."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return frozenset(names)


def used_in(expr: str) -> frozenset[str]:
    """The metric names ``expr`` selects: not functions, keywords, labels or durations."""
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return frozenset(
        match.group(1)
        for match in _IDENTIFIER.finditer(text)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    )
