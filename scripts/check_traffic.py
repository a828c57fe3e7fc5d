#!/usr/bin/env python3
"""Traffic check of the statistics kernels under ../shared/ptxemu.

For each case of build/tests/traffic_case it runs one statistics call with PTXEMU_PROFILE_JSON and
fails when the global-load sectors of all kernels of the call x 32 bytes exceed 1.1 x the input bytes
(a second read of the input, or uncoalesced loads) or when the load coalescing efficiency is below 0.9.
Prints a markdown table, with roofline.py's modelled H100 time (a model, not a measurement).

usage: check_traffic.py BUILD_DIR PTXEMU_DIR [--markdown OUT.md]
"""
import json
import os
import subprocess
import sys
import tempfile

MAX_LOAD_RATIO = 1.1
MIN_EFFICIENCY = 0.9


def run_case(build, ptxemu, name, workdir):
    jsonl = os.path.join(workdir, name + ".jsonl")
    env = dict(os.environ, PTXEMU_PROFILE_JSON=jsonl)
    out = subprocess.run([os.path.join(ptxemu, "run.sh"), os.path.join(build, "tests", "traffic_case"), name],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"traffic_case {name} failed:\n{out.stdout}\n{out.stderr}")
    input_bytes = int(out.stdout.split("input_bytes=")[1].split()[0])
    output_bytes = int(out.stdout.split("output_bytes=")[1].split()[0]) if "output_bytes=" in out.stdout else 0
    launches = [json.loads(line) for line in open(jsonl)]
    return input_bytes, output_bytes, launches


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    build, ptxemu = sys.argv[1], sys.argv[2]
    markdown = sys.argv[sys.argv.index("--markdown") + 1] if "--markdown" in sys.argv else None
    names = subprocess.run([os.path.join(ptxemu, "run.sh"), os.path.join(build, "tests", "traffic_case"), "--list"],
                           capture_output=True, text=True, check=True).stdout.split()
    if not names:
        print("traffic check FAILED: traffic_case --list named no case")
        return 1
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for name in names:
            input_bytes, output_bytes, launches = run_case(build, ptxemu, name, workdir)
            sectors = sum(l["global_load"]["sectors"] for l in launches)
            unique = sum(l["global_load"]["unique_bytes"] for l in launches)
            vec16 = sum(l["global_load"]["width_hist"]["16"] * 16 for l in launches)
            requested = sum(l["global_load"]["bytes"] for l in launches)
            ratio = sectors * 32 / input_bytes
            efficiency = unique / (sectors * 32) if sectors else 1.0
            kernels = " + ".join(l["kernel"].split("<")[0].split("::")[-1] + f" {l['grid']}x{l['block']}" for l in launches)
            warp_instr = sum(l["warp_instructions"] for l in launches)
            dram = sum(l["dram_bytes_lower_bound"] for l in launches)
            model_us = max(dram / 3.0e12, warp_instr / (132 * 4 * 1.755e9)) * 1e6
            ok = ratio <= MAX_LOAD_RATIO and efficiency >= MIN_EFFICIENCY
            store = ""
            if output_bytes:  # the apply: one write of the output, coalesced
                store_sectors = sum(l["global_store"]["sectors"] for l in launches)
                store_unique = sum(l["global_store"]["unique_bytes"] for l in launches)
                store_ratio = store_sectors * 32 / output_bytes
                store_eff = store_unique / (store_sectors * 32) if store_sectors else 1.0
                ok = ok and store_ratio <= MAX_LOAD_RATIO and store_eff >= MIN_EFFICIENCY
                store = f"store {store_ratio:.3f} x output, eff {store_eff:.3f}"
            if not ok:
                failures.append(name)
            rows.append((name, input_bytes, ratio, efficiency, vec16 / requested if requested else 0, warp_instr, model_us,
                         "ok" if ok else "FAIL", kernels, store))
    lines = ["| case | input bytes | loaded sectors x 32 / input | load efficiency | 16-byte share | stores (apply) | warp-instr | model H100 us | check | kernels (grid x block) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.2f} | {r[9]} | {r[5]} | {r[6]:.2f} | {r[7]} | {r[8]} |")
    table = "\n".join(lines)
    print(table)
    if markdown:
        with open(markdown, "w") as f:
            f.write(table + "\n")
    if failures:
        print(f"traffic check FAILED for: {', '.join(failures)} (limits: ratio <= {MAX_LOAD_RATIO}, efficiency >= {MIN_EFFICIENCY})")
        return 1
    print(f"traffic check passed: {len(rows)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
