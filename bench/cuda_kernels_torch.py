# The PyTorch equivalents of bench/cuda_kernels.ts's rows, for the ratios in docs/BENCHMARKS.md (same shapes,
# same timing rule: median of 5 synchronised batches after warm-up).
# Sections named on the command line run alone (copy, gemm, attention, cross-entropy); none named runs them all.
#   python3 bench/cuda_kernels_torch.py [section...]
import json, math, os, sys, time
import torch
import torch.nn.functional as F

dev = 'cuda'
sections = ['copy', 'gemm', 'attention', 'cross-entropy']
chosen = sys.argv[1:]
for name in chosen:
    if name not in sections: sys.exit(f"unknown section '{name}' (known: {', '.join(sections)})")
def runs(section): return not chosen or section in chosen
torch.manual_seed(0)

def timed(fn, min_seconds=0.2):
    fn(); torch.cuda.synchronize()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls): fn()
        torch.cuda.synchronize()
        if time.perf_counter() - t0 > min_seconds / 5 or calls > 65536: break
        calls *= 4
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls): fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t0) / calls)
    return sorted(samples)[2]

rows = []
def report(name, s, tflops=None, gbps=None):
    rows.append({'name': name, 'ms': s * 1e3, 'tflops': tflops, 'gbps': gbps})
    rate = f'{tflops:.1f} TFLOP/s' if tflops is not None else f'{gbps:.0f} GB/s'
    print(f'{name:<58} {s * 1e3:9.3f} ms  {rate:>14}', flush=True)

print('torch', torch.__version__, torch.cuda.get_device_name())
if runs('copy'):
    n = 256 << 20
    a = torch.empty(n, device=dev); b = torch.empty(n, device=dev)
    s = timed(lambda: b.copy_(a)); report('torch copy 1 GiB', s, gbps=8 * n / s / 1e9)
    del a, b

tokens = 8192
for prec, dtype, tf32 in [('f32', torch.float32, False), ('tf32', torch.float32, True), ('bf16', torch.bfloat16, False)] if runs('gemm') else []:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    for name, m, nn, k in [('x @ W_up^T', tokens, 4864, 896), ('x @ W_down^T', tokens, 896, 4864), ('LM head', tokens, 151936, 896), ('square 4096', 4096, 4096, 4096)]:
        x = torch.randn(m, k, device=dev, dtype=dtype); w = torch.randn(nn, k, device=dev, dtype=dtype)
        s = timed(lambda: x @ w.t()); report(f'torch gemm {prec:<4} {name} [{m}x{k}]x[{nn}x{k}]^T', s, tflops=2 * m * nn * k / s / 1e12)
        del x, w
torch.backends.cuda.matmul.allow_tf32 = False

for dtype, label, B, T, Hq, D in [(torch.float32, 'f32', 8, 1024, 14, 64), (torch.bfloat16, 'bf16', 8, 1024, 14, 64), (torch.bfloat16, 'bf16', 4, 2048, 16, 128)] if runs('attention') else []:
    flops = 4 * B * Hq * D * T * (T + 1) / 2
    q = torch.randn(B, Hq, T, D, device=dev, dtype=dtype, requires_grad=True)
    kk = torch.randn(B, Hq, T, D, device=dev, dtype=dtype, requires_grad=True)  # GQA expanded, as HF does
    v = torch.randn(B, Hq, T, D, device=dev, dtype=dtype, requires_grad=True)
    s = timed(lambda: F.scaled_dot_product_attention(q, kk, v, is_causal=True))
    report(f'torch sdpa fwd {label} B={B} T={T} H={Hq} D={D} causal', s, tflops=flops / s / 1e12)
    o = F.scaled_dot_product_attention(q, kk, v, is_causal=True); g = torch.randn_like(o)
    s = timed(lambda: torch.autograd.grad(o, (q, kk, v), g, retain_graph=True))
    report(f'torch sdpa bwd {label} B={B} T={T} H={Hq} D={D} causal', s, tflops=2.5 * flops / s / 1e12)
    del q, kk, v, o, g

if runs('cross-entropy'):
    R, V = 4096, 151936
    logits = torch.randn(R, V, device=dev) * 3; targets = torch.randint(0, V, (R,), device=dev)
    s = timed(lambda: F.cross_entropy(logits, targets, reduction='none')); report(f'torch cross-entropy fwd {R} x {V}', s, gbps=4 * R * V / s / 1e9)
    lg = logits.clone().requires_grad_(True); loss = F.cross_entropy(lg, targets, reduction='none'); dl = torch.randn(R, device=dev)
    s = timed(lambda: torch.autograd.grad(loss, lg, dl, retain_graph=True)); report(f'torch cross-entropy bwd {R} x {V}', s, gbps=8 * R * V / s / 1e9)
    del logits, lg, loss

os.makedirs('bench/results', exist_ok=True)
with open('bench/results/cuda_kernels_torch.json', 'w') as f:
    json.dump({'device': torch.cuda.get_device_name(), 'torch': torch.__version__, 'rows': rows}, f, indent=2)
