"""Hugging Face generate on the CPU, the twin of r1ts's bench/sample.ts: the same dense presets (Qwen2 layout,
vocab 2048, random weights, float32), prompts of 16-64 random tokens, 128 new tokens per row with stop tokens
off, temperature 0.8, top-p 0.95 and no top-k (generate's default top-k 50 off, as in bench/sample.ts); batch 1
and batch 32 (left-padded, with the attention mask); the fastest of 3 runs (REPEATS), wall time including the
prefill. One JSON line per row, with the process's peak resident memory so far.
Run under the same `taskset` as bench/sample.ts so that both get the same cores:
    taskset -c 0,1 python3 bench/hf_generate_cpu.py [1m 5m 20m]"""
import json, os, resource, sys, time, torch
from transformers import Qwen2Config, Qwen2ForCausalLM

torch.set_num_threads(len(os.sched_getaffinity(0)))
# bench/train.ts's presets (src/models/dense.ts denseSizes): hidden, intermediate, layers, heads, kv heads.
SIZES = {"1m": (128, 352, 4, 4, 2), "5m": (256, 688, 6, 8, 4), "20m": (512, 1376, 6, 8, 4)}
VOCAB, NEW_TOKENS, BATCHES, REPEATS = 2048, 128, (1, 32), int(os.environ.get("REPEATS", 3))
sizes = sys.argv[1:] or list(SIZES)
for name in sizes:
    h, ffn, layers, heads, kv = SIZES[name]
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=h, intermediate_size=ffn, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv, max_position_embeddings=1024, tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    for batch in BATCHES:
        g = torch.Generator().manual_seed(batch)
        lengths = [16 + int(torch.randint(0, 49, (1,), generator=g)) for _ in range(batch)]
        width = max(lengths)
        ids = torch.zeros((batch, width), dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for r, n in enumerate(lengths):  # left padding, as generate expects for decoder-only models
            ids[r, width - n:] = torch.randint(1, VOCAB, (n,), generator=g)
            mask[r, width - n:] = 1
        kw = dict(attention_mask=mask, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=True, temperature=0.8, top_p=0.95, top_k=0,
                  pad_token_id=0, eos_token_id=None)
        with torch.no_grad():
            model.generate(ids[:, -16:], attention_mask=mask[:, -16:], max_new_tokens=8, do_sample=True, pad_token_id=0)  # warm-up
            best = float("inf")
            for _ in range(REPEATS):
                t = time.perf_counter()
                out = model.generate(ids, **kw)
                best = min(best, time.perf_counter() - t)
        new = (out.shape[1] - width) * batch
        print(json.dumps(dict(kind="generate_cpu_hf", size=name, batch=batch, threads=torch.get_num_threads(), params=sum(p.numel() for p in model.parameters()),
                              new_tokens=new, s=round(best, 3), tok_s=round(new / best, 1), peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))), flush=True)
