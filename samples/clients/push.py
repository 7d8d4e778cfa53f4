#!/usr/bin/env python3
"""Push a small set of metrics to a Pushgateway-compatible endpoint (pushkit,
or Prometheus' own Pushgateway) with the official Python client.

Setup and run, from the repository root, against an agent on 127.0.0.1:9529:

    python3 -m venv .venv && .venv/bin/pip install prometheus-client
    .venv/bin/python3 samples/clients/push.py http://127.0.0.1:9529

What it does, in order, all under job "py-batch" with the grouping key
instance="host-1", path="/var/data" (the '/' makes the client send the value
as "path@base64/L3Zhci9kYXRh"):

  1. PUT    (push_to_gateway)    a registry with a Counter, a Gauge (two
            series, one with an empty label value), a Summary and a Histogram;
  2. POST   (pushadd_to_gateway) one more Gauge, gzip-compressed;
  3. DELETE (delete_from_gateway) the group, unless --no-delete is given.

Each request is printed as "METHOD STATUS" on stdout. The client itself only
raises on 4xx/5xx, so this script also checks the exact status: 200 for PUT
and POST, 202 for DELETE, and exits with status 1 otherwise.

The `*_created` series are turned off (PROMETHEUS_DISABLE_CREATED_SERIES) so
that every pushed value is fixed and the output can be checked exactly.
"""

import argparse
import os
import sys
import urllib.request

os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "true")

from prometheus_client import (  # noqa: E402  (after the env setting above)
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    delete_from_gateway,
    push_to_gateway,
    pushadd_to_gateway,
)

JOB = "py-batch"
GROUPING_KEY = {"instance": "host-1", "path": "/var/data"}
WANT_STATUS = {"PUT": 200, "POST": 200, "DELETE": 202}
failures = []


def checking_handler(url, method, timeout, headers, data):
    """Like the client's default_handler, but prints and checks the status
    (urlopen raises HTTPError on 4xx/5xx, which also ends the script)."""

    def handle():
        request = urllib.request.Request(url, data=data, method=method)
        for key, value in headers:
            request.add_header(key, value)
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status = resp.status
        print(f"{method} {status}", flush=True)
        if status != WANT_STATUS[method]:
            failures.append(f"{method} {url}: want {WANT_STATUS[method]}, got {status}")

    return handle


def build_main_registry():
    registry = CollectorRegistry()
    processed = Counter(
        "demo_jobs_processed", "Jobs processed by this batch run.", ["queue"],
        registry=registry,
    )
    processed.labels(queue="high").inc(3)

    temperature = Gauge(
        "demo_temperature_celsius", "A gauge; an empty label value is dropped by pushkit.",
        ["room"], registry=registry,
    )
    temperature.labels(room="kitchen").set(21.5)
    temperature.labels(room="").set(-3)

    latency = Summary("demo_request_seconds", "A summary (count and sum only).", registry=registry)
    latency.observe(0.25)
    latency.observe(0.75)

    size = Histogram(
        "demo_batch_size", "A histogram; the client writes le=\"1.0\".",
        buckets=(1, 5, 10), registry=registry,
    )
    for value in (3, 7, 20):
        size.observe(value)
    return registry


def build_add_registry():
    registry = CollectorRegistry()
    marker = Gauge("demo_add_marker", "Pushed with POST, gzip-compressed.", registry=registry)
    marker.set(9)
    return registry


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gateway", nargs="?", default="http://127.0.0.1:9529",
                        help="base URL of the Pushgateway API (default %(default)s)")
    parser.add_argument("--no-delete", action="store_true", help="leave the group in place")
    args = parser.parse_args()

    push_to_gateway(args.gateway, job=JOB, registry=build_main_registry(),
                    grouping_key=GROUPING_KEY, handler=checking_handler, timeout=10)
    pushadd_to_gateway(args.gateway, job=JOB, registry=build_add_registry(),
                       grouping_key=GROUPING_KEY, handler=checking_handler, timeout=10,
                       compression="gzip")
    if not args.no_delete:
        delete_from_gateway(args.gateway, job=JOB, grouping_key=GROUPING_KEY,
                            handler=checking_handler, timeout=10)

    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
