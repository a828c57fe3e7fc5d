#!/usr/bin/env python3
"""Traffic check of the statistics, transform and layer kernels under ../shared/ptxemu.

For each case of build/tests/traffic_case it runs one call with PTXEMU_PROFILE_JSON and fails when the
global-load sectors of all kernels of the call x 32 bytes exceed 1.1 x the input bytes (a second read of the
input, or uncoalesced loads) or when the load coalescing efficiency is below 0.9. Layer cases also allow
their parameters once per block of the first kernel (per_block_bytes x its grid) and the other loads and
stores they declare (saved statistics, dgamma/dbeta partials); a case may declare a larger ratio
(max_load_ratio: rows the layer reads twice by design; min_efficiency: 2-byte accesses of rows at odd offsets).
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
    fields = dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)
    launches = [json.loads(line) for line in open(jsonl)]
    return fields, launches


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
            fields, launches = run_case(build, ptxemu, name, workdir)
            input_bytes = int(fields["input_bytes"])
            output_bytes = int(fields.get("output_bytes", 0))
            max_ratio = float(fields.get("max_load_ratio", MAX_LOAD_RATIO))
            min_eff = float(fields.get("min_efficiency", MIN_EFFICIENCY))
            blocks = launches[0]["grid"][0] * launches[0]["grid"][1] * launches[0]["grid"][2] if launches else 0
            allowed = input_bytes + int(fields.get("per_block_bytes", 0)) * blocks + int(fields.get("extra_load_bytes", 0))
            store_allowed = output_bytes + int(fields.get("extra_store_bytes", 0))
            sectors = sum(l["global_load"]["sectors"] for l in launches)
            unique = sum(l["global_load"]["unique_bytes"] for l in launches)
            vec16 = sum(l["global_load"]["width_hist"]["16"] * 16 for l in launches)
            requested = sum(l["global_load"]["bytes"] for l in launches)
            ratio = sectors * 32 / allowed
            efficiency = unique / (sectors * 32) if sectors else 1.0
            kernels = " + ".join(l["kernel"].split("<")[0].split("::")[-1] + f" {l['grid']}x{l['block']}" for l in launches)
            warp_instr = sum(l["warp_instructions"] for l in launches)
            dram = sum(l["dram_bytes_lower_bound"] for l in launches)
            model_us = max(dram / 3.0e12, warp_instr / (132 * 4 * 1.755e9)) * 1e6
            ok = ratio <= max_ratio and efficiency >= min_eff
            store = ""
            if output_bytes:  # the apply and the layers: one write of the output, coalesced
                store_sectors = sum(l["global_store"]["sectors"] for l in launches)
                store_unique = sum(l["global_store"]["unique_bytes"] for l in launches)
                store_ratio = store_sectors * 32 / store_allowed
                store_eff = store_unique / (store_sectors * 32) if store_sectors else 1.0
                # (a case that declares a lower efficiency also touches that many more sectors in its stores)
                ok = ok and store_ratio <= max(MAX_LOAD_RATIO, 1.0 / min_eff) and store_eff >= min_eff
                store = f"store {store_ratio:.3f} x output, eff {store_eff:.3f}"
            if not ok:
                failures.append(name)
            rows.append((name, input_bytes, ratio, efficiency, vec16 / requested if requested else 0, warp_instr, model_us,
                         "ok" if ok else "FAIL", kernels, store))
    lines = ["| case | input bytes | loaded sectors x 32 / (input + declared) | load efficiency | 16-byte share | stores (apply) | warp-instr | model H100 us | check | kernels (grid x block) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.2f} | {r[9]} | {r[5]} | {r[6]:.2f} | {r[7]} | {r[8]} |")
    table = "\n".join(lines)
    print(table)
    if markdown:
        with open(markdown, "w") as f:
            f.write(table + "\n")
    if failures:
        print(f"traffic check FAILED for: {', '.join(failures)} (limits: ratio <= {MAX_LOAD_RATIO} unless a case declares more, "
              f"efficiency >= {MIN_EFFICIENCY})")
        return 1
    print(f"traffic check passed: {len(rows)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
