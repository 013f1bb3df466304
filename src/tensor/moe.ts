// The ops of a DeepSeekMoE block whose routing stays on the tensors' device (src/nn/moe.ts): choosing each token's
// experts, counting their load, sorting the (token, slot) pairs by expert, and GEMMs over each expert's rows, with
// the experts' row ranges in device memory. On a GPU no [tokens, experts] scores cross to the host and no step
// waits for it, so a MoE layer trains without a sync per layer and decodes inside a CUDA graph; on the CPU the
// same ops run on host arrays, where reading the ranges costs nothing.
import { cudaBackend, type FloatArray } from './backend.ts';
import { concat, contiguous, empty, linear, slice, zeros } from './ops.ts';
import { record, Tensor } from './tensor.ts';

/** The routing fields of a MoE config (src/nn/moe.ts's MoeConfig holds them with these names). */
export interface MoeRouting {
  numRoutedExperts: number;
  numExpertsPerToken: number;
  /** Groups the experts are split into (1: plain top-K). */
  numGroups: number;
  /** Groups a token may use. */
  topkGroup: number;
}

/**
 * The K experts of each of n tokens, from sigmoid scores [n, E] and the selection bias [E], as transformers
 * 5.17's DeepseekV3TopkRouter chooses them (src/nn/moe.ts's header): choice = s + b; each group scored by the sum
 * of its two best choices; the topkGroup best groups kept, the others' experts masked with -inf; the K best
 * choices. Returns int32 [n * K]: token t's experts at [t*K, t*K + K), in increasing id order. Float32 scores
 * are added and summed in float32 as torch does, so near-ties resolve the same way; exact ties go to the lower
 * expert id (or group id). The host definition of moeRoute; r1_cuda_moe_route computes the same.
 */
export function selectExperts(scores: FloatArray, bias: FloatArray, n: number, c: MoeRouting): Int32Array {
  const E = c.numRoutedExperts;
  const K = c.numExpertsPerToken;
  const groupSize = E / c.numGroups;
  const round = scores instanceof Float32Array ? Math.fround : (v: number) => v;
  const out = new Int32Array(n * K);
  const choice = new Float64Array(E);
  const groupScore = new Float64Array(c.numGroups);
  const picked = new Int32Array(K);
  for (let t = 0; t < n; t++) {
    for (let e = 0; e < E; e++) choice[e] = round(scores[t * E + e] + bias[e]);
    if (c.topkGroup < c.numGroups) {
      for (let g = 0; g < c.numGroups; g++) {
        let best = -Infinity;
        let second = -Infinity;
        for (let e = g * groupSize; e < (g + 1) * groupSize; e++) {
          if (choice[e] > best) [best, second] = [choice[e], best];
          else if (choice[e] > second) second = choice[e];
        }
        groupScore[g] = round(best + second);
      }
      const keptGroups = topIndices(groupScore, c.topkGroup);
      for (let g = 0; g < c.numGroups; g++) {
        if (keptGroups.includes(g)) continue;
        for (let e = g * groupSize; e < (g + 1) * groupSize; e++) choice[e] = -Infinity;
      }
    }
    picked.set(topIndices(choice, K));
    picked.sort();
    out.set(picked, t * K);
  }
  return out;
}

// Indices of the k largest values (k is small: a partial selection, not a sort), ties to the lower index.
function topIndices(values: Float64Array, k: number): number[] {
  const chosen: number[] = [];
  for (let j = 0; j < k; j++) {
    let best = -1;
    for (let i = 0; i < values.length; i++) {
      if (chosen.includes(i)) continue;
      if (best < 0 || values[i] > values[best]) best = i;
    }
    chosen.push(best);
  }
  return chosen;
}

/** The experts of each token, int32 [n, K], for scores [n, E] and bias [E] on one device (selectExperts). Not differentiable: a choice. */
export function moeRoute(scores: Tensor, bias: Tensor, c: MoeRouting): Tensor {
  const [n, E] = scores.shape;
  const K = c.numExpertsPerToken;
  if (scores.ndim !== 2 || E !== c.numRoutedExperts || bias.size !== E) throw new Error(`moeRoute: scores ${scores} and bias ${bias} do not fit [n, ${c.numRoutedExperts}] and [${c.numRoutedExperts}]`);
  if (scores.device !== bias.device) throw new Error(`moeRoute: scores on ${scores.device}, bias on ${bias.device}`);
  if (scores.device === 'cpu') {
    return new Tensor(selectExperts(contiguous(scores).hostValues() as FloatArray, contiguous(bias).hostValues() as FloatArray, n, c), [n, K]);
  }
  if (scores.dtype !== 'f32' || bias.dtype !== 'f32') throw new TypeError('moeRoute: float32 scores and bias on CUDA');
  const experts = empty([n, K], 'i32', 'cuda');
  cudaBackend().moeRoute(contiguous(scores).floatData() as number, contiguous(bias).floatData() as number, experts.intData() as number, n, E, K, c.numGroups, c.topkGroup);
  return experts;
}

