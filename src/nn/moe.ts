// DeepSeekMoE with auxiliary-loss-free load balancing (DeepSeek-V3 report sec. 2.1.2, eq. 12-20; SPEC.md 6):
// shared experts run on every token; each token also goes to K of E routed experts, picked by sigmoid
// affinity plus a per-expert bias that only steers the choice; the picked experts' outputs are summed with
// gates made from the unbiased affinities. After each optimizer step the bias moves against the load each
// expert got, which balances the experts without an auxiliary loss in the gradient.
//
// Routing follows transformers 5.17's DeepseekV3TopkRouter exactly (checked against it on a fixture,
// test/nn/fixtures/hf-moe.json): scores s = sigmoid(x W^T) computed from float32; choice scores s + b; the
// experts form n_group groups, each scored by the sum of its two best choice scores; the best topk_group
// groups are kept and the others masked with -inf (as SPEC.md 6 and DeepSeek's reference code; transformers
// 4.x used 0.0, which differs once biases push choice scores below 0; the paper does not say); the K best
// masked choice scores pick the experts; the gates are their s, divided by their sum (+1e-20) when
// norm_topk_prob, times routed_scaling_factor.
//
// Using it from a model (src/models/deepseek.ts):
//
//   const mlp = this.module('mlp', new DeepSeekMoE(moeConfig, rng));   // HF names: mlp.gate.weight,
//   //   mlp.gate.e_score_correction_bias, mlp.experts.{i}.{gate,up,down}_proj.weight, mlp.shared_experts.*
//   const { output, balanceLoss } = mlp.forward(h);   // h [B, T, C] (post-attention norm) -> output [B, T, C];
//   x = add(x, output);                                // the residual is the layer's, as for SwiGluMlp
//   // balanceLoss is null unless balance.seqBalanceWeight > 0: then add the sum over MoE layers to the loss
//   // (V3 eq. 17; each layer's is already weighted by alpha and averaged over the B sequences).
//
//   After each optimizer step, call `mlp.updateBias()` on every MoE layer (the model's `afterStep()`), which
//   moves the biases with the loads counted by the forwards since the last call (all micro-batches of the
//   step) and returns that step's MoeLoadStats for the metrics. Forwards under noGrad (validation, sampling)
//   are not counted. The bias is registered among the parameters (so checkpoints and HF folders carry it)
//   but has requiresGrad false: it never gets a gradient, and AdamW skips it. Routed experts that got no token
//   in a step get no gradient either.
//
// On a GPU the routing choice runs on the host: the scores [n, E] and the bias [E] are downloaded (small next to
// the expert GEMMs), and the sorted token order goes back up as int32 index arrays.
import {
  add, concat, copyInto, div, embedding, gather, indexAdd, isGradEnabled, linear, mul, reshape, sigmoid, slice, sum,
  tensor, zeros, type Tensor,
} from '../tensor/index.ts';
import { allocHost, type FloatArray } from '../tensor/backend.ts';
import { UserError } from '../util/errors.ts';
import { SwiGluMlp } from './mlp.ts';
import { initialWeight, Module, type WeightInit } from './module.ts';

/** The MoE fields of a DeepseekV3 config.json (Hugging Face names in the comments). */
export interface MoeConfig {
  hiddenSize: number;
  /** Intermediate size of one routed expert (moe_intermediate_size); the shared block is numSharedExperts times as wide. */
  moeIntermediateSize: number;
  /** n_routed_experts */
  numRoutedExperts: number;
  /** n_shared_experts (0: none) */
  numSharedExperts: number;
  /** num_experts_per_tok: K, routed experts per token */
  numExpertsPerToken: number;
  /** n_group: groups the routed experts are split into for group-limited routing (1: plain top-K). */
  numGroups: number;
  /** topk_group: groups a token may use */
  topkGroup: number;
  /** norm_topk_prob: divide the K gates by their sum */
  normTopkProb: boolean;
  /** routed_scaling_factor */
  routedScalingFactor: number;
}

