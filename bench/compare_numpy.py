#!/usr/bin/env python3
"""Host engine vs numpy: mean + var along the same axes of the same float32 shapes.

Runs numpy's `x.mean(axis); x.var(axis)` on the shapes of bench_normkit' host/*/float32/large cases
(keep SHAPES in sync with patterns() in bench_stats.cpp), then bench_normkit on those cases, and prints
each ratio (target: normkit >= 5x numpy). Installs numpy with pip when it is missing.

usage: bench/compare_numpy.py [BUILD_DIR]
"""
import json
import os
import subprocess
import sys
import time

SHAPES = {  # name: (shape, reduced axes)  -- bench_stats.cpp patterns(large=true)
    "per_feature": ((4096 * 64, 256), (0,)),
    "per_sample": ((256 * 64, 4096), (1,)),
    "per_sample16": ((65536 * 64, 16), (1,)),
    "per_sample64": ((16384 * 64, 64), (1,)),
    "global": ((1 << 20, 64), None),
    "nhwc_c3": ((16 * 64, 128, 128, 3), (0, 1, 2)),
    "nchw_c3": ((16 * 64, 3, 128, 128), (0, 2, 3)),
}


def ensure_numpy():
    try:
        import numpy  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "numpy"], check=True)


def numpy_seconds(shape, axes, repeats=3):
    import numpy as np
    x = np.random.default_rng(0).uniform(0.5, 2.0, size=shape).astype(np.float32)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        x.mean(axis=axes)
        x.var(axis=axes)
        best = min(best, time.perf_counter() - t)
    return best, x.nbytes


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    ensure_numpy()
    out = subprocess.run([os.path.join(build, "bench", "bench_normkit"), "--benchmark_filter=host/(copy/.*|.*/float32/large)",
                          "--benchmark_format=json", "--benchmark_min_time=0.5"], capture_output=True, text=True, check=True)
    results = {b["name"].split("/")[1]: b for b in json.loads(out.stdout)["benchmarks"]}
    print(f"{'case':<12} {'bytes':>12} {'numpy GB/s':>11} {'normkit GB/s':>13} {'ratio':>7} {'of copy':>8}")
    for name, (shape, axes) in SHAPES.items():
        seconds, nbytes = numpy_seconds(shape, axes)
        b = results[name]
        normkit_rate = b["bytes_per_second"]
        print(f"{name:<12} {nbytes:>12} {nbytes / seconds / 1e9:>11.2f} {normkit_rate / 1e9:>13.2f} "
              f"{normkit_rate / (nbytes / seconds):>7.1f} {b.get('of_copy', float('nan')):>8.2f}")


if __name__ == "__main__":
    main()
