#!/usr/bin/env python3
"""PyTorch peers of the device bench cases, on the same large shapes (bench/bench_common.hpp patterns):

  torch/stats/<pattern>/<dtype>/large   torch.var_mean(x, dim=axes, correction=0)  (uint8: of x.float())
  torch/apply/<pattern>/<in>_to_<out>/large   (x.to(out) - mean) * rstd, mean and rstd broadcast
  torch/lp_l2/<pattern>/<dtype>/large   torch.nn.functional.normalize(x, p=2, dim=1) (per-sample patterns)
  torch/{layer_norm,rms_norm,batch_norm,group_norm}/...   the layers of bench/bench_layers.cpp, forward
                                        (no_grad) and autograd's backward, on its large shapes
  torch/image/nhwc_nchw/u8_<out>/256x224x224x3/large   torchvision's ToTensor + Normalize on the device:
                                        x.permute(0, 3, 1, 2).to(out) / 255, then (y - mean) / std per channel
                                        (torchvision.transforms.v2.functional.normalize when importable)

with a device-to-device copy of the same bytes timed in the same process (`b.copy_(a)`), so that each case
reports `of_copy` exactly as bench_normkit does: statistics = input bytes/s over the copy's read bytes/s,
apply = (input + output bytes)/s over the copy's read + write bytes/s. CUDA events around `iters` calls
after 3 warm-ups; random data. One JSON object per line on stdout (scripts/gpu-check.sh keeps them as
torch.jsonl); bench/plot.py draws them beside normkit's. Needs PyTorch with a GPU; prints one line and
exits 2 without.

usage: compare_torch.py [--iters N] [--only SUBSTRING]
"""
import json
import sys

# (name, shape, reduced axes) of the large patterns: keep in step with bench_common.hpp's patterns(true).
PATTERNS = [
    ("per_feature", [4096 * 64, 256], (0,)),
    ("per_sample", [256 * 64, 4096], (1,)),
    ("per_sample16", [65536 * 64, 16], (1,)),
    ("per_sample64", [16384 * 64, 64], (1,)),
    ("global", [1 << 20, 64], (0, 1)),
    ("nhwc_c3", [16 * 64, 128, 128, 3], (0, 1, 2)),
    ("nchw_c3", [16 * 64, 3, 128, 128], (0, 2, 3)),
]
STATS_DTYPES = ["float32", "float16", "bfloat16", "uint8"]
APPLY_PAIRS = [("float32", "float32"), ("float16", "float16"), ("bfloat16", "bfloat16"), ("uint8", "float32"),
               ("uint8", "float16"), ("float32", "float16")]


