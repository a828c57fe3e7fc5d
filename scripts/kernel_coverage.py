#!/usr/bin/env python3
"""Every kernel in the binary runs: executes the device tests under ../shared/ptxemu with the traffic
profile on and the PTX dumped, lists every normkit `.entry` of the PTX, and fails if one was never
launched. Writes a markdown table (kernel instantiation, launches, grid x block shapes seen).

usage: kernel_coverage.py BUILD_DIR PTXEMU_DIR [--markdown OUT.md]
"""
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile



def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    build, ptxemu = sys.argv[1], sys.argv[2]
    markdown = sys.argv[sys.argv.index("--markdown") + 1] if "--markdown" in sys.argv else None
    # Every device test binary (a new family's is picked up without a list to edit).
    tests = sorted(os.path.basename(p) for p in glob.glob(os.path.join(build, "tests", "test_device_*")) if os.access(p, os.X_OK))
    if not tests:
        print("kernel coverage FAILED: no test_device_* binary in " + os.path.join(build, "tests"))
        return 1
    with tempfile.TemporaryDirectory() as work:
        jsonl = os.path.join(work, "profile.jsonl")
        for test in tests:
            # (one PTX folder per test: the emulator names its dumps module0, module1, ... in every run)
            ptx_dir = os.path.join(work, "ptx", test)
            os.makedirs(ptx_dir)
            env = dict(os.environ, PTXEMU_PROFILE_JSON=jsonl, PTXEMU_DUMP_PTX=ptx_dir, NORMKIT_REQUIRE_DEVICE="1")
            run = subprocess.run([os.path.join(ptxemu, "run.sh"), os.path.join(build, "tests", test), "--gtest_brief=1"],
                                 env=env, capture_output=True, text=True)
            if run.returncode != 0:
                print(run.stdout[-4000:], run.stderr[-4000:])
                return 1
        entries = set()
        for path in glob.glob(os.path.join(work, "ptx", "*", "*.ptx")):
            entries.update(m for m in re.findall(r"\.entry\s+(\w+)\s*\(", open(path).read()) if "normkit" in m)
        launches = collections.Counter()
        shapes = collections.defaultdict(set)
        for line in open(jsonl):
            launch = json.loads(line)
            launches[launch["mangled"]] += 1
            shapes[launch["mangled"]].add(f"{tuple(launch['grid'])}x{tuple(launch['block'])}")
    if not entries:
        print("kernel coverage FAILED: the dumped PTX holds no normkit kernel")
        return 1
    names = demangle(sorted(entries))
    lines = ["| kernel instantiation | launches in the device tests | distinct grid x block shapes |", "|---|---|---|"]
    missing = []
    for mangled in sorted(entries, key=lambda m: names[m]):
        short = re.sub(r"\(.*\)$", "", names[mangled].replace("void normkit::kernels::", ""))
        lines.append(f"| `{short}` | {launches[mangled]} | {len(shapes[mangled])} |")
        if launches[mangled] == 0:
            missing.append(short)
    table = "\n".join(lines)
    print(table)
    if markdown:
        with open(markdown, "w") as f:
            f.write(table + "\n")
    print(f"{len(entries)} kernel instantiations, {len(entries) - len(missing)} launched by the device tests")
    if missing:
        print("never launched:\n  " + "\n  ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
