#!/usr/bin/env python3
"""Modelled speed of every device call on an H200, from bench-sized runs under ../shared/ptxemu.

Each case runs one library call (build/tests/traffic_case --spec ...) with PTXEMU_PROFILE_JSON,
PTXEMU_PROFILE_COPIES=1 (copies and memsets inside the call cost time too) and the PTX dumped; roofline.py
models it (`model_file(..., gpu="h200", latency_ns=800, launch_us=1.0)`: loads counted in program order,
1 us per launch after the first, registers from ptxas on the sm_90 PTX). The staging copies of the
runner (input and coefficients, host to device) are left out (host_copies=False); the call itself makes
none. A call's modelled fraction = its minimum bytes / H200 bandwidth / the modelled time, with minimum
bytes: statistics = input + outputs; apply and Lp (rows <= 1024) = input + output + parameters once;
LayerNorm/RMSNorm forward = x + y + parameters once + saved statistics; backward = x + dy + dx + saved
statistics; BatchNorm training forward = 2x + y, inference = x + y, backward = 2 (x + dy) + dx (each plus the
per-channel arrays); GroupNorm as BatchNorm's training (plus the per-group arrays).
THIS IS A MODEL, NOT A MEASUREMENT.

Floors (scripts/model_floors.json, committed): the check fails when a case drops below its floor, and a
gated case that has reached the 85% target must stay there. Floors only rise (--update-floors raises
them to this run's values, never lowers one). Fit-then-apply, Lp over rows > 1024 and the full run's
"unseen" shapes (off the matrix's grid) are reported, not gated, and have no floors.

usage: check_model.py BUILD_DIR PTXEMU_DIR [--full] [--only SUBSTRING] [--skip SUBSTRING] [--markdown OUT.md]
                      [--update-floors] [--json OUT.json] [--case KIND,DTYPE,SHAPE,AXES,EXTRA ...]
  default: the CI subset (one case per kernel family x dtype class, 32 MB inputs)
  --full:  the whole matrix (64 MB inputs), run before every stop; its table goes to docs/kernels.md
  --case:  (repeatable) model these calls instead, e.g. stats,float16,8192x100,0,all or
           stats,uint8,64x32x32x3,0;1;2,all (axes separated by ';'; reported against the 85% target, no floors)
Columns of the table: registers, resident warps per SM (W), load bytes in flight per SM and issue cycles
per element of the kernel that reads the input; the bound of the slowest kernel; the call's modelled
fraction; every launch with its modelled time and bound.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

TARGET = 0.85
LATENCY_NS = 800
LAUNCH_US = 1.0
TOLERANCE = 0.002  # the model is deterministic; this only absorbs rounding of the committed floors
HERE = os.path.dirname(os.path.abspath(__file__))
FLOORS = os.path.join(HERE, "model_floors.json")
ELEM = {"float32": 4, "float16": 2, "bfloat16": 2, "uint8": 1, "float64": 8}
SHORT = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "uint8": "u8", "float64": "f64"}


def stats_shape(pattern, param, elems):
    """Shape and reduced axes of a statistics pattern with about `elems` elements."""
    if pattern == "per_feature":
        return [elems // param, param], "0"
    if pattern == "per_sample":
        return [elems // param, param], "1"
    if pattern == "global":
        return [elems], "all"
    if pattern == "nchw":  # per-channel, C = param, 64 x 64 images
        return [max(1, elems // (param * 4096)), param, 64, 64], "0,2,3"
    if pattern == "nhwc":
        return [max(1, elems // (param * 4096)), 64, 64, param], "0,1,2"
    if pattern == "generic":  # axes 0 and 2 of [N, 8, 64, 256]
        return [max(1, elems // (8 * 64 * 256)), 8, 64, 256], "0,2"
    raise ValueError(pattern)


def cases(full):
    mb = 64 if full else 32
    out = []

    def add(name, kind, dtype, shape, axes, extra, gated=True):
        out.append({"name": name, "kind": kind, "dtype": dtype, "shape": shape, "axes": axes, "extra": extra,
                    "gated": gated})

    if full:
        patterns = [("per_feature", 64), ("per_feature", 1024), ("per_feature", 4096), ("per_sample", 16),
                    ("per_sample", 1024), ("per_sample", 65536), ("global", 0), ("nchw", 3), ("nchw", 64),
                    ("nhwc", 3), ("nhwc", 64), ("generic", 0)]
        dtypes = ["float32", "float16", "bfloat16", "uint8"]
        sets = ["all", "moments"]
    else:
        patterns = [("per_feature", 64), ("per_sample", 16), ("per_sample", 1024), ("global", 0), ("nchw", 64),
                    ("nhwc", 3), ("generic", 0)]
        dtypes = ["float32", "float16", "uint8"]
        sets = ["all"]
    for pattern, param in patterns:
        for dtype in dtypes:
            if not full and pattern == "generic" and dtype != "float32":
                continue
            for which in sets:
                elems = mb * 2**20 // ELEM[dtype]
                shape, axes = stats_shape(pattern, param, elems)
                label = pattern + (str(param) if param else "")
                add(f"stats/{label}/{SHORT[dtype]}/{'x'.join(map(str, shape))}/{which}", "stats", dtype, shape, axes,
                    which)
    # float64 accumulation for one pattern.
    elems = mb * 2**20 // 4
    shape, axes = stats_shape("per_feature", 64, elems)
    add(f"stats/per_feature64/f32/{'x'.join(map(str, shape))}/float64", "stats", "float32", shape, axes, "float64")
    if not full:
        # The moments-only kernels (a request without min, max, l0, l1, linf): columns and segments, 4 dtypes.
        add(f"stats/per_feature64/f32/{'x'.join(map(str, shape))}/moments", "stats", "float32", shape, axes, "moments")
        for pattern, param, dtype in [("per_feature", 64, "float16"), ("per_sample", 1024, "bfloat16"),
                                      ("global", 0, "uint8")]:
            shape_m, axes_m = stats_shape(pattern, param, mb * 2**20 // ELEM[dtype])
            label = pattern + (str(param) if param else "")
            add(f"stats/{label}/{SHORT[dtype]}/{'x'.join(map(str, shape_m))}/moments", "stats", dtype, shape_m, axes_m,
                "moments")
    # Every apply walk, with the 8-bit inputs that make it write-bound.
    applies = [("rows", "float32", "float32", "per_sample", 1024), ("rows", "float16", "float16", "per_sample", 1024),
               ("columns", "float32", "float32", "per_feature", 256), ("columns", "uint8", "float32", "nhwc", 3),
               ("rows", "uint8", "float16", "nchw", 3), ("generic", "float32", "float32", "generic", 0),
               ("rows", "float32", "float32", "per_sample", 16)]
    if full:
        applies += [("columns", "uint8", "float16", "nhwc", 3), ("rows", "bfloat16", "float32", "global", 0),
                    ("rows", "float16", "float16", "per_sample", 64), ("rows", "uint8", "float16", "per_sample", 16),
                    ("rows", "float32", "float32", "per_sample", 12)]
    for walk, din, dout, pattern, param in applies:
        elems = mb * 2**20 // ELEM[din]
        shape, axes = stats_shape(pattern, param, elems)
        add(f"apply/{walk}/{SHORT[din]}-{SHORT[dout]}/{'x'.join(map(str, shape))}", "apply", din, shape, axes, dout)
    # Shapes off the matrix's grid (odd widths, rows between its lengths, other channel counts): reported,
    # to watch how the plans generalise (the "unseen shapes").
    if full:
        for dtype, shape, axes in [("float32", [130000, 129], "0"), ("float16", [258111, 130], "0"),
                                   ("float32", [55924, 300], "0"), ("uint8", [520000, 129], "0"),
                                   ("float16", [11184, 3000], "1"), ("bfloat16", [4096, 8192], "1"),
                                   ("uint8", [67108, 1000], "1"), ("float32", [1024, 16384], "1"),
                                   ("float32", [585, 7, 64, 64], "0,2,3"), ("float32", [819, 64, 64, 5], "0,1,2")]:
            add(f"unseen/{SHORT[dtype]}/{'x'.join(map(str, shape))}/axes{axes.replace(',', '')}/all", "stats", dtype,
                shape, axes, "all", gated=False)
    # Layers (LayerNorm / RMSNorm over the last axis, float32 parameters unless named): forward = x + y +
    # parameters once + the saved statistics; backward = x + dy + dx + the saved statistics. Rows past the
    # one-read limits (forward 16384, backward 8192) are read twice: reported, not gated.
    if full:
        layers = [(kind, direction, dtype, hidden, "float32")
                  for direction, hiddens in (("forward", (768, 4096, 16384)), ("backward", (768, 4096)))
                  for dtype in ("float32", "float16", "bfloat16") for hidden in hiddens for kind in ("layer_norm",)]
        layers += [("rms_norm", direction, "bfloat16", hidden, "bfloat16") for direction in ("forward", "backward")
                   for hidden in (768, 4096)]
        layers += [("layer_norm", "forward", "bfloat16", 32768, "float32"), ("layer_norm", "backward", "bfloat16", 16384, "float32")]
        # The fused residual add (pre-norm block): forward x + residual + h + y, backward x + dy + residual_grad + dx.
        layers += [(kind, direction, "bfloat16", hidden, param) for kind, param in (("rms_norm", "bfloat16"), ("layer_norm", "float32"))
                   for direction in ("forward_residual", "backward_residual") for hidden in (768, 4096)]
    else:
        layers = [("layer_norm", "forward", "bfloat16", 768, "float32"), ("layer_norm", "forward", "float32", 4096, "float32"),
                  ("rms_norm", "forward", "float16", 16384, "float16"), ("layer_norm", "backward", "bfloat16", 768, "float32"),
                  ("rms_norm", "backward", "float32", 4096, "float32"), ("rms_norm", "forward_residual", "bfloat16", 4096, "bfloat16")]
    for kind, direction, dtype, hidden, param in layers:
        rows = mb * 2**20 // (ELEM[dtype] * hidden)
        gated = hidden <= (16384 if direction.startswith("forward") else 8192)
        add(f"{kind}/{direction}/{SHORT[dtype]}-{SHORT[param]}/{rows}x{hidden}", f"{kind}_{direction}", dtype, [rows, hidden], "-1",
            param, gated=gated)
    # BatchNorm on ResNet-50 activation shapes (float32 parameters): training forward = 2x + y (statistics, then
    # the apply), inference = x + y, backward = 2 (x + dy) + dx, each plus the per-channel arrays.
    if full:
        batch_norms = [(call, dtype, layout, c, hw) for call in ("training", "inference", "backward")
                       for dtype in ("float32", "bfloat16") for layout in ("nchw", "nhwc") for c, hw in ((256, 56),)]
        batch_norms += [(call, "bfloat16", layout, c, hw) for call in ("training", "backward") for layout in ("nchw", "nhwc")
                        for c, hw in ((64, 112), (2048, 7))]
    else:
        batch_norms = [("training", "bfloat16", "nchw", 256, 56), ("inference", "float16", "nhwc", 256, 56),
                       ("backward", "bfloat16", "nhwc", 256, 56)]
    for call, dtype, layout, c, hw in batch_norms:
        n = max(1, mb * 2**20 // (ELEM[dtype] * c * hw * hw))
        shape = [n, c, hw, hw] if layout == "nchw" else [n, hw, hw, c]
        add(f"batch_norm/{call}/{layout}/{SHORT[dtype]}/{'x'.join(map(str, shape))}", f"batch_norm_{call}", dtype, shape,
            "1" if layout == "nchw" else "-1", "float32")
    # GroupNorm on diffusion U-Net shapes (32 groups, float32 parameters): forward = 2x + y (statistics, then
    # the apply), backward = 2 (x + dy) + dx, each plus the per-channel and per-group arrays.
    if full:
        group_norms = [(call, dtype, layout, c, hw) for call in ("forward", "backward") for dtype in ("float32", "bfloat16")
                       for layout in ("nchw", "nhwc") for c, hw in ((320, 64),)]
        group_norms += [(call, "float16", layout, c, hw) for call in ("forward", "backward") for layout in ("nchw", "nhwc")
                        for c, hw in ((640, 32), (1280, 16))]
    else:
        group_norms = [("forward", "bfloat16", "nchw", 320, 64), ("backward", "float16", "nhwc", 320, 64)]
    for call, dtype, layout, c, hw in group_norms:
        n = max(1, mb * 2**20 // (ELEM[dtype] * c * hw * hw))
        shape = [n, c, hw, hw] if layout == "nchw" else [n, hw, hw, c]
        add(f"group_norm/{call}/{layout}/{SHORT[dtype]}/{'x'.join(map(str, shape))}", f"group_norm_{call}", dtype, shape,
            "1" if layout == "nchw" else "-1", "32")
    # Image normalize (uint8 ImageNet-sized images, the layout change fused): minimum bytes = input + output.
    # The CI subset takes 64 images (a block walks ~1.6 tiles: its set-up weighs more than on the issue's
    # 256-image batch, which the full run models).
    images = [("uint8", "nhwc-nchw", "float32"), ("uint8", "nhwc-nchw", "float16")]
    if full:
        images += [("uint8", "nhwc-nhwc", "float16"), ("uint8", "nhwc-nchw+crop+mirror", "float32"),
                   ("float16", "nhwc-nchw", "float32"), ("float32", "nchw-nhwc", "bfloat16"), ("uint8", "nchw-nchw", "float16")]
    for din, layouts, dout in images:
        n = 256 if full else 64
        if ELEM[din] > 1:
            n //= ELEM[din]
        shape = [n, 3, 224, 224] if layouts.startswith("nchw") else [n, 224, 224, 3]
        add(f"image/{layouts}/{SHORT[din]}-{SHORT[dout]}/{'x'.join(map(str, shape))}", "image", din, shape, layouts, dout)
    # Lp: one read for rows <= 1024 (gated), two reads beyond (reported).
    for length in ([512, 4096, 16] if full else [512]):
        elems = mb * 2**20 // 4
        shape = [elems // length, length]
        add(f"lp/l2/f32/{'x'.join(map(str, shape))}", "lp", "float32", shape, "-1", "float32", gated=length <= 1024)
    return out


def short_name(name):
    """'void normkit::kernels::merge_partials_kernel<float, float>(...)' -> 'merge_partials_kernel'."""
    return name.replace("void ", "").split("(")[0].split("<")[0].split("::")[-1]


def run(cmd, env=None):
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def resources(roofline, ptx_dir, cache_path):
    """Register counts from ptxas on the sm_90 PTX, cached by the PTX's hash (ptxas is slow)."""
    sm90 = sorted(f for f in os.listdir(ptx_dir) if f.endswith("_sm90.ptx"))
    if not sm90:
        raise SystemExit("check_model: the emulator dumped no sm_90 PTX (build with CUDA architecture 90)")
    digest = hashlib.sha256()
    for f in sm90:
        digest.update(open(os.path.join(ptx_dir, f), "rb").read())
    key = digest.hexdigest()
    if os.path.exists(cache_path):
        cached = json.load(open(cache_path))
        if cached.get("key") == key:
            return {}, cached["ptxas"]
    only90 = tempfile.mkdtemp()
    for f in sm90:
        os.symlink(os.path.join(ptx_dir, f), os.path.join(only90, f))
    sass, ptxas_res = roofline.read_resources(ptx_dirs=[only90])[:2]
    json.dump({"key": key, "ptxas": ptxas_res}, open(cache_path, "w"))
    return sass, ptxas_res