def main(argv):
    iters = int(argv[argv.index("--iters") + 1]) if "--iters" in argv else 20
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    try:
        import torch
    except ImportError:
        print(json.dumps({"error": "PyTorch is not importable"}))
        return 2
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"}))
        return 2
    dev = torch.device("cuda")
    dtype_of = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "uint8": torch.uint8}

    def timed(fn):
        for _ in range(3):
            fn()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        stop.record()
        torch.cuda.synchronize()
        return start.elapsed_time(stop) / 1e3 / iters  # seconds per call

    copy_read_rate = {}

    def copy_rate(nbytes):
        if nbytes not in copy_read_rate:
            a = torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device=dev)
            b = torch.empty_like(a)
            copy_read_rate[nbytes] = nbytes / timed(lambda: b.copy_(a))
            print(json.dumps({"name": f"torch/copy/{nbytes}B", "bytes_per_second": 2 * copy_read_rate[nbytes],
                              "torch": torch.__version__, "device": torch.cuda.get_device_name()}), flush=True)
        return copy_read_rate[nbytes]

    def random_tensor(shape, dtype):
        if dtype == "uint8":
            return torch.randint(0, 256, shape, dtype=torch.uint8, device=dev)
        return (torch.rand(shape, device=dev) * 1.5 + 0.5).to(dtype_of[dtype])  # finite, as the C++ bench

    def emit(name, seconds, moved, copy_bytes, of_copy_bytes):
        print(json.dumps({"name": name, "real_time_us": seconds * 1e6, "bytes_per_second": moved / seconds,
                          "of_copy": of_copy_bytes / seconds / copy_rate(copy_bytes)}), flush=True)

    for pattern, shape, axes in PATTERNS:
        numel = 1
        for e in shape:
            numel *= e
        for dtype in STATS_DTYPES:
            name = f"torch/stats/{pattern}/{dtype}/large"
            if only and only not in name:
                continue
            x = random_tensor(shape, dtype)
            nbytes = x.numel() * x.element_size()
            if dtype == "uint8":
                fn = lambda: torch.var_mean(x.float(), dim=axes, correction=0)
            else:
                fn = lambda: torch.var_mean(x, dim=axes, correction=0)
            emit(name, timed(fn), nbytes, nbytes, nbytes)
            del x
        for din, dout in APPLY_PAIRS:
            name = f"torch/apply/{pattern}/{din}_to_{dout}/large"
            if only and only not in name:
                continue
            x = random_tensor(shape, din)
            kept = [1 if d in axes else e for d, e in enumerate(shape)]
            mean = torch.rand(kept, device=dev).to(dtype_of[dout])
            rstd = (torch.rand(kept, device=dev) + 0.5).to(dtype_of[dout])
            in_bytes = x.numel() * x.element_size()
            out_bytes = numel * torch.empty((), dtype=dtype_of[dout]).element_size()
            fn = lambda: (x.to(dtype_of[dout]) - mean) * rstd
            # (input + output) over a copy of the input size, as bench_transforms.cpp reports it
            emit(name, timed(fn), in_bytes + out_bytes, in_bytes, (in_bytes + out_bytes) / 2)
            del x
        if pattern.startswith("per_sample"):
            for dtype in ["float32", "float16"]:
                name = f"torch/lp_l2/{pattern}/{dtype}/large"
                if only and only not in name:
                    continue
                x = random_tensor(shape, dtype)
                nbytes = x.numel() * x.element_size()
                fn = lambda: torch.nn.functional.normalize(x, p=2.0, dim=1)
                emit(name, timed(fn), 2 * nbytes, nbytes, nbytes)  # read + write, as the apply
                del x
        torch.cuda.empty_cache()
    layers(torch, dev, timed, random_tensor, emit, only)
    images(torch, dev, timed, random_tensor, emit, only, dtype_of)
    return 0


# bench/bench_image.cpp's large uint8 cases: a batch of 256 ImageNet-sized NHWC images to normalized NCHW, as
# a PyTorch input pipeline on the GPU does it (the layout change, the conversion and the normalization as
# separate kernels), bytes as the C++ bench counts them (input + output) over a copy of the output's size.
def images(torch, dev, timed, random_tensor, emit, only, dtype_of):
    try:
        from torchvision.transforms.v2 import functional as TF
    except Exception:
        TF = None
    for out in ("float32", "float16"):
        name = f"torch/image/nhwc_nchw/u8_{'f32' if out == 'float32' else 'f16'}/256x224x224x3/large"
        if only and only not in name:
            continue
        try:
            x = random_tensor([256, 224, 224, 3], "uint8")
            mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
            m = torch.tensor(mean, device=dev, dtype=dtype_of[out]).view(1, 3, 1, 1)
            s = torch.tensor(std, device=dev, dtype=dtype_of[out]).view(1, 3, 1, 1)

            def fn():
                y = x.permute(0, 3, 1, 2).to(dtype_of[out]).div_(255)
                return TF.normalize(y, mean, std) if TF is not None else y.sub_(m).div_(s)

            in_bytes = x.numel()
            out_bytes = x.numel() * torch.empty((), dtype=dtype_of[out]).element_size()
            emit(name, timed(fn), in_bytes + out_bytes, out_bytes, (in_bytes + out_bytes) / 2)
            del x
        except Exception as e:  # (a peer that fails is reported, the others still run)
            print(json.dumps({"name": name, "error": str(e)[:200]}), flush=True)
        torch.cuda.empty_cache()


