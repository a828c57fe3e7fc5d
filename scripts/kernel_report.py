#!/usr/bin/env python3
"""Kernel report: per kernel and per default architecture (sm_80, sm_90), its registers, shared and local memory
(ptxas on the PTX the build embeds, dumped under ../shared/ptxemu), whether its loads from global memory use
16-byte accesses (a v4 of 32-bit or v2 of 64-bit global or generic load, or a 16-byte cp.async), and the model's verdict where the model table of
docs/kernels.md (scripts/check_model.py --full --markdown) has a call launching it: the binding term and the
modelled share of H200 bandwidth of those calls (a model, not a measurement). Fails (exit 1) when a kernel uses
local memory (spills included) on either architecture.

usage: kernel_report.py BUILD_DIR PTXEMU_DIR [--model-table docs/kernels.md]
"""
import os
import re
import subprocess
import sys
import tempfile


def short(name):
    """'_ZN7normkit7kernels22image_normalize_kernelI...' -> 'image_normalize_kernel<...>' (the demangled name's tail)."""
    try:
        text = subprocess.run(["c++filt", name], capture_output=True, text=True).stdout.strip()
    except OSError:
        text = name
    text = text.replace("normkit::kernels::", "").replace("normkit::math::", "").replace("normkit::", "")
    return text.split("(")[0].replace("void ", "", 1)


def vector_loads(ptx_text):
    """{mangled kernel: True when its body holds a 16-byte global load or a 16-byte cp.async}."""
    out = {}
    for m in re.finditer(r"\.entry\s+(\S+?)\s*\(", ptx_text):
        name = m.group(1)
        end = ptx_text.find(".entry", m.end())  # (to the next kernel: inner { } scopes start lines too)
        body = ptx_text[m.end():end if end >= 0 else len(ptx_text)]
        # (global or generic loads: nvcc emits generic ld where it cannot prove the state space)
        load = r"\bld(?:\.(?!shared|param|local|const)[\w:]+)*"
        out[name] = bool(re.search(load + r"\.v4\.[bufs]32|" + load + r"\.v2\.[bufs]64|cp\.async\.cg\.shared\.global[^;]*,\s*16", body))
    return out


def model_verdicts(table_path):
    """{kernel short name: [(case, bound, modelled %)]} from the model table's rows."""
    verdicts = {}
    if not table_path or not os.path.exists(table_path):
        return verdicts
    for line in open(table_path):
        if not line.startswith("| ") or "modelled % of H200" in line or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 12:
            continue
        case, fraction, launches = cells[0], cells[6], cells[11]
        for launch in launches.split(" + "):
            parts = launch.split()
            if len(parts) >= 3:
                verdicts.setdefault(parts[0], []).append((case, parts[-1], fraction))
    return verdicts


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    build, ptxemu = argv[1], argv[2]
    table = argv[argv.index("--model-table") + 1] if "--model-table" in argv else os.path.join(os.path.dirname(__file__), "..", "docs", "kernels.md")
    sys.path.insert(0, ptxemu)
    import roofline  # noqa: E402
    with tempfile.TemporaryDirectory() as work:
        dump = os.path.join(work, "ptx")
        os.makedirs(dump)
        run = subprocess.run([os.path.join(ptxemu, "run.sh"), os.path.join(build, "tests", "traffic_case"), "--spec", "stats", "float32", "64", "all"],
                             env=dict(os.environ, PTXEMU_DUMP_PTX=dump), capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit("kernel_report: traffic_case failed:\n" + run.stdout + run.stderr)
        resources, vectors = {}, {}
        for arch in ("80", "90"):
            files = sorted(f for f in os.listdir(dump) if f.endswith(f"_sm{arch}.ptx"))
            only = os.path.join(work, "sm" + arch)
            os.makedirs(only)
            for f in files:
                os.symlink(os.path.join(dump, f), os.path.join(only, f))
                vectors.update(vector_loads(open(os.path.join(dump, f)).read()))
            tool = roofline.find_tool("ptxas", None, "PTXAS")
            if not tool:
                raise SystemExit("kernel_report: ptxas not found (the CUDA toolkit's bin, or PTXAS=path)")
            resources[arch] = roofline.read_ptxas(only, tool, arch="sm_" + arch)
    verdicts = model_verdicts(table)
    names = sorted(set(resources["80"]) | set(resources["90"]), key=short)
    failures = []
    print("| kernel | sm_80 regs / static shared / local | sm_90 regs / static shared / local | 16-byte loads | model (calls launching any "
          "instantiation: bounds, modelled % of H200) |")
    print("|---|---|---|---|---|")
    for name in names:
        cells = []
        for arch in ("80", "90"):
            r = resources[arch].get(name)
            if r is None:
                cells.append("-")
                continue
            cells.append(f"{r.get('regs', '?')} / {r.get('shared', '?')} / {r.get('local', '?')}")
            if r.get("local", 0):
                failures.append(f"{short(name)} sm_{arch}: {r['local']} bytes of local memory")
        base = short(name).split("<")[0]
        model = verdicts.get(base, [])
        summary = "; ".join(sorted({f"{bound} {fraction}%" for _, bound, fraction in model})[:4]) if model else "-"
        if model:
            summary = f"{len(model)} calls: " + summary
        print(f"| `{short(name)}` | {cells[0]} | {cells[1]} | {'yes' if vectors.get(name) else 'no'} | {summary} |")
    if failures:
        print("kernel report FAILED: local memory (spills) in " + "; ".join(failures))
        return 1
    print(f"kernel report: {len(names)} kernels, no local memory on sm_80 or sm_90")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
