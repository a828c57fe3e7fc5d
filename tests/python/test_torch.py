"""normkit.torch against PyTorch's own layers: forward, gradients, running statistics, memory formats, the custom
ops' registration (torch.library.opcheck) and torch.compile tracing. CPU tensors run here (normkit's host engine);
the CUDA variants run where PyTorch sees a GPU (a lent GPU machine) and skip otherwise. Skipped without PyTorch;
not run under the emulator (PyTorch's CUDA runtime is not the emulator's)."""
import copy

import pytest

torch = pytest.importorskip("torch")
nkt = pytest.importorskip("normkit.torch")
F = torch.nn.functional


@pytest.fixture(params=["cpu", "cuda"])
def dev(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    return request.param


def close(a, b, dtype, scale=1.0):
    tol = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}[dtype] * scale
    torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol)


def grads(y, inputs, g):
    return torch.autograd.grad(y, [t for t in inputs if t is not None and t.requires_grad], g)


def leaf(t):
    return t.detach().clone().requires_grad_()


def same_module_step(ours, ref, x, gen):
    """ours(x) and ref(x), and their gradients of x and of the parameters, agree (float32)."""
    x = x.requires_grad_()
    xr = leaf(x)
    y, yr = ours(x), ref(xr)
    close(y, yr, torch.float32)
    g = torch.randn(tuple(x.shape), generator=gen).to(x.device)
    for got, want in zip(grads(y, (x, ours.weight, ours.bias), g), grads(yr, (xr, ref.weight, ref.bias), g)):
        close(got, want, torch.float32, scale=5)
    return y


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape,normalized", [((6, 7, 96), (96,)), ((5, 3, 33), (3, 33)), ((1, 1), (1,))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_pytorch(dev, dtype, shape, normalized, affine):
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(shape, generator=gen) * 3 + 2).to(dev, dtype).requires_grad_()
    w = (torch.randn(normalized, generator=gen)).to(dev).requires_grad_() if affine else None
    b = (torch.randn(normalized, generator=gen)).to(dev).requires_grad_() if affine else None
    y = nkt.layer_norm(x, normalized, w, b, eps=1e-5)
    # the reference in float32 from the same rounded input (PyTorch's 16-bit CPU kernels round differently)
    xr, wr, br = leaf(x.float()), (leaf(w) if affine else None), (leaf(b) if affine else None)
    yr = F.layer_norm(xr, normalized, wr, br, eps=1e-5)
    assert y.dtype == dtype and y.shape == x.shape
    close(y, yr, dtype)
    g = torch.randn(shape, generator=gen).to(dev, dtype)
    for got, ref in zip(grads(y, (x, w, b), g), grads(yr, (xr, wr, br), g.float())):
        close(got, ref, dtype, scale=10 if got.dim() < len(shape) else 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rms_norm_matches_pytorch(dev, dtype, eps):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(9, 64, generator=gen).to(dev, dtype).requires_grad_()
    w = torch.randn(64, generator=gen).to(dev).requires_grad_()
    y = nkt.rms_norm(x, (64,), w, eps=eps)
    xr, wr = leaf(x.float()), leaf(w)
    yr = F.rms_norm(xr, (64,), wr, eps=torch.finfo(dtype).eps if eps is None else eps)
    close(y, yr, dtype)
    g = torch.randn(9, 64, generator=gen).to(dev, dtype)
    for got, ref in zip(grads(y, (x, w), g), grads(yr, (xr, wr), g.float())):
        close(got, ref, dtype, scale=10)


@pytest.mark.parametrize("module,shape", [(torch.nn.BatchNorm1d, (16, 5)), (torch.nn.BatchNorm1d, (4, 5, 9)), (torch.nn.BatchNorm2d, (4, 6, 5, 7)),
                                          (torch.nn.BatchNorm3d, (2, 3, 4, 5, 6))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_modules_match_pytorch(dev, module, shape, momentum):
    gen = torch.Generator().manual_seed(3)
    ref = module(shape[1], momentum=momentum).to(dev)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(shape[1], generator=gen))
        ref.bias.copy_(torch.randn(shape[1], generator=gen))
    ours = nkt.convert(copy.deepcopy(ref))
    assert type(ours).__module__ == "normkit.torch"
    for step in range(3):  # training steps move the running statistics; then inference reads them
        same_module_step(ours, ref, (torch.randn(shape, generator=gen) * (step + 1) + step).to(dev), gen)
        close(ours.running_mean, ref.running_mean, torch.float32)
        close(ours.running_var, ref.running_var, torch.float32)
        assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == step + 1
    ours.eval(), ref.eval()
    same_module_step(ours, ref, torch.randn(shape, generator=gen).to(dev), gen)


def test_batch_norm_without_running_statistics_and_channels_last(dev):
    gen = torch.Generator().manual_seed(4)
    ref = torch.nn.BatchNorm2d(6, affine=False, track_running_stats=False).to(dev)
    ours = nkt.convert(copy.deepcopy(ref))
    x = torch.randn(3, 6, 5, 4, generator=gen).to(dev).to(memory_format=torch.channels_last).requires_grad_()
    xr = leaf(x)
    y, yr = ours(x), ref(xr)
    assert y.is_contiguous(memory_format=torch.channels_last)
    close(y, yr, torch.float32)
    g = torch.randn(3, 6, 5, 4, generator=gen).to(dev)  # (a contiguous gradient for a channels_last input)
    close(grads(y, (x,), g)[0], grads(yr, (xr,), g)[0], torch.float32, scale=5)
    ours.eval()  # no running statistics: inference uses the batch's, as PyTorch
    close(ours(x), ref(xr), torch.float32)


def test_batch_norm_16_bit_input_with_float32_parameters(dev):
    gen = torch.Generator().manual_seed(5)
    ref = torch.nn.BatchNorm2d(4).to(dev)
    ours = nkt.convert(copy.deepcopy(ref))
    x = torch.randn(2, 4, 3, 5, generator=gen).to(dev, torch.bfloat16)
    y = ours(x)
    assert y.dtype == torch.bfloat16
    close(y, ref(x.float()), torch.bfloat16)
    close(ours.running_var, ref.running_var, torch.bfloat16)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("groups", [1, 3, 6])
def test_group_norm_matches_pytorch(dev, channels_last, groups):
    gen = torch.Generator().manual_seed(6)
    ref = torch.nn.GroupNorm(groups, 6).to(dev)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(6, generator=gen))
        ref.bias.copy_(torch.randn(6, generator=gen))
    ours = nkt.convert(copy.deepcopy(ref))
    x = (torch.randn(3, 6, 5, 4, generator=gen) * 2 + 1).to(dev)
    y = same_module_step(ours, ref, x.to(memory_format=torch.channels_last) if channels_last else x, gen)
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_layer_and_rms_norm_modules(dev):
    ln, rms = torch.nn.LayerNorm((4, 8)).to(dev), torch.nn.RMSNorm(8, eps=1e-6).to(dev)
    x = torch.randn(5, 4, 8).to(dev)
    want = (ln(x), rms(x))
    nkt.convert(ln), nkt.convert(rms)
    assert isinstance(ln, nkt.LayerNorm) and isinstance(rms, nkt.RMSNorm)
    close(ln(x), want[0], torch.float32)
    close(rms(x), want[1], torch.float32)
    assert set(ln.state_dict()) == {"weight", "bias"}


def test_gradients_are_deterministic(dev):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(64, 256, generator=gen).to(dev).requires_grad_()
    w = torch.randn(256, generator=gen).to(dev).requires_grad_()
    g = torch.randn(64, 256, generator=gen).to(dev)
    first = grads(nkt.layer_norm(x, (256,), w), (x, w), g)
    second = grads(nkt.layer_norm(x, (256,), w), (x, w), g)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_opcheck_every_operator(dev):
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(4, 6, 3, 5, generator=gen).to(dev).requires_grad_()
    xcl = leaf(x.detach().to(memory_format=torch.channels_last))
    w6, b6 = torch.randn(6, generator=gen).to(dev).requires_grad_(), torch.randn(6, generator=gen).to(dev).requires_grad_()
    w5, b5 = torch.randn(5, generator=gen).to(dev).requires_grad_(), torch.randn(5, generator=gen).to(dev).requires_grad_()
    rm, rv = torch.zeros(6, device=dev), torch.ones(6, device=dev)
    ops = torch.ops.normkit
    cases = [(ops.layer_norm.default, (x, 1, w5, b5, 1e-5, False)), (ops.layer_norm.default, (x, 2, None, None, 1e-5, True)),
             (ops.batch_norm.default, (x, w6, b6, rm, rv, True, 0.1, 1e-5)), (ops.batch_norm.default, (xcl, None, None, rm, rv, False, 0.1, 1e-5)),
             (ops.batch_norm.default, (x, w6, None, None, None, True, 0.1, 1e-5)), (ops.group_norm.default, (xcl, 3, w6, b6, 1e-5))]
    y, mean, rstd = ops.layer_norm(x.detach(), 1, w5.detach(), None, 1e-5, False)
    cases.append((ops.layer_norm_backward.default, (torch.randn_like(y), x.detach(), mean, rstd, w5.detach(), 1, 1e-5, False, True, True, True)))
    y, mean, rstd, _, _ = ops.batch_norm(x.detach(), None, None, None, None, True, 0.1, 1e-5)
    cases.append((ops.batch_norm_backward.default, (torch.randn_like(y), x.detach(), mean, rstd, w6.detach(), True, 1e-5, True, True, False)))
    y, mean, rstd = ops.group_norm(x.detach(), 2, None, None, 1e-5)
    cases.append((ops.group_norm_backward.default, (torch.randn_like(y), x.detach(), mean, rstd, w6.detach(), 2, 1e-5, True, True, True)))
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_torch_compile_traces_the_operators(dev):
    torch.manual_seed(9)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 1), torch.nn.BatchNorm2d(6), torch.nn.GroupNorm(2, 6), torch.nn.LayerNorm(5),
                                torch.nn.RMSNorm(5)).to(dev)
    ref = copy.deepcopy(model)
    compiled = torch.compile(nkt.convert(model), backend="aot_eager", fullgraph=True)
    for _ in range(2):
        x = torch.randn(4, 3, 7, 5, device=dev)
        y, yr = compiled(x), ref(x)
        close(y, yr, torch.float32, scale=5)
        y.square().sum().backward()
        yr.square().sum().backward()
    close(model[1].running_mean, ref[1].running_mean, torch.float32)
    close(model[1].running_var, ref[1].running_var, torch.float32)
    for p, q in zip(model.parameters(), ref.parameters()):
        close(p.grad, q.grad, torch.float32, scale=50)


