"""PyTorch's CPU matrix products (MKL / oneDNN) on bench/gemm.ts's shapes, its twin where there is no OpenBLAS
to load beside r1_matmul (the GPU machine): float32, the fastest of at least 5 calls and 0.4 s per shape, after a
warm-up call. One JSON line per shape. Run under the same `taskset` as bench/gemm.ts so both get the same cores:
    taskset -c 0,1 python3 bench/gemm_torch_cpu.py ["20M" "decode m=32" ...]   (only shapes whose name contains one)"""
import json, os, sys, time, torch

torch.set_num_threads(len(os.sched_getaffinity(0)))


def transformer_shapes(label, h):  # bench/gemm.ts transformerShapes: T = 4096 tokens through a fused QKV (h -> 3h)
    T = 4096
    return [(f"{label} X W (NN)", 1, T, 3 * h, h, False, False), (f"{label} X W^T (NT) fwd", 1, T, 3 * h, h, False, True),
            (f"{label} dY W (NN) dX", 1, T, h, 3 * h, False, False), (f"{label} dY^T X (TN) dW", 1, 3 * h, h, T, True, False)]


def train_shapes(label, h, f):  # bench/gemm.ts trainShapes: a dense preset's step at 16 x 128 tokens, vocabulary 2048
    T, V = 2048, 2048
    return [x for what, inp, out in (("gate/up", h, f), ("down", f, h), ("q/o", h, h), ("vocab", h, V))
            for x in ((f"train {label} {what} fwd X W^T (NT)", 1, T, out, inp, False, True), (f"train {label} {what} dX dY W (NN)", 1, T, inp, out, False, False),
                      (f"train {label} {what} dW dY^T X (TN)", 1, out, inp, T, True, False))]


SHAPES = ([(f"square {s}", 1, s, s, s, False, False) for s in (256, 512, 1024, 2048)] + train_shapes("5m", 256, 688) + train_shapes("20m", 512, 1376)
          + transformer_shapes("5M h=256", 256)
          + transformer_shapes("20M h=512", 512) + [("attention 16 heads QK^T", 16, 256, 256, 64, False, True)]
          + [x for h in (512, 1024) for x in ((f"decode m=1 {h}x{h} (NT)", 1, 1, h, h, False, True), (f"decode m=1 {h}x{h} (NN)", 1, 1, h, h, False, False),
                                               (f"decode m=32 {h}x{h} (NT)", 1, 32, h, h, False, True))]
          + [x for v in (4096, 32768) for x in ((f"decode m=1 vocab 512x{v} (NT)", 1, 1, v, 512, False, True), (f"decode m=32 vocab 512x{v} (NT)", 1, 32, v, 512, False, True))]
          + [("decode m=32 vocab 1024x32768 (NT)", 1, 32, 32768, 1024, False, True)])

filters = sys.argv[1:]
for name, batch, m, n, k, trans_a, trans_b in SHAPES:
    if filters and not any(f in name for f in filters):
        continue
    # Stored as bench/gemm.ts stores them; the transposes are views, as a model's weight.t() is.
    a = torch.rand(batch, k, m) * 2 - 1 if trans_a else torch.rand(batch, m, k) * 2 - 1
    b = torch.rand(batch, n, k) * 2 - 1 if trans_b else torch.rand(batch, k, n) * 2 - 1
    a, b = (a.transpose(1, 2) if trans_a else a), (b.transpose(1, 2) if trans_b else b)
    c = torch.empty(batch, m, n)
    torch.matmul(a, b, out=c)
    best, start, calls = float("inf"), time.perf_counter(), 0
    while calls < 5 or time.perf_counter() - start < 0.4:
        t = time.perf_counter()
        torch.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t)
        calls += 1
    print(json.dumps(dict(kind="gemm_cpu_torch", name=name, batch=batch, m=m, n=n, k=k, threads=torch.get_num_threads(), ms=round(best * 1e3, 4),
                          gflops=round(2 * batch * m * n * k / best / 1e9, 1))), flush=True)
