#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (standard library only): small valid .npy files of every
supported dtype and format version plus a few near-misses, IDX files (plain and gzip), safetensors files, and Normalizer state files
made by the `normkit` command (given as the first argument) with their metadata for the metadata target.

usage: make_corpus.py NORMKIT_BINARY [CORPUS_DIR]   (default tests/fuzz/corpus)
       make_corpus.py --idx-only [IDX_CORPUS_DIR]      (the IDX seeds alone)
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile


def npy_bytes(descr, shape, payload, version=1, fortran=False, pad_to=64):
    shape_text = "(" + "".join(f"{d}, " for d in shape)[:-2] + ("," if len(shape) == 1 else "") + ")"
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape_text)
    length_bytes = 2 if version == 1 else 4
    prefix = 6 + 2 + length_bytes
    total = (prefix + len(header) + 1 + pad_to - 1) // pad_to * pad_to
    header = header + " " * (total - prefix - len(header) - 1) + "\n"
    head = b"\x93NUMPY" + bytes([version, 0]) + (struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header)))
    return head + header.encode("latin-1") + payload


def safetensors_bytes(tensors, metadata=None):
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + blob


def idx_bytes(type_byte, shape, payload):
    return bytes([0, 0, type_byte, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload


def put_idx_corpus(directory):
    """IDX seeds (the MNIST format), plain and gzip: every readable type, near misses of each check."""
    os.makedirs(directory, exist_ok=True)
    seeds = {
        "u8_2x3x3.idx": idx_bytes(0x08, [2, 3, 3], bytes(range(18))),
        "u8_labels_5.idx": idx_bytes(0x08, [5], bytes([0, 9, 3, 3, 1])),
        "f32_4.idx": idx_bytes(0x0D, [4], struct.pack(">4f", 1, -2.5, float("inf"), 0)),
        "f64_2x2.idx": idx_bytes(0x0E, [2, 2], struct.pack(">4d", 1e300, -1e-300, 3, 4)),
        "i32_2.idx": idx_bytes(0x0C, [2], struct.pack(">2i", -1, 7)),
        "u8_truncated.idx": idx_bytes(0x08, [2, 3, 3], bytes(range(10))),
        "u8_trailing.idx": idx_bytes(0x08, [2], bytes(range(4))),
        "u8_empty_dim.idx": idx_bytes(0x08, [0, 28, 28], b""),
        "huge_dims.idx": idx_bytes(0x0E, [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b""),
    }
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    for name in ("u8_2x3x3.idx", "f32_4.idx", "u8_truncated.idx"):
        with open(os.path.join(directory, name + ".gz"), "wb") as f:
            f.write(gzip.compress(seeds[name], mtime=0))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--idx-only":
        put_idx_corpus(sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "idx"))
        return
    normkit = os.path.abspath(sys.argv[1])
    root = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    dirs = {k: os.path.join(root, k) for k in ("npy", "safetensors", "normalizer_file", "normalizer_metadata")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)

    def put(kind, name, data):
        with open(os.path.join(dirs[kind], name), "wb") as f:
            f.write(data)

    f32 = struct.pack("<6f", 1, -2, 3.5, float("nan"), float("inf"), 0)
    put("npy", "f32_2x3_v1.npy", npy_bytes("<f4", [2, 3], f32))
    put("npy", "f32_2x3_v2.npy", npy_bytes("<f4", [2, 3], f32, version=2))
    put("npy", "f32_2x3_v3.npy", npy_bytes("<f4", [2, 3], f32, version=3))
    put("npy", "f64_3.npy", npy_bytes("<f8", [3], struct.pack("<3d", 1e6, -1e-300, 2)))
    put("npy", "f16_4.npy", npy_bytes("<f2", [4], struct.pack("<4H", 0x3c00, 0x7c00, 0x0001, 0xfe00)))
    put("npy", "u8_2x2x3.npy", npy_bytes("|u1", [2, 2, 3], bytes(range(12))))
    put("npy", "i8_scalar.npy", npy_bytes("<i8", [], struct.pack("<q", -7)))
    put("npy", "f32_empty.npy", npy_bytes("<f4", [0, 5], b""))
    put("npy", "f32_fortran.npy", npy_bytes("<f4", [2, 3], f32, fortran=True))
    put("npy", "f32_bigendian.npy", npy_bytes(">f4", [1], b"\x3f\x80\x00\x00"))
    put("npy", "f32_truncated.npy", npy_bytes("<f4", [4], f32[:8]))
    put_idx_corpus(os.path.join(root, "idx"))

    put("safetensors", "two_tensors.safetensors", safetensors_bytes(
        [("mean", "F32", [3], struct.pack("<3f", 1, 2, 3)), ("count", "I64", [], struct.pack("<q", 9))], {"format": "pt"}))
    put("safetensors", "bf16_u8_f16.safetensors", safetensors_bytes(
        [("b", "BF16", [2], b"\x80\x3f\x00\x40"), ("u", "U8", [3], b"\x01\x02\x03"), ("h", "F16", [1, 1], b"\x00\x3c")]))
    put("safetensors", "empty_tensor.safetensors", safetensors_bytes([("e", "F64", [0, 4], b"")]))
    put("safetensors", "unicode_meta.safetensors", safetensors_bytes(
        [("x\u00e9", "F32", [1], struct.pack("<f", 1))], {"note": "tab\t \"quote\" \u2603"}))
    put("safetensors", "unsupported_dtype.safetensors", safetensors_bytes([("i", "I32", [1], b"\x01\x00\x00\x00")]))

    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "x.npy")
        vals = [float(i % 7) - 2.5 for i in range(24)]
        vals[5] = float("nan")
        with open(data, "wb") as f:
            f.write(npy_bytes("<f4", [6, 4], struct.pack("<24f", *vals)))
        stats = os.path.join(work, "stats.safetensors")
        subprocess.run([normkit, "stats", data, "--axis", "0", "--device", "cpu", "--out", stats], check=True,
                       capture_output=True)
        put("safetensors", "stats_output.safetensors", open(stats, "rb").read())
        fits = {
            "zscore": ["--method", "zscore"],
            "zscore_keras_all": ["--method", "zscore", "--zero-variance", "keras", "--axis", "all"],
            "minmax_clip": ["--method", "minmax", "--feature-range", "-1,1", "--clip"],
            "maxabs_impute": ["--method", "maxabs", "--impute"],
            "rescale": ["--method", "rescale", "--scale", "0.5", "--offset", "-1"],
            "decimal_axis1": ["--method", "decimal", "--axis", "1"],
        }
        for name, args in fits.items():
            state = os.path.join(work, name + ".safetensors")
            subprocess.run([normkit, "fit", data, *args, "--device", "cpu", "--state", state], check=True,
                           capture_output=True)
            raw = open(state, "rb").read()
            put("normalizer_file", name + ".safetensors", raw)
            (length,) = struct.unpack("<Q", raw[:8])
            meta = json.loads(raw[8:8 + length])["__metadata__"]
            put("normalizer_metadata", name + ".json", json.dumps(meta).encode())


if __name__ == "__main__":
    main()
