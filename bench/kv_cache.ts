// KV-cache size per token per layer: multi-head latent attention against MHA and GQA models of equal width
// (same hidden size and query heads), from the configs, each checked against the bytes the engine's caches
// actually allocate (model.newCache for the small models, the same cache constructors for the large ones,
// which are not instantiated). Float32 caches, as the CPU engine keeps them. Prints a table and writes
// bench/results/kv_cache.json.
//   node --import tsx bench/kv_cache.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emptyLayerKvCache, type LayerKvCache } from '../src/nn/attention.ts';
import { emptyLatentKvCache } from '../src/nn/mla.ts';
import { deepseekConfig, type DeepSeekConfig } from '../src/models/deepseek.ts';
import { createModel } from '../src/models/pretrained.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const BYTES = 4; // float32
/** Key/value heads of the GQA comparison (Llama-3-8B and Qwen2.5-7B-like: 8 kv heads, or 4 / 2 when fewer query heads). */
const gqaKvHeads = (heads: number) => Math.min(8, heads / 2);

// Shapes: DeepSeek-V3 (671B), DeepSeek-V2-Lite, and the CPU default of r1 pretrain --family deepseek.
const configs: Array<[string, DeepSeekConfig, boolean]> = [
  ['DeepSeek-V3 671B', deepseekConfig(129280, { hiddenSize: 7168, numLayers: 61, numHeads: 128, qLoraRank: 1536, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128 }), false],
  ['DeepSeek-V2-Lite', deepseekConfig(102400, { hiddenSize: 2048, numLayers: 27, numHeads: 16, qLoraRank: null, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128 }), false],
  ['r1ts deepseek default', deepseekConfig(2048), true],
];

/** Distinct buffer bytes of one layer's cache, per token (a latent cache's values are a view of its keys). */
function allocatedBytesPerToken(cache: LayerKvCache, batch: number, capacity: number): number {
  const buffers = new Set([cache.k.storage, cache.v.storage]);
  return [...buffers].reduce((n, b) => n + b.length * 4, 0) / (batch * capacity);
}

const rows = configs.map(([name, c, instantiate]) => {
  const headDim = c.hiddenSize / c.numHeads;
  const kv = gqaKvHeads(c.numHeads);
  const formula = {
    mla: (c.kvLoraRank + c.qkRopeHeadDim) * BYTES,
    // The MHA that MLA replaces: every head's [k_nope ; k_rope] and v.
    mlaAsMha: c.numHeads * (c.qkNopeHeadDim + c.qkRopeHeadDim + c.vHeadDim) * BYTES,
    mha: 2 * c.numHeads * headDim * BYTES,
    gqa: 2 * kv * headDim * BYTES,
  };
  const [batch, capacity] = [2, 3];
  const latent = instantiate ? createModel(c).newCache(batch, capacity)[0] : emptyLatentKvCache(batch, capacity, c.kvLoraRank, c.qkRopeHeadDim);
  const allocated = {
    mla: allocatedBytesPerToken(latent, batch, capacity),
    mlaAsMha: allocatedBytesPerToken(emptyLayerKvCache(batch, capacity, c.numHeads, c.qkNopeHeadDim + c.qkRopeHeadDim, c.vHeadDim), batch, capacity),
    mha: allocatedBytesPerToken(emptyLayerKvCache(batch, capacity, c.numHeads, headDim, headDim), batch, capacity),
    gqa: allocatedBytesPerToken(emptyLayerKvCache(batch, capacity, kv, headDim, headDim), batch, capacity),
  };
  for (const key of Object.keys(formula) as Array<keyof typeof formula>) {
    if (formula[key] !== allocated[key]) throw new Error(`${name}: ${key} cache allocates ${allocated[key]} bytes per token per layer, the config says ${formula[key]}`);
  }
  return { name, hiddenSize: c.hiddenSize, heads: c.numHeads, gqaKvHeads: kv, layers: c.numLayers, bytesPerTokenPerLayer: formula,
    bytesPerTokenAllLayers: Object.fromEntries(Object.entries(formula).map(([k, v]) => [k, v * c.numLayers])) };
});

const pad = (s: string | number, n: number) => String(s).padStart(n);
console.log(`KV cache, float32 bytes per token per layer (checked against allocated caches)`);
console.log(`${'model'.padEnd(24)}${pad('MLA latent', 12)}${pad('MHA (MLA dims)', 16)}${pad('MHA', 10)}${pad('GQA', 14)}${pad('MHA / MLA', 11)}${pad('GQA / MLA', 11)}`);
for (const r of rows) {
  const b = r.bytesPerTokenPerLayer;
  console.log(`${r.name.padEnd(24)}${pad(b.mla, 12)}${pad(b.mlaAsMha, 16)}${pad(b.mha, 10)}${pad(`${b.gqa} (${r.gqaKvHeads} kv)`, 14)}${pad((b.mha / b.mla).toFixed(1), 11)}${pad((b.gqa / b.mla).toFixed(2), 11)}`);
}
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/kv_cache.json'), `${JSON.stringify({ date: new Date().toISOString().slice(0, 10), dtype: 'float32', rows }, null, 1)}\n`);
console.log('wrote bench/results/kv_cache.json');