def test_errors_name_the_argument(dev):
    x = torch.randn(4, 6, device=dev)
    with pytest.raises(ValueError, match="normalized_shape"):
        nkt.layer_norm(x, (5,))
    with pytest.raises(ValueError, match="num_groups"):
        nkt.group_norm(x, 4)
    with pytest.raises(ValueError, match="running_mean"):
        nkt.batch_norm(x, None, None, training=False)
    with pytest.raises(TypeError, match="float32, float16 or bfloat16|dtype"):
        nkt.layer_norm(x.double(), (6,))
    with pytest.raises(ValueError, match="more than 1 value|one value|n == 1|value per channel"):
        nkt.batch_norm(torch.randn(1, 6, device=dev), None, None, training=True)


def test_torch_tensors_through_the_general_api(dev):
    import normkit
    x = torch.randn(50, 7, device=dev)
    got = normkit.stats(x, axis=0, stats=("mean", "var"))
    assert isinstance(got["mean"], torch.Tensor) and got["mean"].device == x.device
    close(got["mean"], x.double().mean(0), torch.float32)
    close(got["var"], x.double().var(0, unbiased=False), torch.float32)
    close(normkit.normalize(x), F.normalize(x, dim=1), torch.float32)


def test_permuted_inputs_layouts_match_the_fake_kernels(dev):
    # A dense input stored neither contiguous nor channels-last: the operators answer it contiguous, and their fake
    # kernels must say so (opcheck compares the strides).
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(2, 5, 6, 4, generator=gen).to(dev).permute(0, 2, 1, 3).requires_grad_()  # [2, 6, 5, 4], C = 6
    w = torch.randn(6, generator=gen).to(dev).requires_grad_()
    torch.library.opcheck(torch.ops.normkit.group_norm.default, (x, 3, w, None, 1e-5))
    torch.library.opcheck(torch.ops.normkit.batch_norm.default, (x, w, None, None, None, True, 0.1, 1e-5))
    close(nkt.group_norm(x, 3, w), F.group_norm(leaf(x), 3, leaf(w)), torch.float32)


