#!/usr/bin/env python3
"""Charts of bench_normkit's JSON (and, when given, bench/compare_torch.py's peers) as PNG files.

One chart per (space, operation, size): axis patterns along x, one bar per dtype (or dtype pair), each
bar the case's bytes/s as a fraction of the copy measured in the same run (statistics: input bytes/s over
the copy's read + write bytes/s, i.e. of_copy / 2; apply: (input + output) bytes/s over the copy's, i.e.
of_copy), with the 85% target drawn across. PyTorch's bars, hatched, stand beside normkit's. The title
names the machine the JSON came from. Nothing here is typed in by hand.

Also writes OUT_DIR/fractions.md: the same fractions as a markdown table (the README's measured table).

Streamed statistics (bench/stream_rate.py's JSON lines, --stream): one chart per device, each case's rate as a
fraction of read() of the same file in the same run, the 80% target drawn across.

usage: plot.py BENCH.json OUT_DIR [--torch TORCH.jsonl] [--stream STREAM.jsonl[,MORE]] [--machine "NVIDIA H100 80GB HBM3"]
needs matplotlib (pip install matplotlib)
"""
import json
import os
import sys
from collections import defaultdict

TARGET = 0.85
STREAM_TARGET = 0.80  # (issue: streamed statistics at 80% of the raw read rate, page cache, host)


def bench_records(paths):
    """(name parts, record) of every benchmark with an of_copy counter in Google Benchmark JSON files (a comma
    list: bench_device.json,bench_peers.json draws gpu-check's device peers beside normkit)."""
    for b in (b for path in paths.split(",") for b in json.load(open(path)).get("benchmarks", [])):
        if "of_copy" not in b or b.get("run_type") == "aggregate":
            continue
        parts = b["name"].split("/")
        if parts[-1] in ("manual_time", "real_time"):
            parts = parts[:-1]
        yield parts, b


def bench_points(path):
    """{(space, op, size): {(pattern, dtype): fraction}} from Google Benchmark JSON."""
    points = defaultdict(dict)
    for parts, b in bench_records(path):
        space = parts[0]
        if parts[1] == "apply":
            op, pattern, dtype, size = "apply", parts[2], parts[3], parts[4]
            fraction = b["of_copy"]
        elif parts[1] == "peers":  # peers/<peer>/<pattern>/<dtype>/<size>: peers of the statistics (and cuDNN's batch norm)
            continue  # (host_peer_points)
        elif parts[1] == "image":  # image/<layouts>/<in>_<out>/<shape>/<size>: read + write, against a copy of the output
            op, pattern, dtype, size = "image", parts[2], parts[3], parts[5]
            fraction = b["of_copy"]
        elif parts[1] == "lp":  # lp/<norm>/<pattern>/<dtype>/<size>: read + write, as the apply
            op, pattern, dtype, size = "lp_" + parts[2], parts[3], parts[4], parts[5]
            fraction = b["of_copy"]
        elif len(parts) == 4:  # <pattern>/<dtype>/<size>: the statistics
            op, pattern, dtype, size = "stats", parts[1], parts[2], parts[3]
            fraction = b["of_copy"] / 2
        else:
            continue  # (the layers and fit+apply: their own tables)
        points[(space, op, size)][(pattern, dtype)] = fraction
    return points


def host_peer_points(path):
    """{(space, "stats", size): {peer: {(pattern, dtype): fraction}}} of bench_normkit's statistics peers (host: naive,
    eigen; device: two_pass, cub)."""
    points = defaultdict(lambda: defaultdict(dict))
    for parts, b in bench_records(path):
        if len(parts) == 6 and parts[1] == "peers":
            points[(parts[0], "stats", parts[5])][parts[2]][(parts[3], parts[4])] = b["of_copy"] / 2
    return points


def torch_points(path):
    """{(op, size): {(pattern, dtype): fraction}} from compare_torch.py's JSON lines."""
    points = defaultdict(dict)
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if "of_copy" not in r:
            continue
        parts = r["name"].split("/")
        if len(parts) == 6 and parts[1] == "image":  # torch/image/<layouts>/<in>_<out>/<shape>/<size>
            op, pattern, dtype, size = "image", parts[2], parts[3], parts[5]
        elif len(parts) == 5:
            _, op, pattern, dtype, size = parts
        else:
            continue  # (the layers: plotted from their own bench file)
        points[(op, size)][(pattern, dtype)] = r["of_copy"] / 2 if op == "stats" else r["of_copy"]
    return points


