#!/usr/bin/env python3
"""normkit's Python API against scikit-learn and NumPy in the same process, on the same arrays (the Python
issue's speed check; benchmarks, not tests):

  StandardScaler().fit_transform(x)   normkit vs scikit-learn, float32 [rows, 64] matrices of 64 MB and more
  stats(x, axis=0) mean/var           normkit vs numpy's x.mean(0), x.var(0)
  call overhead                       normkit.stats on a [4, 4] array (the Python-call cost)

Prints one line a case with both times and the ratio, plus a JSON line a case on stdout (--json) for plots.
usage: compare_python.py [--mb 64] [--repeat 5] [--json]
"""
import json
import sys
import time

import numpy as np


def best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv):
    mb = int(argv[argv.index("--mb") + 1]) if "--mb" in argv else 64
    repeat = int(argv[argv.index("--repeat") + 1]) if "--repeat" in argv else 5
    as_json = "--json" in argv
    import normkit
    rows = mb * 2**20 // (4 * 64)
    x = np.random.default_rng(0).normal(3, 2, size=(rows, 64)).astype(np.float32)
    results = []
    try:
        from sklearn.preprocessing import StandardScaler
        ours = best(lambda: normkit.StandardScaler().fit_transform(x), repeat)
        theirs = best(lambda: StandardScaler().fit_transform(x), repeat)
        results.append(("StandardScaler.fit_transform", ours, theirs, "scikit-learn"))
    except ImportError:
        print("scikit-learn not importable: StandardScaler skipped", file=sys.stderr)
    ours = best(lambda: normkit.stats(x, axis=0, stats=("mean", "var")), repeat)
    theirs = best(lambda: (x.mean(0), x.var(0)), repeat)
    results.append(("stats(axis=0) mean+var", ours, theirs, "numpy"))
    small = np.ones((4, 4), np.float32)
    overhead = best(lambda: normkit.stats(small, axis=0, stats=("mean",)), 200)
    for name, a, b, peer in results:
        line = f"{name:32s} {mb} MB float32: normkit {a * 1e3:8.2f} ms, {peer} {b * 1e3:8.2f} ms, {b / a:6.2f}x"
        print(json.dumps({"name": f"python/{name}", "normkit_s": a, "peer": peer, "peer_s": b, "ratio": b / a, "mb": mb}) if as_json else line)
    print(json.dumps({"name": "python/call_overhead", "seconds": overhead}) if as_json else f"{'call overhead (stats of 4x4)':32s} {overhead * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
