"""PyTorch on the CPU, the twin of r1ts's bench/train.ts (../shared/bench/torch_cpu_train.py with a size argument
and the peak memory): one full update (forward, backward, clip, AdamW) of the same dense presets (Qwen2 layout,
vocab 2048, batch 16 x seq 128, float32), tokens/s, and the process's peak resident memory so far (run one size
per process for a per-size figure). Run under the same `taskset` as bench/train.ts so both get the same cores:
    taskset -c 0,1 python3 bench/torch_cpu_train.py [1m 5m 20m]
With PROFILE=1, 3 more steps run under torch.profiler and its table by op and input shape goes to stderr (the
twin of PROFILE=1 bench/train.ts)."""
import json, os, resource, sys, time, torch
from transformers import Qwen2Config, Qwen2ForCausalLM
torch.set_num_threads(len(os.sched_getaffinity(0)))
MIN_SECONDS = float(os.environ.get("MIN_SECONDS", 4))  # timed for at least this long, as bench/train.ts
SIZES = {"1m": (128, 352, 4, 4, 2), "5m": (256, 688, 6, 8, 4), "20m": (512, 1376, 6, 8, 4)}
for name in sys.argv[1:] or list(SIZES):
    h, ffn, L, H, KV = SIZES[name]
    cfg = Qwen2Config(vocab_size=2048, hidden_size=h, intermediate_size=ffn, num_hidden_layers=L, num_attention_heads=H, num_key_value_heads=KV, max_position_embeddings=1024, tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    m = Qwen2ForCausalLM(cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x = torch.randint(0, 2048, (16, 128))
    def step():
        loss = m(input_ids=x, labels=x).loss
        loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
    for _ in range(2): step()
    n = 0; t = time.perf_counter()
    while n < 3 or time.perf_counter() - t < MIN_SECONDS: step(); n += 1
    dt = (time.perf_counter() - t) / n
    print(json.dumps(dict(kind="train_cpu_torch", size=name, threads=torch.get_num_threads(), params=sum(p.numel() for p in m.parameters()), step_ms=round(dt * 1e3, 1), tok_s=round(16 * 128 / dt),
                          peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))), flush=True)
    if os.environ.get("PROFILE") == "1":
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(3): step()
        print(f"{name}: 3 steps under torch.profiler, self CPU time of the main thread by op and input shapes", file=sys.stderr)
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=40, max_shapes_column_width=60), file=sys.stderr, flush=True)
