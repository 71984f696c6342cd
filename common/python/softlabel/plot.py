"""Training curves of softlabel-student runs as one PNG.

    python3 -m softlabel.plot run1.jsonl [run2.jsonl ...] -o curves.png
        [--size 1500x450] [--title TEXT]

Each FILE is what `softlabel-student --metrics FILE` writes: one JSON object
per epoch with "epoch", "loss", "test_accuracy" and "fidelity" (the last two
null when the run had no test data or no --teacher-model). Three panels,
one line per run (named after its file, without .jsonl): test accuracy,
fidelity (agreement with the teacher on the test images) and training loss
against the epoch. A resumed run that wrote an epoch twice is drawn with
the last line written for it. A panel no run has values for says so.

Exit 0 with the PNG written; 2 for bad usage (no files, no -o, -o not a
.png, a bad --size); 1 for input it cannot draw (a file missing or
unreadable, a line that is not a JSON object, no epoch in a file), with one
line on stderr naming the file and line. Nothing is written on failure.

Needs matplotlib (Debian: python3-matplotlib); drawn with the Agg backend,
so no display is needed.
"""
import argparse
import json
import math
import os
import sys

PANELS = (("test_accuracy", "test accuracy"),
          ("fidelity", "fidelity (agreement with the teacher)"),
          ("loss", "training loss"))
DPI = 100


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit 2."""

    def error(self, message):
        print(f"softlabel.plot: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


class PlotError(Exception):
    """Input that cannot be drawn; the message names the file and line."""


def load_run(path):
    """{epoch: record} of one metrics file, the last record per epoch."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PlotError(f"{path}: {e.strerror if isinstance(e, OSError) else e}")
    epochs = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise PlotError(f"{path}:{n}: not JSON ({e.msg})")
        if not isinstance(rec, dict):
            raise PlotError(f"{path}:{n}: not a JSON object")
        ep = rec.get("epoch")
        if not isinstance(ep, int) or isinstance(ep, bool) or ep < 0:
            raise PlotError(f"{path}:{n}: no \"epoch\" (a softlabel-student "
                            "--metrics file has one per line)")
        for key, _ in PANELS:
            v = rec.get(key)
            if v is not None and (not isinstance(v, (int, float)) or
                                  isinstance(v, bool)):
                raise PlotError(f"{path}:{n}: \"{key}\" is not a number")
        epochs[ep] = rec
    if not epochs:
        raise PlotError(f"{path}: no epoch in it (empty, or not a "
                        "softlabel-student --metrics file)")
    return epochs


def run_name(path):
    base = os.path.basename(path)
    return base[:-len(".jsonl")] if base.endswith(".jsonl") else base


def parse_size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': want WIDTHxHEIGHT in "
                                         "pixels, e.g. 1500x450")
    if not (200 <= w <= 10000 and 150 <= h <= 10000):
        raise argparse.ArgumentTypeError(f"'{text}': width 200-10000, height "
                                         "150-10000 pixels")
    return w, h


def plot(runs, out, size=(1500, 450), title=None):
    """Draw runs [(name, {epoch: record})] into the PNG out, size (w, h)
    pixels exactly. Written to a temporary file, then renamed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.ticker
    from matplotlib import pyplot as plt

    w, h = size
    fig, axes = plt.subplots(1, len(PANELS), figsize=(w / DPI, h / DPI),
                             dpi=DPI)
    for ax, (key, label) in zip(axes, PANELS):
        drawn = 0
        for name, epochs in runs:
            pts = [(ep, rec[key]) for ep, rec in sorted(epochs.items())
                   if rec.get(key) is not None and math.isfinite(rec[key])]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts],
                        marker="o", markersize=3, label=name)
                drawn += 1
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if not drawn:
            ax.text(0.5, 0.5, "no values in these runs", ha="center",
                    va="center", transform=ax.transAxes, color="gray")
        elif key != "loss":
            ax.yaxis.set_major_formatter(
                matplotlib.ticker.PercentFormatter(xmax=1, decimals=1))
    handles, labels = axes[-1].get_legend_handles_labels()
    for ax in axes:
        hs, ls = ax.get_legend_handles_labels()
        if len(ls) > len(labels):
            handles, labels = hs, ls
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4),
                   fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(labels) - 1) // 4), 1, 1))
    tmp = out + ".tmp"
    try:
        # No bbox_inches="tight": the PNG is exactly size pixels.
        fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv=None):
    ap = _Parser(
        prog="python3 -m softlabel.plot",
        description="Draw test accuracy, fidelity and training loss per "
                    "epoch of softlabel-student runs (--metrics files) into "
                    "one PNG.")
    ap.add_argument("files", nargs="+", metavar="METRICS.jsonl",
                    help="one file per run, as softlabel-student --metrics "
                         "writes it")
    ap.add_argument("-o", "--out", required=True, metavar="OUT.png",
                    help="the PNG to write (replaced when it exists)")
    ap.add_argument("--size", type=parse_size, default=(1500, 450),
                    metavar="WxH", help="pixels (default 1500x450)")
    ap.add_argument("--title", help="a title above the panels")
    args = ap.parse_args(argv)
    if not args.out.lower().endswith(".png"):
        ap.error(f"-o {args.out}: the output is a PNG; name it .png")
    try:
        runs = [(run_name(p), load_run(p)) for p in args.files]
        plot(runs, args.out, args.size, args.title)
    except PlotError as e:
        print(f"softlabel.plot: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"softlabel.plot: {args.out}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(runs)} run(s), {args.size[0]}x{args.size[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