def main():
    argv = sys.argv[1:]
    if len(argv) < 2:
        print(__doc__)
        return 2
    build, ptxemu = argv[0], argv[1]
    full = "--full" in argv
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    skip = argv[argv.index("--skip") + 1] if "--skip" in argv else None
    markdown = argv[argv.index("--markdown") + 1] if "--markdown" in argv else None
    json_out = argv[argv.index("--json") + 1] if "--json" in argv else None
    update = "--update-floors" in argv
    sys.path.insert(0, ptxemu)
    import roofline  # noqa: E402

    runner = [os.path.join(ptxemu, "run.sh"), os.path.join(build, "tests", "traffic_case")]
    adhoc = [argv[i + 1] for i, a in enumerate(argv) if a == "--case"]
    if adhoc:
        selected = []
        for text in adhoc:
            kind, dtype, shape, axes, extra = text.split(",", 4)
            selected.append({"name": f"adhoc/{kind}/{dtype}/{shape}/{axes}/{extra}", "kind": kind, "dtype": dtype,
                             "shape": [int(e) for e in shape.split("x")], "axes": axes.replace(";", ","),
                             "extra": extra, "gated": False})
        update = False
    else:
        selected = [c for c in cases(full) if (only is None or only in c["name"]) and (skip is None or skip not in c["name"])]
    if not selected:
        print("check_model FAILED: no case selected")
        return 1
    floors = json.load(open(FLOORS)) if os.path.exists(FLOORS) else {}
    rows, failures, results = [], [], {}
    with tempfile.TemporaryDirectory() as work:
        ptx_dir = os.path.join(work, "ptx")
        os.makedirs(ptx_dir)
        dump = run(runner + ["--spec", "stats", "float32", "64", "all"], dict(os.environ, PTXEMU_DUMP_PTX=ptx_dir))
        if dump.returncode != 0:
            raise SystemExit("check_model: traffic_case failed:\n" + dump.stdout + dump.stderr)
        res = resources(roofline, ptx_dir, os.path.join(build, "model_resources.json"))
        for c in selected:
            jsonl = os.path.join(work, "call.jsonl")
            if os.path.exists(jsonl):
                os.remove(jsonl)
            env = dict(os.environ, PTXEMU_PROFILE_JSON=jsonl, PTXEMU_PROFILE_COPIES="1")
            spec = ["--spec", c["kind"], c["dtype"], "x".join(map(str, c["shape"])), c["axes"], c["extra"]]
            out = run(runner + spec, env)
            if out.returncode != 0:
                print(f"{c['name']}: the call FAILED:\n{out.stdout}\n{out.stderr}", flush=True)
                failures.append(c["name"])
                continue
            fields = dict(kv.split("=") for kv in out.stdout.split()[1:])
            min_bytes = sum(int(fields.get(k, 0)) for k in ("input_bytes", "statistics_bytes", "output_bytes",
                                                            "parameter_bytes"))
            r = roofline.model_file(jsonl, gpu="h200", latency_ns=LATENCY_NS, launch_us=LAUNCH_US, resources=res,
                                    min_bytes_total=min_bytes, host_copies=False)
            fraction = r["total"]["modelled_fraction"]
            kernels = [op for op in r["ops"] if op["kind"] == "kernel"]
            main_op = max(kernels, key=lambda op: op["dram"]) if kernels else None  # the one reading the input
            slowest = max(kernels, key=lambda op: op["t"]) if kernels else None
            others = [op for op in r["ops"] if op["gpu_op"] and op.get("direction") not in ("h2d", "d2h")]
            launches = " + ".join(f"{short_name(op['name'])} {op['t'] * 1e6:.1f}us {op['bound']}" for op in others)
            floor = floors.get(c["name"], 0.0)
            ok = not c["gated"] or fraction + TOLERANCE >= floor
            if c["gated"] and floor >= TARGET and fraction < TARGET:
                ok = False
            if not ok:
                failures.append(c["name"])
            results[c["name"]] = round(fraction, 4)
            elems = 1
            for e in c["shape"]:
                elems *= e
            per_sm_kb = (main_op["W"] * (main_op["ld_bytes"] / main_op["rt"]) / 1024) if main_op and main_op["rt"] else 0.0
            rows.append((c["name"], main_op["regs"] if main_op else "-", main_op["W"] if main_op else "-", per_sm_kb,
                         (main_op["issue_cycles"] / elems) if main_op else 0.0,
                         f"{slowest['bound']} ({short_name(slowest['name'])})" if slowest else "-",
                         fraction, r["total"]["t"] * 1e6, floor, "gated" if c["gated"] else "reported",
                         "ok" if ok else "FAIL", launches))
            print(f"{c['name']}: {fraction * 100:.1f}% modelled ({r['total']['t'] * 1e6:.1f} us; floor "
                  f"{floor * 100:.1f}%) {'ok' if ok else 'FAIL'}", flush=True)
    lines = ["| case | regs | W | KB in flight / SM | issue cycles / elem | bound (slowest kernel) | modelled % of H200 | model us | floor % | gate | check | launches (modelled us, bound) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.3f} | {r[5]} | {r[6] * 100:.1f} | {r[7]:.1f} | "
                     f"{r[8] * 100:.1f} | {r[9]} | {r[10]} | {r[11]} |")
    table = "\n".join(lines)
    print(table)
    if markdown:
        with open(markdown, "w") as f:
            f.write(table + "\n")
    if json_out:
        json.dump(results, open(json_out, "w"), indent=1, sort_keys=True)
    if update:
        for name, value in results.items():
            if name.startswith("unseen/"):
                continue  # (reported only)
            floors[name] = max(floors.get(name, 0.0), int(value * 1000) / 1000)  # floors only rise
        with open(FLOORS, "w") as f:
            json.dump(floors, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"floors updated in {FLOORS}")
    gated = [r for r in rows if r[9] == "gated"]
    at_target = sum(1 for r in gated if r[6] >= TARGET)
    print(f"model check: {len(rows)} cases, {at_target} of {len(gated)} gated cases at >= {TARGET * 100:.0f}% "
          f"(modelled, H200, L = {LATENCY_NS} ns, {LAUNCH_US} us per launch)")
    if failures:
        print("model check FAILED (below floor, or fell back under the target): " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
