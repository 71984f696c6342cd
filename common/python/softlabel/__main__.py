"""python3 -m softlabel: a logit cache from the command line, in Python.

    python3 -m softlabel inspect CACHE [--json]
        teachers (T, encoding, classes, model SHA-256) and each one's
        coverage: shards done / quarantined / pending, records, fraction
    python3 -m softlabel get CACHE --sample A[:B] [--teacher NAME]
        [--temperature T] [--logits] [--json]
        one line per sample: the teacher's distribution at the stored T (or
        T), or with --logits its raw logits (dense records only); --json:
        {"teacher", "sample", "T", "probs"} (or {"teacher", "sample",
        "logits"}) per line, as `softlabel get --json`, floats in full; a
        sample without a record: "probs": null, and exit 1
    python3 -m softlabel plot METRICS.jsonl... -o OUT.png   (softlabel.plot)

The same numbers as the C `softlabel` tool (the same reader code paths as
softlabel.Cache). Exit 0; 1 for a cache it cannot read or a sample without
a record (the others are printed); 2 for bad usage (one line on stderr).
"""
import argparse
import json
import sys

from .cache import Cache, CacheError, CorruptRecordError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"softlabel: {message} (see python3 -m softlabel --help)",
              file=sys.stderr)
        sys.exit(2)


def _range(text, rows):
    """A[:B] (A: and :B open-ended) -> range, or ValueError."""
    if ":" in text:
        a, b = text.split(":", 1)
        lo = int(a) if a else 0
        hi = int(b) if b else rows
    else:
        lo = int(text)
        hi = lo + 1
    if lo < 0 or hi > rows or lo >= hi:
        raise ValueError(f"--sample {text}: outside the dataset's {rows:,} "
                         f"rows (0..{rows - 1})")
    return range(lo, hi)


def cmd_inspect(args):
    with Cache(args.cache) as c:
        out = {"path": args.cache, "rows": c.rows, "shards": c.nshards,
               "teachers": []}
        for t in sorted(c.teachers.values(), key=lambda t: t.index):
            cov = c.coverage(t)
            out["teachers"].append({
                "name": t.name, "index": t.index, "temperature": t.temperature,
                "encoding": t.encoding, "classes": t.classes,
                "model_sha256": t.model_sha256, **{k: cov[k] for k in (
                    "done", "quarantined", "pending", "records",
                    "fraction")}})
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"cache {args.cache}: {out['rows']:,} rows in {out['shards']} shards")
    for t in out["teachers"]:
        print(f"teacher {t['name']} (index {t['index']}): T={t['temperature']:g} "
              f"{t['encoding']}, {t['classes']} classes, model "
              f"{t['model_sha256'][:12]}...; {t['done']}/{out['shards']} shards "
              f"done, {t['quarantined']} quarantined, {t['pending']} pending; "
              f"{t['records']:,} records ({100 * t['fraction']:.1f}%)")
    if not out["teachers"]:
        print("no teacher registered yet")
    return 0


def cmd_get(args):
    rc = 0
    with Cache(args.cache) as c:
        try:
            t = c.teacher(args.teacher)
        except (KeyError, ValueError) as e:
            print(f"softlabel: {e.args[0]}", file=sys.stderr)
            return 2
        try:
            ids = _range(args.sample, c.rows)
        except ValueError as e:
            msg = str(e) if "outside" in str(e) else \
                f"--sample {args.sample}: want A or A:B (sample numbers)"
            print(f"softlabel: {msg}", file=sys.stderr)
            return 2
        if args.logits and not t.encoding.startswith("f"):
            print(f"softlabel: --logits: teacher {t.name} stores {t.encoding} "
                  "records; only dense ones give all logits back here",
                  file=sys.stderr)
            return 2
        T = t.temperature if args.temperature is None else args.temperature
        if args.logits:
            vals, have = c.logits(ids, t, missing="mask")
        else:
            vals, have = c.probs(ids, t, temperature=args.temperature,
                                 missing="mask")
        key = "logits" if args.logits else "probs"
        for i, s in enumerate(ids):
            if not have[i]:
                rc = 1
                if args.json:
                    print(json.dumps({"teacher": t.name, "sample": s, "T": T,
                                      key: None}))
                else:
                    print(f"softlabel: no record for sample {s} yet",
                          file=sys.stderr)
                continue
            row = [float(v) for v in vals[i]]
            if args.json:
                # As the C tool: logits carry no T (they are T * values).
                print(json.dumps({"teacher": t.name, "sample": s, key: row}
                                 if args.logits else
                                 {"teacher": t.name, "sample": s, "T": T,
                                  key: row}))
            else:
                what = "logits" if args.logits else f"at T={T:g}"
                print(f"teacher {t.name} sample {s} {what}: " +
                      " ".join(f"{v:.{args.digits}f}" for v in row))
    return rc


def main(argv=None):
    ap = _Parser(prog="python3 -m softlabel",
                 description="Read a softlabel logit cache (inspect, get); "
                             "plot training curves (plot).")
    sub = ap.add_subparsers(dest="cmd", metavar="inspect|get|plot")
    p = sub.add_parser("inspect", help="teachers and coverage")
    p.add_argument("cache", metavar="CACHE")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p = sub.add_parser("get", help="records of samples")
    p.add_argument("cache", metavar="CACHE")
    p.add_argument("--sample", required=True, metavar="A[:B]",
                   help="sample A, or samples A..B-1 (A: and :B open-ended)")
    p.add_argument("--teacher", metavar="NAME",
                   help="needed when the cache has several")
    p.add_argument("--temperature", type=float, metavar="T",
                   help="the distribution at T (default: the stored T)")
    p.add_argument("--logits", action="store_true",
                   help="the teacher's raw logits (dense records)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per sample and line")
    p.add_argument("--digits", type=int, default=6, choices=range(1, 10),
                   metavar="N", help="decimals printed (default 6)")
    sub.add_parser("plot", help="training curves: see python3 -m "
                   "softlabel.plot --help", add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["plot"]:
        from .plot import main as plot_main
        return plot_main(argv[1:])
    args = ap.parse_args(argv)
    if args.cmd is None:
        ap.error("a command is needed: inspect, get or plot")
    if args.cmd == "get" and args.temperature is not None and \
            not args.temperature > 0:
        ap.error(f"--temperature {args.temperature:g}: must be above 0")
    try:
        return cmd_inspect(args) if args.cmd == "inspect" else cmd_get(args)
    except (CacheError, CorruptRecordError, OSError) as e:
        print(f"softlabel: {args.cache}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
