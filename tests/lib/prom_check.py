#!/usr/bin/python3
"""Scrape a softlabel broker's /metrics with a real HTTP client (urllib)
and check it. Every wait is bounded (10 s per request).

    prom_check.py URL format
        the text is well-formed Prometheus exposition (version 0.0.4):
        every sample's family has HELP and TYPE lines before it, names
        and labels are valid, no series twice; prints the sample count
    prom_check.py URL worker NAME TEACHER
        a worker NAME of TEACHER is listed in every worker family, with
        last_seen below 30 s and at least one lease; one worker session
    prom_check.py URL status STATUS.json
        the numbers equal the status the broker gave (taken when the job
        stood still): shards by state, samples committed, commits,
        results, rejections and auth refusals by reason; the commit
        histogram is cumulative and its count is the commits
Exit 0 when it holds, 1 (with the reason) when not.
"""
import json
import math
import re
import sys
import urllib.request

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        if r.status != 200:
            fail(f"{url}: HTTP {r.status}")
        ctype = r.headers.get("Content-Type", "")
        if not ctype.startswith("text/plain; version=0.0.4"):
            fail(f"Content-Type {ctype!r}")
        return r.read().decode("utf-8")


def parse(text):
    """{(name, ((label, value), ...)): float}, checking the format."""
    types, helps, series = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            if not NAME.match(name) or typ not in ("counter", "gauge",
                                                    "histogram"):
                fail(f"bad TYPE line {line!r}")
            types[name] = typ
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        if not m:
            fail(f"bad sample line {line!r}")
        name, labels = m.group(1), ()
        if m.group(3):
            rest, got = m.group(3), []
            while rest:
                lm = LABEL.match(rest)
                if not lm:
                    fail(f"bad labels in {line!r}")
                got.append((lm.group(1), lm.group(2)))
                rest = rest[lm.end():]
            labels = tuple(got)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in types and not (family in types and
                                      types[family] == "histogram"):
            fail(f"sample {name} before its TYPE line")
        if (name if name in types else family) not in helps:
            fail(f"sample {name} without HELP")
        key = (name, labels)
        if key in series:
            fail(f"series twice: {line!r}")
        v = m.group(4)
        series[key] = math.inf if v == "+Inf" else float(v)
    return series


def get(series, name, **labels):
    for (n, ls), v in series.items():
        if n == name and all(dict(ls).get(k) == w for k, w in labels.items()):
            return v
    fail(f"no {name}{labels}")


def main():
    url, mode = sys.argv[1], sys.argv[2]
    series = parse(scrape(url))
    if mode == "format":
        print(f"{len(series)} samples, well-formed")
    elif mode == "worker":
        name, teacher = sys.argv[3], sys.argv[4]
        for fam in ("softlabel_worker_samples_per_second",
                    "softlabel_worker_samples_total",
                    "softlabel_worker_leases",
                    "softlabel_worker_last_seen_seconds"):
            get(series, fam, worker=name, teacher=teacher)
        seen = get(series, "softlabel_worker_last_seen_seconds", worker=name)
        leases = get(series, "softlabel_worker_leases", worker=name)
        if not 0 <= seen < 30:
            fail(f"{name} last seen {seen} s ago")
        if leases < 1:
            fail(f"{name} holds {leases} leases mid-job")
        if get(series, "softlabel_workers") != 1:
            fail(f"{get(series, 'softlabel_workers')} worker sessions, want 1")
        print(f"worker {name}: last seen {seen:.2f} s ago, {leases:g} leases")
    elif mode == "status":
        st = json.load(open(sys.argv[3]))
        checks = [("softlabel_shards_total", {}, st["shards"]),
                  ("softlabel_rows", {}, st["rows"]),
                  ("softlabel_commits_total", {}, st["commits"]),
                  ("softlabel_results_committed_total", {},
                   st["committed_results"]),
                  ("softlabel_duplicates_total", {}, st["duplicates"]),
                  ("softlabel_workers", {}, len(st["workers"]))]
        for t in st["teachers"]:
            for s in ("done", "leased", "pending", "quarantined"):
                checks.append(("softlabel_shards",
                               {"teacher": t["name"], "state": s}, t[s]))
            checks.append(("softlabel_samples_per_second",
                           {"teacher": t["name"]}, t["samples_per_s"]))
            if t["done"] == st["shards"]:  # all labeled by this run
                checks.append(("softlabel_samples_committed_total",
                               {"teacher": t["name"]}, st["rows"]))
        for r, n in st["rejected"].items():
            checks.append(("softlabel_rejected_total", {"reason": r}, n))
        for r, n in st["auth_refused"].items():
            checks.append(("softlabel_auth_refused_total", {"reason": r}, n))
        for name, labels, want in checks:
            got = get(series, name, **labels)
            if not math.isclose(got, want, rel_tol=1e-6):
                fail(f"{name}{labels} = {got:g}, status says {want}")
        buckets = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in
                          series.items()
                          if n == "softlabel_commit_duration_seconds_bucket"))
        counts = [v for _, v in buckets]
        if len(buckets) < 2 or buckets[-1][0] != math.inf or \
                counts != sorted(counts):
            fail(f"commit histogram not cumulative: {buckets}")
        count = get(series, "softlabel_commit_duration_seconds_count")
        if count != counts[-1] or count != st["commits"]:
            fail(f"commit histogram count {count:g}, +Inf {counts[-1]:g}, "
                 f"status commits {st['commits']}")
        if not get(series, "softlabel_commit_duration_seconds_sum") > 0:
            fail("commit histogram sum is 0")
        print(f"{len(checks)} numbers equal status; {count:g} commits in the "
              "histogram")
    else:
        fail(f"unknown mode {mode}")


main()
