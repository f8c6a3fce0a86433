#!/usr/bin/env python3
"""Prometheus HTTP API checks for scripts/container-check.sh (standard library only).

  prom.py URL query EXPR                 prints the series; exit 1 when the result is empty
  prom.py URL up JOB=N ...               waits (60 s) until each job has N targets up
  prom.py URL alert NAME LABEL=VALUE TIMEOUT
                                         waits until alert NAME fires for a series with that label;
                                         prints when it went pending and fired
  prom.py URL exemplar METRIC            prints the trace id of the newest exemplar of METRIC
                                         (last 10 minutes); exit 1 when there is none
"""
import json
import sys
import time
import urllib.parse
import urllib.request


def get(base, path, **params):
    with urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(params)}", timeout=10) as r:
        body = json.loads(r.read())
    if body.get("status") != "success":
        raise RuntimeError(body)
    return body["data"]


def query(base, expr):
    data = get(base, "/api/v1/query", query=expr)
    for s in data["result"]:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s["metric"].items()) if k != "__name__")
        print(f"    {{{labels}}} {s['value'][1]}")
    return 0 if data["result"] else 1


def up(base, wanted):
    want = dict(w.split("=") for w in wanted)
    deadline = time.time() + 60
    while time.time() < deadline:
        counts = {}
        for s in get(base, "/api/v1/query", query="up == 1")["result"]:
            counts[s["metric"]["job"]] = counts.get(s["metric"]["job"], 0) + 1
        if all(counts.get(j, 0) >= int(n) for j, n in want.items()):
            return 0
        time.sleep(1)
    print(f"    targets up: {counts}, wanted {want}")
    return 1


def alert(base, name, selector, timeout):
    key, _, value = selector.partition("=")
    deadline = time.time() + float(timeout)
    started, pending = time.time(), None
    while time.time() < deadline:
        for a in get(base, "/api/v1/alerts")["alerts"]:
            if a["labels"].get("alertname") == name and a["labels"].get(key) == value:
                if a["state"] == "pending" and pending is None:
                    pending = time.time()
                if a["state"] == "firing":
                    print(f"    {name} firing for {selector} (active since {a.get('activeAt')}); "
                          f"waited {time.time() - started:.0f} s here")
                    return 0
        time.sleep(1)
    print(f"    {name} did not fire for {selector} within {timeout} s "
          f"({'pending since ' + str(round(time.time() - pending)) + ' s' if pending else 'never pending'})")
    return 1


def exemplar(base, metric):
    now = time.time()
    data = get(base, "/api/v1/query_exemplars", query=metric, start=now - 600, end=now)
    newest = None
    for series in data:
        for e in series.get("exemplars", []):
            trace = e["labels"].get("trace_id")
            if trace and (newest is None or e["timestamp"] > newest[0]):
                newest = (e["timestamp"], trace, series["seriesLabels"].get("instance", ""))
    if newest is None:
        return 1
    print(f"{newest[1]} {newest[2]}")
    return 0


def main():
    base, mode, *rest = sys.argv[1:]
    if mode == "query":
        sys.exit(query(base, rest[0]))
    if mode == "up":
        sys.exit(up(base, rest))
    if mode == "alert":
        sys.exit(alert(base, *rest))
    if mode == "exemplar":
        sys.exit(exemplar(base, rest[0]))
    sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