# The layer cases of bench/bench_layers.cpp (large): name, torch forward, shape, dtype. Bytes moved as the C++
# bench counts them (forward x + y, BatchNorm/GroupNorm training 2x + y; backward x + dy + dx, BatchNorm/
# GroupNorm 2 (x + dy) + dx), over a copy of x's bytes. The backward is autograd's through the layer alone
# (torch.autograd.grad of the forward's output with dy), which includes no forward.
def layer_cases():
    elems = 32 << 20
    out = []
    for kind in ("layer_norm", "rms_norm"):
        for dtype in ("float32", "float16", "bfloat16"):
            if kind == "rms_norm" and dtype == "float16":
                continue
            for hidden in (768, 4096, 16384):
                out.append((kind, dtype, [max(1, elems // hidden), hidden], None))
    for last in (False, True):
        n_gn = max(1, elems // (320 * 64 * 64))
        for dtype in ("float32", "bfloat16"):
            # ResNet-50's first and last stages, as bench/bench_layers.cpp
            for side, channels in ((56, 256), (7, 2048)):
                n_bn = max(1, elems // (channels * side * side))
                out.append(("batch_norm", dtype, [n_bn, side, side, channels] if last else [n_bn, channels, side, side], last))
            out.append(("group_norm", dtype, [n_gn, 64, 64, 320] if last else [n_gn, 320, 64, 64], last))
    return out


def layers(torch, dev, timed, random_tensor, emit, only):
    F = torch.nn.functional
    short = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}
    for kind, dtype, shape, last in layer_cases():
        x = random_tensor(shape, dtype)
        if last is not None:
            # channels last: the same [N, C, H, W] tensor stored NHWC, as PyTorch's channels_last models run
            x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last) if last else x
        c = x.shape[1] if last is not None else x.shape[-1]
        weight = torch.full((c,), 1.5, device=dev, dtype=torch.float32 if kind in ("batch_norm", "group_norm") else x.dtype)
        bias = torch.zeros_like(weight)
        nbytes = x.numel() * x.element_size()
        layout = "" if last is None else ("nhwc/" if last else "nchw/")
        dims = "x".join(str(e) for e in shape)
        if kind == "layer_norm":
            forward = lambda t: F.layer_norm(t, (c,), weight, bias)
        elif kind == "rms_norm":
            forward = lambda t: F.rms_norm(t, (c,), weight)
        elif kind == "batch_norm":
            rm, rv = torch.zeros(c, device=dev), torch.ones(c, device=dev)
            # (cuDNN's BatchNorm takes float32 parameters beside 16-bit activations)
            forward = lambda t: F.batch_norm(t, rm, rv, weight, bias, training=True)
        else:
            forward = lambda t: F.group_norm(t, 32, weight.to(t.dtype), bias.to(t.dtype))
        two_pass = kind in ("batch_norm", "group_norm")
        name = f"torch/{kind}/{'training' if kind == 'batch_norm' else 'forward'}/{layout}{short[dtype]}/{dims}/large"
        if not only or only in name:
            try:
                with torch.no_grad():
                    seconds = timed(lambda: forward(x))
                moved = (3 if two_pass else 2) * nbytes
                emit(name, seconds, moved, nbytes, moved / 2)
            except RuntimeError as e:  # (an op a dtype lacks, e.g. on an older PyTorch)
                print(json.dumps({"name": name, "error": str(e)[:200]}), flush=True)
        name = f"torch/{kind}/backward/{layout}{short[dtype]}/{dims}/large"
        if not only or only in name:
            try:
                xg = x.detach().requires_grad_(True)
                y = forward(xg)
                dy = torch.ones_like(y)
                seconds = timed(lambda: torch.autograd.grad(y, xg, dy, retain_graph=True))
                moved = (5 if two_pass else 3) * nbytes
                emit(name, seconds, moved, nbytes, moved / 2)
                del xg, y, dy
            except RuntimeError as e:
                print(json.dumps({"name": name, "error": str(e)[:200]}), flush=True)
        del x
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