/**
 * Tokens per expert, float [segments, E] in `dtype`: row s counts the experts chosen (experts int32 [n, K]) by
 * the tokens [s * n / segments, (s + 1) * n / segments): the load of a training step (segments 1) or of each
 * sequence (the balance loss). Counts, not differentiable.
 */
export function expertCounts(experts: Tensor, numExperts: number, segments = 1, dtype: 'f32' | 'f64' = 'f32'): Tensor {
  const [n, K] = experts.shape;
  if (experts.ndim !== 2 || experts.dtype !== 'i32' || n % segments !== 0) throw new Error(`expertCounts: ${experts} is not int32 [n, K] with n a multiple of ${segments}`);
  const counts = zeros([segments, numExperts], dtype, experts.device);
  if (experts.device === 'cpu') {
    const ids = contiguous(experts).hostInts();
    const out = counts.floatData() as FloatArray;
    for (let i = 0; i < ids.length; i++) out[Math.floor(i / K / (n / segments)) * numExperts + ids[i]]++;
    return counts;
  }
  cudaBackend().expertCounts(contiguous(experts).intData() as number, counts.floatData() as number, n, K, numExperts, n / segments);
  return counts;
}

/** Where each expert's rows are once the (token, slot) pairs are sorted by expert (moeDispatch). */
export interface MoeDispatch {
  /** int32 [E + 1]: expert e's rows are [offsets[e], offsets[e + 1]). */
  offsets: Tensor;
  /** int32 [n K]: the token of each row. */
  tokenOfRow: Tensor;
  /** int32 [n K]: the slot t * K + k of each row (which of the token's K gates scales it). */
  slotOfRow: Tensor;
}

/**
 * Sorts the n K (token, slot) pairs of experts int32 [n, K] by expert, tokens in increasing order within an
 * expert (a stable counting sort), on the experts' device. Every index it returns is in range by construction.
 */
export function moeDispatch(experts: Tensor, numExperts: number): MoeDispatch {
  const [n, K] = experts.shape;
  if (experts.ndim !== 2 || experts.dtype !== 'i32') throw new Error(`moeDispatch: ${experts} is not int32 [n, K]`);
  const device = experts.device;
  if (device === 'cpu') {
    const ids = contiguous(experts).hostInts();
    const start = new Int32Array(numExperts + 1);
    for (const e of ids) start[e + 1]++;
    for (let e = 0; e < numExperts; e++) start[e + 1] += start[e];
    const next = start.slice(0, numExperts);
    const tokenOfRow = new Int32Array(n * K);
    const slotOfRow = new Int32Array(n * K);
    for (let slot = 0; slot < n * K; slot++) {
      const row = next[ids[slot]]++;
      tokenOfRow[row] = Math.floor(slot / K);
      slotOfRow[row] = slot;
    }
    return { offsets: new Tensor(start, [numExperts + 1]), tokenOfRow: new Tensor(tokenOfRow, [n * K]), slotOfRow: new Tensor(slotOfRow, [n * K]) };
  }
  if (numExperts > 256) throw new Error(`moeDispatch: the CUDA dispatch sorts at most 256 routed experts, got ${numExperts}`);
  const offsets = empty([numExperts + 1], 'i32', device);
  const tokenOfRow = empty([n * K], 'i32', device);
  const slotOfRow = empty([n * K], 'i32', device);
  cudaBackend().moeDispatch(contiguous(experts).intData() as number, n, K, numExperts, offsets.intData() as number, tokenOfRow.intData() as number,
    slotOfRow.intData() as number);
  return { offsets, tokenOfRow, slotOfRow };
}

/**
 * x [R, C] with its rows sorted by expert (moeDispatch's offsets, int32 [E + 1]) times each expert's weight
 * [N, C], transposed: row r of expert e gives x[r] W_e^T, out [R, N]. Differentiable in x and the weights (an
 * expert without rows gets a zero gradient on CUDA, none on the CPU, where the ranges are read and each expert is
 * one linear on its slice). On CUDA one launch over all experts (r1_cuda_grouped_linear), float32.
 */
