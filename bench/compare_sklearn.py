#!/usr/bin/env python3
"""Host fit + apply vs scikit-learn's StandardScaler().fit_transform on the same float32 shapes.

Times scikit-learn on the shapes of bench_normkit's host/fit_apply/* cases (keep SHAPES in sync with
register_transform_benchmarks() in bench_transforms.cpp), runs those cases and prints each ratio (target:
normkit >= 5x). Installs numpy and scikit-learn with pip when they are missing.

usage: bench/compare_sklearn.py [BUILD_DIR]
"""
import json
import os
import subprocess
import sys
import time

SHAPES = [(1 << 20, 64), (1 << 16, 1024)]


def ensure_packages():
    try:
        import numpy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "numpy", "scikit-learn"], check=True)


def sklearn_seconds(rows, features, repeats=3):
    import numpy as np
    from sklearn.preprocessing import StandardScaler
    x = np.random.default_rng(0).uniform(0.5, 2.0, size=(rows, features)).astype(np.float32)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        StandardScaler().fit_transform(x)
        best = min(best, time.perf_counter() - t)
    return best, x.nbytes


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    ensure_packages()
    out = subprocess.run([os.path.join(build, "bench", "bench_normkit"), "--benchmark_filter=host/fit_apply/",
                          "--benchmark_format=json", "--benchmark_min_time=0.5"], capture_output=True, text=True, check=True)
    results = {b["name"].split("/")[3]: b for b in json.loads(out.stdout)["benchmarks"]}
    print(f"{'shape':<14} {'bytes':>11} {'sklearn GB/s':>13} {'normkit GB/s':>13} {'ratio':>7}")
    for rows, features in SHAPES:
        seconds, nbytes = sklearn_seconds(rows, features)
        b = results[f"{rows}x{features}"]
        rate = b["bytes_per_second"]
        print(f"{rows}x{features:<8} {nbytes:>11} {nbytes / seconds / 1e9:>13.2f} {rate / 1e9:>13.2f} {rate / (nbytes / seconds):>7.1f}")


if __name__ == "__main__":
    main()