def chart(plt, title, normkit, peers, out_path, ylabel="bytes/s as a fraction of a copy", target=TARGET):
    """peers: {label: {(pattern, dtype): fraction}} drawn hatched beside normkit's bars."""
    patterns = list(dict.fromkeys(p for p, _ in normkit))
    dtypes = list(dict.fromkeys(d for _, d in normkit))
    labels = list(peers)
    per_group = len(dtypes) * (1 + len(labels))
    width = 0.8 / per_group
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(patterns)), 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    hatches = ["//", "..", "xx", "\\\\"]
    for j, dtype in enumerate(dtypes):
        xs = [i + (j * (1 + len(labels))) * width for i in range(len(patterns))]
        ax.bar(xs, [normkit.get((p, dtype), 0) for p in patterns], width, color=colors[j % len(colors)],
               label=f"normkit {dtype}")
        for k, label in enumerate(labels):
            ax.bar([x + (k + 1) * width for x in xs], [peers[label].get((p, dtype), 0) for p in patterns], width,
                   color=colors[j % len(colors)], alpha=0.45, hatch=hatches[k % len(hatches)], label=f"{label} {dtype}")
    ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:.0%}")
    ax.axhline(1.0, color="gray", linestyle=":", linewidth=1)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(patterns))])
    ax.set_xticklabels(patterns)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2 if labels else 1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def stream_points(paths):
    """{device: {(case, "stats, N MB pieces"): fraction of the raw read rate}} from bench/stream_rate.py's JSON lines,
    and {device: file MB}."""
    points, sizes = {}, {}
    for path in paths.split(","):
        with open(path) as f:
            for line in f:
                if line.strip().startswith("{"):
                    r = json.loads(line)
                    label = f"stats, {r['chunk_bytes'] >> 20} MB pieces"
                    points.setdefault(r["device"], {})[(r["case"].replace("stream/", ""), label)] = r["fraction_of_read"]
                    sizes[r["device"]] = round(r["bytes"] / 2**20)
    return points, sizes


def markdown(points, peers):
    """One row per (space, operation, size, pattern); one column per dtype: normkit (PyTorch) fractions."""
    lines = []
    for (space, op, size), normkit in sorted(points.items()):
        dtypes = list(dict.fromkeys(d for _, d in normkit))
        peer = peers.get((op, size), {}) if space == "device" else {}
        lines += ["", f"| {space} {op} {size} | " + " | ".join(dtypes) + " |", "|---" * (len(dtypes) + 1) + "|"]
        for pattern in dict.fromkeys(p for p, _ in normkit):
            cells = []
            for d in dtypes:
                cell = f"{normkit[(pattern, d)]:.2f}" if (pattern, d) in normkit else "-"
                if (pattern, d) in peer:
                    cell += f" ({peer[(pattern, d)]:.2f})"
                cells.append(cell)
            lines.append(f"| {pattern} | " + " | ".join(cells) + " |")
    return "\n".join(lines[1:]) + "\n"


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    bench, out_dir = argv[1], argv[2]
    peers = torch_points(argv[argv.index("--torch") + 1]) if "--torch" in argv else {}
    machine = argv[argv.index("--machine") + 1] if "--machine" in argv else ""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    host_peers = host_peer_points(bench)
    for (space, op, size), normkit in sorted(bench_points(bench).items()):
        peer = {"PyTorch": peers[(op, size)]} if space == "device" and (op, size) in peers else {}
        names = {"naive": "naive two-pass", "eigen": "Eigen", "two_pass": "two-pass kernels", "cub": "CUB"}
        peer.update({names.get(label, label): points
                     for label, points in host_peers.get((space, op, size), {}).items()})
        what = {"stats": "statistics (mean, var)", "apply": "apply (z-score)", "image": "image normalize (256 x 224 x 224 x 3 when large)"}.get(
            op, op.replace("_", " "))
        title = f"{space} {what}, {size} inputs" + (f" - {machine}" if machine else "") + " (measured)"
        path = os.path.join(out_dir, f"{space}_{op}_{size}.png")
        chart(plt, title, normkit, peer, path)
        written.append(path)
    streams, sizes = stream_points(argv[argv.index("--stream") + 1]) if "--stream" in argv else ({}, {})
    for device, points in sorted(streams.items()):
        title = f"streamed statistics ({device}), {sizes[device]} MB .npy files" + (f" - {machine}" if machine else "") + " (measured)"
        path = os.path.join(out_dir, f"stream_{device}.png")
        chart(plt, title, points, {}, path, ylabel="bytes/s as a fraction of read() of the file", target=STREAM_TARGET)
        written.append(path)
    table = os.path.join(out_dir, "fractions.md")
    with open(table + ".tmp", "w") as f:
        f.write(markdown(bench_points(bench), peers))
    os.replace(table + ".tmp", table)
    for path in written + [table]:
        print(path)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
