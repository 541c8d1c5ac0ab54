"""Summarise the interleaved runs of run.sh for one configuration (stdin: "build ms"
lines; arguments: N D M C L)."""

import statistics
import sys

N, D, M, C, L = sys.argv[1:6]
times = {"full": [], "encode": [], "sums": []}
for line in sys.stdin:
    build, ms = line.split()
    times[build].append(float(ms))
missing = [k for k, v in times.items() if not v]
if missing:
    sys.exit(f"no timings from the {', '.join(missing)} build(s) for {N} {D} {M} {C} {L}: "
             "see the errors above")
low = {k: min(v) for k, v in times.items()}
mid = {k: statistics.median(v) for k, v in times.items()}
cells = " ".join(f"{low[k]:7.3f}/{mid[k]:7.3f}" for k in ("full", "encode", "sums"))
sums = low["sums"] - low["encode"]
if L == "F" and sums > 0:
    # column-major x: the encoder reads only the split columns and finishes before
    # the sums start, so the phases add up
    rate = int(N) * int(C) * int(M) / (sums * 1e-3) / 1e9
    phases = f"{low['encode']:7.3f} {sums:7.3f} {low['full'] - low['sums']:7.3f} {rate:7.1f}"
else:
    # row-major x: the phases overlap with the read of x (see run.sh)
    phases = " ".join(f"{'-':>7}" for _ in range(4))
print(f"{N:>6} {D:>4} {M:>5} {C:>3} {L} | {cells} | {phases}")
