"""The PromQL name reader the alert and dashboard checks rely on."""

from __future__ import annotations

from metric_names import exported, used_in


def test_names_are_read_past_functions_labels_groupings_and_ranges() -> None:
    """Only the selected series remain: not rate, sum, by-labels, matchers or durations."""
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{job="x", f=~"0(9)"}[5m])))'
        " / on () group_left sum without (pod) (b_total offset 1h) > bool 1e3"
        " or absent(up{job='y'}) - 1"
    )
    assert used_in(expr) == {"a_bucket", "b_total", "up"}


def test_grafana_variables_are_not_names() -> None:
    """$__rate_interval and $namespace sit inside ranges and matchers."""
    expr = 'sum(rate(c_total{namespace=~"$namespace"}[$__rate_interval]))'
    assert used_in(expr) == {"c_total"}


def test_exported_names_are_spelled_as_a_scrape_shows_them() -> None:
    """A counter is scraped with _total, a histogram with _bucket, a gauge as it is named."""
    names = exported()
    assert "cpr_gateway_requests_total" in names
    assert "cpr_gateway_requests" not in names
    assert "cpr_gateway_request_duration_seconds_bucket" in names
    assert "cpr_gateway_event_loop_lag_seconds" in names
