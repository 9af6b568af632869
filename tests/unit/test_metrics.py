"""Parsing real Triton metric text and turning scrapes into fleet rates (resets, silent pods, weighting)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fulcrum.metrics.triton import TritonSample, parse_triton_metrics, quantile_at
from fulcrum.metrics.window import SlidingWindow

RECORDED = (Path(__file__).parents[1] / "data" / "triton-2.51-metrics.txt").read_text()


def test_parses_a_real_tritonserver_scrape() -> None:
    sample = parse_triton_metrics(RECORDED, model="echo")
    assert sample.success == 50 and sample.failure == 0
    assert sample.request_us == 221112 and sample.queue_us == 17574
    assert sample.quantiles_us == {0.5: 2936, 0.9: 4679, 0.95: 5633, 0.99: 5778, 0.999: 5778}
    assert sample.reported
    other = parse_triton_metrics(RECORDED, model="other")
    assert other.success == 0 and not other.reported  # no counter for it: not loaded (or unloading)
    unloaded = "\n".join(line for line in RECORDED.splitlines() if not line.startswith("nv_inference"))
    assert not parse_triton_metrics(unloaded).reported


ROUTED = (Path(__file__).parents[1] / "data" / "triton-2.51-routed-metrics.txt").read_text()


def test_the_served_name_counts_each_request_once_and_queues_where_its_tier_queues() -> None:
    """A real scrape of a pod whose served name ``ranker`` (a routing ensemble) sent 133 requests to ``fp32``."""
    served = parse_triton_metrics(ROUTED, model="ranker")
    assert served.success == 133 and served.reported
    assert parse_triton_metrics(ROUTED).success == 266, "every model: each request twice"
    assert served.quantiles_us[0.99] == 28362, "the served name's own latency, end to end"
    # the ensemble queues nothing; the tier it routes to does the batching: the queue is every model's
    assert served.queue_us == 101 + 209596


def test_quantile_interpolation() -> None:
    q = {0.5: 1000.0, 0.9: 2000.0, 0.99: 4000.0}
    assert quantile_at(q, 99) == 4000.0
    assert quantile_at(q, 50) == 1000.0
    assert quantile_at(q, 94.5) == pytest.approx(3000.0)
    assert quantile_at(q, 99.9) == 4000.0  # flat beyond the last reported quantile
    assert quantile_at({}, 99) is None


def _sample(requests: float, request_us: float, queue_us: float, p99_us: float) -> TritonSample:
    return TritonSample(success=requests, request_us=request_us, queue_us=queue_us, quantiles_us={0.99: p99_us})


def test_rates_are_summed_and_latency_request_weighted() -> None:
    window = SlidingWindow(60)
    window.add(0, {"a": _sample(0, 0, 0, 1000), "b": _sample(0, 0, 0, 1000)})
    window.add(10, {"a": _sample(900, 0, 900_000, 2000), "b": _sample(100, 0, 100_000, 10_000)})
    m = window.metrics(99)
    assert m is not None
    assert m.requests_per_second == pytest.approx(100.0)
    assert m.latency_ms == pytest.approx((2.0 * 900 + 10.0 * 100) / 1000)
    assert m.queue_ms == pytest.approx(1.0)
    assert m.pods_reporting == 2


def test_counter_reset_counts_from_zero() -> None:
    window = SlidingWindow(60)
    window.add(0, {"a": _sample(5000, 0, 0, 1000)})
    window.add(10, {"a": _sample(200, 0, 0, 1000)})  # the server restarted and served 200 since
    m = window.metrics(99)
    assert m is not None and m.requests_per_second == pytest.approx(20.0)


def test_a_silent_pod_is_tolerated_and_later_forgotten() -> None:
    window = SlidingWindow(30)
    window.add(0, {"a": _sample(0, 0, 0, 1000), "b": _sample(0, 0, 0, 1000)})
    window.add(10, {"a": _sample(100, 0, 0, 1000), "b": None})
    m = window.metrics(99)
    assert m is not None and m.pods_reporting == 1 and m.requests_per_second == pytest.approx(10.0)
    window.add(100, {"a": _sample(1000, 0, 0, 1000)})
    assert window.pods() == ["a"]


def test_the_window_slides() -> None:
    window = SlidingWindow(20)
    base = _sample(0, 0, 0, 1000)
    for t in range(0, 101, 10):
        rate = 10 if t <= 50 else 50  # 10 rps, then 50 rps
        base = replace(base, success=base.success + rate * 10 if t else 0)
        window.add(t, {"a": base})
    m = window.metrics(99)
    assert m is not None and m.requests_per_second == pytest.approx(50.0)


def test_no_metrics_until_two_samples() -> None:
    window = SlidingWindow(60)
    assert window.metrics(99) is None
    window.add(0, {"a": _sample(0, 0, 0, 1000)})
    assert window.metrics(99) is None


def test_load_moving_between_pods_is_not_counted_twice() -> None:
    """100 rps on pod a for 50 s, then on a new pod b: the fleet served 100 rps throughout."""
    window = SlidingWindow(60)
    for t in range(0, 61, 10):
        samples: dict[str, TritonSample | None] = {"a": _sample(100 * min(t, 50), 0, 0, 1000)}
        if t >= 50:
            samples["b"] = _sample(100 * (t - 50), 0, 0, 1000)
        window.add(t, samples)
    m = window.metrics(99)
    assert m is not None and m.requests_per_second == pytest.approx(100.0)


def test_a_pod_gone_mid_window_still_counts_what_it_served() -> None:
    window = SlidingWindow(60)
    window.add(0, {"a": _sample(0, 0, 0, 1000), "b": _sample(0, 0, 0, 1000)})
    window.add(10, {"a": _sample(500, 0, 0, 1000), "b": _sample(500, 0, 0, 1000)})
    window.add(20, {"b": _sample(1500, 0, 0, 1000)})  # a was deleted; b took its share
    m = window.metrics(99)
    assert m is not None and m.requests_per_second == pytest.approx(100.0)


def test_counters_that_vanish_are_no_sample_but_a_new_pod_without_counters_is_a_zero_baseline() -> None:
    window = SlidingWindow(60)
    window.add(0, {"a": _sample(0, 0, 0, 1000), "b": TritonSample(reported=False)})  # b: nothing counted yet
    window.add(10, {"a": _sample(500, 0, 0, 1000), "b": _sample(300, 0, 0, 1000)})
    window.add(20, {"a": TritonSample(reported=False), "b": _sample(600, 0, 0, 1000)})  # a is shutting down
    m = window.metrics(99)
    assert m is not None and m.requests_per_second == pytest.approx((500 + 600) / 20)


# --- PromQL ------------------------------------------------------------------------------------------------------


def test_promql_selects_series_by_the_model_deployment_label_never_a_pod_name_prefix() -> None:
    from fulcrum.metrics.sources import PrometheusSource

    queries = PrometheusSource("http://prometheus:9090").queries("shop", "ranker", 99)
    selector = 'namespace="shop",model_deployment="ranker"'
    assert all(selector in q for q in queries.values())
    assert not any("pod=~" in q for q in queries.values())  # `ranker-.*` also matched ranker-eu's pods
    assert 'quantile="0.99"' in queries["latency_us"]
    assert queries["rate"] == (
        f"(sum(rate(nv_inference_request_success{{{selector}}}[30s])) + "
        f"sum(rate(nv_inference_request_failure{{{selector}}}[30s])))"
    )
    assert queries["pods"] == f"sum by (pod) (rate(nv_inference_request_success{{{selector}}}[30s]))"


def test_the_metrics_source_flag_chooses_the_source_and_its_window() -> None:
    from fulcrum.metrics.sources import PrometheusSource, ScrapeSource, source_from_spec

    scrape = source_from_spec("scrape")
    assert isinstance(scrape, ScrapeSource) and scrape.window_seconds == 15.0
    prometheus = source_from_spec("prometheus=http://prom:9090")
    assert isinstance(prometheus, PrometheusSource) and prometheus.url == "http://prom:9090"
    assert prometheus.window == "30s"
    assert "[30s]" in prometheus.queries("ns", "md", 99)["rate"]
    assert source_from_spec("", 20.0).window_seconds == 20.0
    wider = source_from_spec("prometheus=http://prom:9090", 60.0)
    assert isinstance(wider, PrometheusSource) and "[60s]" in wider.queries("ns", "md", 99)["rate"]
    assert PrometheusSource("http://p", 7.5).window == "7500ms"
    for text, window, named in [
        ("prom=http://p", None, "'prom=http://p'"),
        ("prometheus=", None, "a URL"),
        ("scrape", 0.0, "--metrics-window-seconds 0"),
    ]:
        with pytest.raises(ValueError, match=named):
            source_from_spec(text, window)


@pytest.mark.parametrize(
    ("percentile", "label"), [(50, "0.5"), (90, "0.9"), (95, "0.95"), (99, "0.99"), (99.9, "0.999")]
)
def test_promql_reads_triton_quantiles_by_their_exact_label(percentile: float, label: str) -> None:
    from fulcrum.metrics.sources import PrometheusSource, quantile_label

    assert quantile_label(percentile) == label
    assert f'quantile="{label}"' in PrometheusSource("http://p").queries("ns", "md", percentile)["latency_us"]


def test_a_percentile_triton_does_not_report_is_refused_not_silently_empty() -> None:
    from fulcrum.metrics.sources import PrometheusSource, quantile_label

    assert quantile_label(97) is None and quantile_label(99.5) is None
    assert "latency_us" not in PrometheusSource("http://p").queries("ns", "md", 97)


def test_prometheus_answers_are_parsed_and_errors_named() -> None:
    from fulcrum.metrics.sources import QueryError, parse_vector

    vector = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"pod": "ranker-fp32-l4-a"}, "value": [1_800_000_000.1, "12.5"]},
                {"metric": {"pod": "ranker-fp32-l4-b"}, "value": [1_800_000_000.1, "NaN"]},
            ],
        },
    }
    assert parse_vector(vector) == [({"pod": "ranker-fp32-l4-a"}, 12.5)]
    assert parse_vector({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}) == [({}, 3.0)]
    assert parse_vector({"status": "success", "data": {"resultType": "vector", "result": []}}) == []
    with pytest.raises(QueryError) as error:
        parse_vector({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"})
    assert "parse error at char 5" in error.value.message
