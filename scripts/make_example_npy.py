#!/usr/bin/env python3
"""Writes a small example .npy (standard library only): a float32 batch of 64 samples x 3 x 8 x 8 (NCHW)
whose channels have means 0.49, 0.48, 0.45 and std 0.25, 0.24, 0.26 (ImageNet-like, in [0, 1] units)."""
import array
import random
import struct
import sys

def write_npy(path, shape, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(f"{d}, " for d in shape)
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    data = array.array("f", values)
    if sys.byteorder != "little":
        data.byteswap()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(data.tobytes())
    import os
    os.replace(tmp, path)

def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "example.npy"
    rng = random.Random(0)
    n, c, h, w = 64, 3, 8, 8
    means, stds = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    values = [rng.gauss(means[ci], stds[ci]) for _ in range(n) for ci in range(c) for _ in range(h * w)]
    write_npy(path, (n, c, h, w), values)
    print(f"wrote {path}: float32 {n}x{c}x{h}x{w}")

if __name__ == "__main__":
    main()