def test_mixed_parameter_dtypes_and_a_bfloat16_model(dev):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(4, 32, generator=gen).to(dev, torch.bfloat16)
    w, b = torch.randn(32, generator=gen).to(dev), torch.randn(32, generator=gen).to(dev, torch.bfloat16)  # (float32 weight, bf16 bias)
    close(nkt.layer_norm(x, (32,), w, b), F.layer_norm(x.float(), (32,), w, b.float()), torch.bfloat16)
    # (and the other way round, with gradients: each in its parameter's dtype, dbias not rounded through bf16)
    wb, bf = leaf(w.to(torch.bfloat16)), leaf(torch.randn(32, generator=gen).to(dev) * 1e-3 + 1)
    g = torch.randn(4, 32, generator=gen).to(dev, torch.bfloat16)
    dw, db = torch.autograd.grad(nkt.layer_norm(x, (32,), wb, bf), (wb, bf), g)
    assert dw.dtype == torch.bfloat16 and db.dtype == torch.float32
    torch.testing.assert_close(db, g.float().sum(0), rtol=1e-6, atol=1e-6)
    ref = torch.nn.BatchNorm2d(3).to(dev)
    ours = nkt.convert(copy.deepcopy(ref)).to(torch.bfloat16)  # bf16 weights and running statistics
    xi = torch.randn(2, 3, 4, 5, generator=gen).to(dev)
    y = ours(xi.to(torch.bfloat16))
    close(y, ref(xi.to(torch.bfloat16).float()), torch.bfloat16)
    assert ours.running_var.dtype == torch.bfloat16
    close(ours.running_var, ref.running_var, torch.bfloat16)


