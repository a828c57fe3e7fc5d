#!/usr/bin/env python3
"""Streaming data-set statistics against the raw file read rate, measured in the same run.

For each case a .npy file is written (random data, never zeros), read once so that it sits in the page cache,
then timed alternately (best of --repeat): the raw read rate (read() of the whole file in 64 MB pieces into one
buffer, what `dd bs=64M` does) and `normkit stats FILE --chunk-bytes B --device D --quiet --out ...` (the
process's wall time: its start and its output included). Prints a table and, with --json, one JSON line a case
(bench/plot.py reads neither; docs/measured keeps them).

  python3 bench/stream_rate.py BUILD_DIR [--mb 512] [--repeat 5] [--device cpu] [--dir /tmp] [--json] [--quiet]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

CASES = [  # name, dtype, row shape, normkit axes
    ("per_feature/f32", np.float32, (1024,), "0"),
    ("nhwc_c3/u8", np.uint8, (224, 224, 3), "0,1,2"),
    ("global/u8", np.uint8, (4096,), "all"),
    ("per_feature/f16", np.float16, (1024,), "0"),
]


def raw_read_seconds(path, chunk):
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(view):
            pass
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("build")
    p.add_argument("--mb", type=int, default=512, help="file size per case (MB)")
    p.add_argument("--chunk-mb", type=int, default=64, help="normkit's --chunk-bytes (MB)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dir", default=None, help="where the files go (default: a temporary folder)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no table on stderr (the JSON lines only)")
    args = p.parse_args()
    normkit = os.path.join(args.build, "normkit")
    chunk = args.chunk_mb << 20
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        table = open(os.devnull, "w") if args.quiet else sys.stderr
        print(f"{'case':<18} {'MB':>6} {'read GB/s':>10} {'normkit GB/s':>13} {'fraction':>9}", file=table)
        for name, dtype, row, axes in CASES:
            row_bytes = int(np.prod(row)) * np.dtype(dtype).itemsize
            rows = max(1, (args.mb << 20) // row_bytes)
            path = os.path.join(tmp, name.replace("/", "_") + ".npy")
            data = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(rows,) + row)
            for r in range(0, rows, 4096):  # (written in slices: the file may be larger than wanted in memory)
                n = min(4096, rows - r)
                block = rng.integers(1, 256, size=(n,) + row) if dtype == np.uint8 else rng.standard_normal((n,) + row)
                data[r:r + n] = block.astype(dtype)
            data.flush()
            del data
            size = os.path.getsize(path)
            raw_read_seconds(path, chunk)  # (into the page cache)
            command = [normkit, "stats", path, "--axis", axes, "--chunk-bytes", str(chunk), "--device", args.device,
                       "--quiet", "--out", os.path.join(tmp, "stats.safetensors")]
            read_best, stats_best = float("inf"), float("inf")
            for _ in range(args.repeat):
                read_best = min(read_best, raw_read_seconds(path, chunk))
                start = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                stats_best = min(stats_best, time.perf_counter() - start)
            os.remove(path)
            record = {"case": "stream/" + name, "bytes": size, "device": args.device, "chunk_bytes": chunk,
                      "read_gbps": size / read_best / 1e9, "normkit_gbps": size / stats_best / 1e9,
                      "fraction_of_read": read_best / stats_best, "cpus": os.cpu_count(), "machine": platform.machine()}
            print(f"{name:<18} {size / 1e6:>6.0f} {record['read_gbps']:>10.2f} {record['normkit_gbps']:>13.2f} "
                  f"{record['fraction_of_read']:>9.2f}", file=table)
            if args.json:
                print(json.dumps(record))


if __name__ == "__main__":
    main()