export function groupedLinear(x: Tensor, weights: readonly Tensor[], offsets: Tensor): Tensor {
  const [R, C] = x.shape;
  const N = weights[0]?.shape[0];
  if (x.ndim !== 2 || weights.length === 0 || weights.some((w) => w.ndim !== 2 || w.shape[0] !== N || w.shape[1] !== C) || offsets.size !== weights.length + 1 || offsets.dtype !== 'i32') {
    throw new Error(`groupedLinear: x ${x}, ${weights.length} weights (${weights[0]}) and offsets ${offsets} do not fit [R, C], E x [N, C] and int32 [E + 1]`);
  }
  for (const t of [...weights, offsets]) if (t.device !== x.device) throw new Error(`groupedLinear: ${t} is on ${t.device}, x on ${x.device}`);
  if (x.device === 'cpu') {
    const start = contiguous(offsets).hostInts();
    const parts: Tensor[] = [];
    weights.forEach((w, e) => {
      if (start[e + 1] > start[e]) parts.push(linear(slice(x, 0, start[e], start[e + 1]), w));
    });
    if (start[weights.length] !== R || start[0] !== 0) throw new Error(`groupedLinear: offsets cover rows ${start[0]}-${start[weights.length]} of ${R}`);
    return parts.length === 1 ? parts[0] : concat(parts, 0);
  }
  if (x.dtype !== 'f32') throw new TypeError('groupedLinear: float32 on CUDA');
  const cuda = cudaBackend();
  const x0 = contiguous(x);
  const ws = weights.map((w) => contiguous(w));
  const address = (t: Tensor) => t.floatData() as number;
  const out = empty([R, N], 'f32', 'cuda');
  cuda.groupedLinear(address(x0), ws.map(address), offsets.intData() as number, address(out), R, N, C, false);
  return record(out, 'groupedLinear', [x0, ...ws], (g) => {
    const g0 = contiguous(g);
    let dx: Tensor | null = null;
    if (x0.requiresGrad) {
      dx = empty([R, C], 'f32', 'cuda');
      cuda.groupedLinear(address(g0), ws.map(address), offsets.intData() as number, address(dx), R, C, N, true);
    }
    const dws = ws.map((w) => (w.requiresGrad ? empty([N, C], 'f32', 'cuda') : null));
    if (dws.some((d) => d)) {
      // One launch writes every expert's gradient; those not wanted go to one scratch buffer.
      const scratch = dws.every((d) => d) ? null : empty([N, C], 'f32', 'cuda');
      cuda.groupedWeightGrad(address(g0), address(x0), offsets.intData() as number, dws.map((d) => address(d ?? scratch!)), N, C);
    }
    return [dx, ...dws];
  });
}

/**
 * The absorbed MLA attention of a CUDA decode step (src/nn/mla.ts): q [B, 1, H, D] (each head's query in the
 * latent space, D = kv_lora_rank + rope dims) over the latent cache [B, capacity, 1, D] (its rows [c_kv ; k_r],
 * float32 or bf16-packed), whose first `valueDim` columns are the values; row b sees columns [kvStart[b],
 * kvEnd[b]) (int32 [B] in device memory, so that a CUDA graph of the step replays at any column). Returns
 * [B, 1, H, valueDim]: what attention(q, keys, keys[..., :valueDim], { kvStart, scale }) computes over the
 * columns up to the step's. Not differentiable (decoding).
 */
export function mlaDecodeAttention(q: Tensor, cache: Tensor, kvStart: Tensor, kvEnd: Tensor, valueDim: number, scale: number, format: 'f32' | 'bf16' = 'f32'): Tensor {
  for (const t of [q, cache, kvStart, kvEnd]) if (t.device !== 'cuda') throw new Error(`mlaDecodeAttention: ${t} is on ${t.device}; it is a CUDA decoding op (on the CPU, use attention)`);
  const [B, Tq, H, D] = q.shape;
  const perWord = format === 'bf16' ? 2 : 1;
  const [Bc, capacity, heads, words] = cache.shape;
  if (q.ndim !== 4 || Tq !== 1 || Bc !== B || heads !== 1 || words * perWord !== D || !cache.isContiguous || valueDim > D || kvStart.size !== B || kvEnd.size !== B) {
    throw new Error(`mlaDecodeAttention: q ${q}, cache ${cache} (${format}), kvStart ${kvStart} and kvEnd ${kvEnd} do not fit [B, 1, H, D], [B, capacity, 1, D] and int32 [B]`);
  }
  const out = empty([B, 1, H, valueDim], 'f32', 'cuda');
  cudaBackend().mlaDecodeAttention(contiguous(q).floatData() as number, cache.floatData() as number, out.floatData() as number, contiguous(kvStart).intData() as number,
    contiguous(kvEnd).intData() as number, B, H, D, valueDim, capacity, scale, format === 'bf16');
  return out;
}