def _sync_batch_norm_rank(rank, world, init_file, parts, out_dir, channels_last=False):
    """One rank of test_sync_batch_norm_matches_one_process (torch.multiprocessing, Gloo on CPU)."""
    import normkit.torch as nk
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    x_all, g_all, module = _sync_batch_norm_case(sum(parts))
    first = sum(parts[:rank])
    x = x_all[first:first + parts[rank]].clone()
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    ours = nk.convert(torch.nn.SyncBatchNorm(module.num_features, momentum=None))
    ours.load_state_dict(module.state_dict())
    assert isinstance(ours, nk.SyncBatchNorm)
    for _ in range(2):  # (two steps: the running statistics' cumulative average moves twice)
        y = ours(x)
    (y * g_all[first:first + parts[rank]]).sum().backward()
    torch.save({"y": y.detach(), "dx": x.grad, "dweight": ours.weight.grad, "dbias": ours.bias.grad, "running_mean": ours.running_mean,
                "running_var": ours.running_var}, f"{out_dir}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def _sync_batch_norm_case(n):
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(n, 5, 3, 4, generator=gen) * 3 + 1e3  # (a far mean: the merge's accuracy shows)
    g = torch.randn(n, 5, 3, 4, generator=gen)
    module = torch.nn.BatchNorm2d(5, momentum=None)
    with torch.no_grad():
        module.weight.copy_(torch.randn(5, generator=gen))
        module.bias.copy_(torch.randn(5, generator=gen))
    return x, g, module


@pytest.mark.parametrize("parts,channels_last", [([3, 5], False), ([2, 1, 4], False), ([0, 3], False), ([4, 3], True)])
def test_sync_batch_norm_matches_one_process(tmp_path, parts, channels_last):
    # Uneven parts on 2 and 3 ranks, and an empty rank (Gloo, CPU): y and dx are the one-process BatchNorm's on the whole batch, the
    # ranks' dweight/dbias add up to its gradients (PyTorch's SyncBatchNorm convention), and every rank holds
    # bitwise the same running statistics.
    import torch.multiprocessing as mp
    world = len(parts)
    mp.spawn(_sync_batch_norm_rank, args=(world, str(tmp_path / "init"), parts, str(tmp_path), channels_last), nprocs=world, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    x_all, g_all, ref = _sync_batch_norm_case(sum(parts))
    x = x_all.clone().requires_grad_()
    for _ in range(2):
        y = ref(x)
    (y * g_all).sum().backward()
    close(torch.cat([r["y"] for r in results]), y, torch.float32)
    close(torch.cat([r["dx"] for r in results]), x.grad, torch.float32, scale=5)
    close(sum(r["dweight"] for r in results), ref.weight.grad, torch.float32, scale=50)
    close(sum(r["dbias"] for r in results), ref.bias.grad, torch.float32, scale=50)
    for r in results:
        assert torch.equal(r["running_mean"], results[0]["running_mean"]) and torch.equal(r["running_var"], results[0]["running_var"])
    close(results[0]["running_mean"], ref.running_mean, torch.float32)
    close(results[0]["running_var"], ref.running_var, torch.float32)