/** Training-time balancing (V3 sec. 2.1.2 and eq. 17-20); not part of the checkpoint. */
export interface MoeBalance {
  /** gamma of the bias update b_i += gamma * sign(mean load - load_i); 0 freezes the biases (V3: 0.001, then 0). */
  biasUpdateSpeed: number;
  /** alpha of the complementary sequence-wise balance loss; 0 (default) computes none (V3: 0.0001). */
  seqBalanceWeight: number;
}

export const defaultMoeBalance: MoeBalance = { biasUpdateSpeed: 0.001, seqBalanceWeight: 0 };

/** Checks that the routing fields fit together; `where` names the file or flag set in the error. */
export function validateMoeConfig(c: MoeConfig, where: string): void {
  const positive = ['hiddenSize', 'moeIntermediateSize', 'numRoutedExperts', 'numExpertsPerToken', 'numGroups', 'topkGroup'] as const;
  for (const field of positive) {
    const v = c[field];
    if (!Number.isInteger(v) || v <= 0) throw new UserError(`${where}: ${field} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (!Number.isInteger(c.numSharedExperts) || c.numSharedExperts < 0) throw new UserError(`${where}: numSharedExperts must be a non-negative integer, got ${c.numSharedExperts}`);
  if (c.numRoutedExperts % c.numGroups !== 0) throw new UserError(`${where}: numRoutedExperts (${c.numRoutedExperts}) must be a multiple of numGroups (${c.numGroups})`);
  const groupSize = c.numRoutedExperts / c.numGroups;
  // A group is scored by its two best experts (transformers takes topk(2) within each group).
  if (c.numGroups > 1 && groupSize < 2) throw new UserError(`${where}: each of the ${c.numGroups} groups must hold at least 2 experts`);
  if (c.topkGroup > c.numGroups) throw new UserError(`${where}: topkGroup (${c.topkGroup}) exceeds numGroups (${c.numGroups})`);
  if (c.numExpertsPerToken > c.topkGroup * groupSize) {
    throw new UserError(`${where}: numExpertsPerToken (${c.numExpertsPerToken}) exceeds the ${c.topkGroup * groupSize} experts of the ${c.topkGroup} kept groups`);
  }
  if (!(c.routedScalingFactor > 0)) throw new UserError(`${where}: routedScalingFactor must be positive, got ${c.routedScalingFactor}`);
}

// ---------------------------------------------------------------------------------------------------------
// Routing: which experts each token goes to (no gradient: a choice), then the gates (differentiable).

/**
 * The K experts of each of n tokens, from sigmoid scores [n, E] and the selection bias [E], as transformers
 * 5.17 chooses them (header). Returns int32 [n * K]: token t's experts at [t*K, t*K + K), in increasing id
 * order. Float32 scores are added and summed in float32 as torch does, so near-ties resolve the same way;
 * exact ties go to the lower expert id (or group id).
 */
export function selectExperts(scores: FloatArray, bias: FloatArray, n: number, c: MoeConfig): Int32Array {
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

/**
 * Gates [n, K] of the chosen experts (V3 eq. 13 and 11): their unbiased scores, normalised over the K when
 * normTopkProb (the 1e-20 is transformers'), times routedScalingFactor. Differentiable in scores.
 */
export function expertGates(scores: Tensor, experts: Int32Array, c: MoeConfig): Tensor {
  const n = scores.shape[0];
  const chosen = gather(scores, 1, tensor(experts, [n, c.numExpertsPerToken], 'i32', scores.device));
  const normalised = c.normTopkProb ? div(chosen, add(sum(chosen, -1, true), 1e-20)) : chosen;
  return mul(normalised, c.routedScalingFactor);
}

// ---------------------------------------------------------------------------------------------------------
// The block, over explicit weights (DeepSeekMoE.forward runs this with its modules; the float64 gradient
// check runs it with float64 weights).

export interface MoeParts {
  /** Router weight [E, C] (mlp.gate.weight). */
  routerWeight: Tensor;
  /** Selection bias [E] (mlp.gate.e_score_correction_bias), read as numbers: no gradient reaches it. */
  bias: FloatArray;
  /** Routed expert e on a block of rows [n, C]. */
  expert(e: number, rows: Tensor): Tensor;
  /** The shared experts on x [..., C], or null when there are none. */
  shared: ((x: Tensor) => Tensor) | null;
}

export interface MoeOutput {
  /** shared(x) + sum_k g_k expert_k(x), shaped like x (V3 eq. 12 without the residual). */
  output: Tensor;
  /** alpha * L_Bal (V3 eq. 17), averaged over the sequences; null when alpha is 0. */
  balanceLoss: Tensor | null;
  /** Tokens routed to each expert by this forward [E]. */
  load: Float64Array;
}

/**
 * DeepSeekMoE on x [B, T, C] (or [n, C], one sequence). Tokens are grouped by expert so that each expert runs
 * once on the block of its tokens: one gather brings every (token, expert) pair's row into expert order, each
 * expert's SwiGLU is three GEMMs on its slice, the results are scaled by their gates and added back into token
 * order with one indexAdd. Gradients reach x, the experts and, through the gates, the router weight.
 */
export function moeForward(x: Tensor, parts: MoeParts, c: MoeConfig, seqBalanceWeight = 0): MoeOutput {
  const C = x.shape[x.ndim - 1];
  const n = x.size / C;
  const E = c.numRoutedExperts;
  const K = c.numExpertsPerToken;
  const flat = reshape(x, [n, C]);
  // V3 eq. 15; transformers computes router logits in float32, as we do for float32 models.
  const scores = sigmoid(linear(flat, parts.routerWeight));
  const experts = selectExperts(scores.hostValues() as FloatArray, parts.bias, n, c);
  const gates = expertGates(scores, experts, c);

  // Counting sort of the n*K (token, slot) pairs by expert, tokens in increasing order within an expert.
  const load = new Float64Array(E);
  for (const e of experts) load[e]++;
  const start = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) start[e + 1] = start[e] + load[e];
  const tokenOfRow = new Int32Array(n * K);
  const slotOfRow = new Int32Array(n * K);
  const next = start.slice(0, E);
  for (let slot = 0; slot < n * K; slot++) {
    const row = next[experts[slot]]++;
    tokenOfRow[row] = Math.floor(slot / K);
    slotOfRow[row] = slot;
  }
  const tokenIds = tensor(tokenOfRow, [n * K], 'i32', x.device);
  const rows = embedding(flat, tokenIds);
  const outputs: Tensor[] = [];
  for (let e = 0; e < E; e++) {
    if (load[e] > 0) outputs.push(parts.expert(e, slice(rows, 0, start[e], start[e + 1])));
  }
  const expertOut = outputs.length === 1 ? outputs[0] : concat(outputs, 0);
  const rowGates = embedding(reshape(gates, [n * K, 1]), tensor(slotOfRow, [n * K], 'i32', x.device));
  const routed = indexAdd(zeros([n, C], x.dtype, x.device), tokenIds, mul(expertOut, rowGates));
  const combined = parts.shared ? add(routed, reshape(parts.shared(flat), [n, C])) : routed;
  const output = reshape(combined, x.shape);
  const balanceLoss = seqBalanceWeight > 0 ? sequenceBalanceLoss(scores, x.ndim === 3 ? x.shape[0] : 1, c, seqBalanceWeight) : null;
  return { output, balanceLoss, load };
}

/**
 * Complementary sequence-wise balance loss (V3 eq. 17-20), averaged over the B sequences of scores [B*T, E]:
 * alpha * sum_i f_i P_i with f_i = E / (K T) * (tokens whose top-K holds i) and P_i the mean over the
 * sequence of s_i normalised over all E experts. The top-K is eq. 18's as printed, over the unbiased scores
 * with no group limit (the routed experts, chosen with the bias, are the other reading; SPEC reference 5.4).
 * f is a count and carries no gradient; P carries it to the router.
 */
export function sequenceBalanceLoss(scores: Tensor, sequences: number, c: MoeConfig, alpha: number): Tensor {
  const E = c.numRoutedExperts;
  const K = c.numExpertsPerToken;
  const n = scores.shape[0];
  const T = n / sequences;
  const unbiasedTopK = selectExperts(scores.hostValues() as FloatArray, new Float64Array(E), n, { ...c, numGroups: 1, topkGroup: 1 });
  const fData = allocHost(scores.dtype, sequences * E);
  for (let t = 0; t < n; t++) {
    const b = Math.floor(t / T);
    for (let k = 0; k < K; k++) fData[b * E + unbiasedTopK[t * K + k]] += E / (K * T);
  }
  const f = tensor(fData, [sequences, E], scores.dtype, scores.device);
  const normalised = div(scores, sum(scores, -1, true));
  const P = mul(sum(reshape(normalised, [sequences, T, E]), 1), 1 / T);
  return mul(sum(mul(f, P)), alpha / sequences);
}

// ---------------------------------------------------------------------------------------------------------
// Modules

/** max_i load_i / mean load over one training step, and the loads (tokens per expert). */
export interface MoeLoadStats {
  maxLoadRatio: number;
  load: number[];
}

/** mlp.gate: the router's weight and its selection bias (a buffer in transformers, `e_score_correction_bias`). */
export class TopkRouter extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(c: MoeConfig, rng: WeightInit) {
    super();
    // Normal(0, 0.02) as transformers' _init_weights (initializer_range); the bias starts at 0.
    this.weight = this.parameter('weight', initialWeight([c.numRoutedExperts, c.hiddenSize], rng, 0.02));
    this.bias = this.parameter('e_score_correction_bias', zeros([c.numRoutedExperts]));
    this.bias.requiresGrad = false;
  }
}

export class DeepSeekMoE extends Module {
  readonly experts: SwiGluMlp[];
  readonly gate: TopkRouter;
  readonly sharedExperts: SwiGluMlp | null;
  /** Tokens routed to each expert by the forwards since the last updateBias() (grad-enabled forwards only). */
  readonly pendingLoad: Float64Array;
  balance: MoeBalance;

  constructor(readonly config: MoeConfig, rng: WeightInit, balance: Partial<MoeBalance> = {}) {
    super();
    const c = config;
    // Registration order and names are transformers' DeepseekV3MoE's: experts, gate, shared_experts.
    this.experts = Array.from({ length: c.numRoutedExperts }, (_, i) => this.module(`experts.${i}`, new SwiGluMlp(c.hiddenSize, c.moeIntermediateSize, rng)));
    this.gate = this.module('gate', new TopkRouter(c, rng));
    this.sharedExperts = c.numSharedExperts > 0 ? this.module('shared_experts', new SwiGluMlp(c.hiddenSize, c.moeIntermediateSize * c.numSharedExperts, rng)) : null;
    this.pendingLoad = new Float64Array(c.numRoutedExperts);
    this.balance = { ...defaultMoeBalance, ...balance };
  }

  forward(x: Tensor): { output: Tensor; balanceLoss: Tensor | null } {
    const shared = this.sharedExperts;
    const { output, balanceLoss, load } = moeForward(x, {
      routerWeight: this.gate.weight,
      bias: this.gate.bias.hostValues() as FloatArray,
      expert: (e, rows) => this.experts[e].forward(rows),
      shared: shared ? (h) => shared.forward(h) : null,
    }, this.config, isGradEnabled() ? this.balance.seqBalanceWeight : 0);
    if (isGradEnabled()) for (let e = 0; e < load.length; e++) this.pendingLoad[e] += load[e];
    return { output, balanceLoss };
  }

  /**
   * Auxiliary-loss-free balancing (V3 sec. 2.1.2): b_i += gamma * sign(mean load - load_i) with the loads
   * counted since the last call (one optimizer step's batch), which are then cleared. Exact ties with the mean
   * leave b_i alone. Returns the step's load statistics, or null when no token was counted.
   */
  updateBias(): MoeLoadStats | null {
    const load = Array.from(this.pendingLoad);
    this.pendingLoad.fill(0);
    const total = load.reduce((a, b) => a + b, 0);
    if (total === 0) return null;
    const mean = total / load.length;
    const gamma = this.balance.biasUpdateSpeed;
    if (gamma !== 0) {
      const bias = this.gate.bias;
      const values = bias.toArray();
      for (let e = 0; e < load.length; e++) values[e] += gamma * Math.sign(mean - load[e]);
      copyInto(tensor(values, bias.shape, bias.dtype, bias.device), bias);
    }
    return { maxLoadRatio: Math.max(...load) / mean, load };
  }
}
