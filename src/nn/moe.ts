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
// Routing, dispatch and the expert GEMMs are ops of the tensors' device (src/tensor/moe.ts): on a GPU the choice,
// the sort of the (token, slot) pairs by expert and the loads are kernels, and each expert's row range stays in
// device memory, so a MoE layer never waits for the host (nothing of [tokens, experts] is downloaded) and a decode
// step with MoE layers is recorded as a CUDA graph (src/generate/engine.ts).
import {
  add, binaryInPlace, copyInto, div, embedding, expertCounts, gather, groupedLinear, indexAdd, isGradEnabled, linear, moeDispatch, moeRoute, mul,
  keep, reshape, sigmoid, sum, swiglu, tensor, zeros, zerosLike, type Tensor,
} from '../tensor/index.ts';
import { UserError } from '../util/errors.ts';
import { SwiGluMlp } from './mlp.ts';
import { initialWeight, Module, type WeightInit } from './module.ts';

export { selectExperts } from '../tensor/index.ts';

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
 * Gates [n, K] of the chosen experts (int32 [n, K], moeRoute) (V3 eq. 13 and 11): their unbiased scores,
 * normalised over the K when normTopkProb (the 1e-20 is transformers'), times routedScalingFactor.
 * Differentiable in scores.
 */
export function expertGates(scores: Tensor, experts: Tensor, c: MoeConfig): Tensor {
  const chosen = gather(scores, 1, experts, 'in range');
  const normalised = c.normTopkProb ? div(chosen, add(sum(chosen, -1, true), 1e-20)) : chosen;
  return mul(normalised, c.routedScalingFactor);
}

// ---------------------------------------------------------------------------------------------------------
// The block, over explicit weights (DeepSeekMoE.forward runs this with its modules; the float64 gradient
// check runs it with float64 weights).

export interface MoeParts {
  /** Router weight [E, C] (mlp.gate.weight). */
  routerWeight: Tensor;
  /** Selection bias [E] (mlp.gate.e_score_correction_bias): steers the choice, gets no gradient. */
  bias: Tensor;
  /** The routed experts' SwiGLU weights, expert e's at index e: gate and up [I, C], down [C, I]. */
  experts: { gate: readonly Tensor[]; up: readonly Tensor[]; down: readonly Tensor[] };
  /** The shared experts on x [..., C], or null when there are none. */
  shared: ((x: Tensor) => Tensor) | null;
}

export interface MoeOutput {
  /** shared(x) + sum_k g_k expert_k(x), shaped like x (V3 eq. 12 without the residual). */
  output: Tensor;
  /** alpha * L_Bal (V3 eq. 17), averaged over the sequences; null when alpha is 0. */
  balanceLoss: Tensor | null;
  /** Tokens routed to each expert by this forward, float [E] on x's device; null when no gradient is recorded (not counted then). */
  load: Tensor | null;
}

/**
 * DeepSeekMoE on x [B, T, C] (or [n, C], one sequence). Tokens are grouped by expert so that each expert runs
 * on the block of its tokens: one gather brings every (token, expert) pair's row into expert order
 * (moeDispatch), the experts' SwiGLUs are three grouped GEMMs over those blocks, and the results are scaled by
 * their gates and added into the shared experts' output in token order with one indexAdd. Gradients reach x,
 * the experts and, through the gates, the router weight. Every step stays on x's device (src/tensor/moe.ts).
 */
export function moeForward(x: Tensor, parts: MoeParts, c: MoeConfig, seqBalanceWeight = 0): MoeOutput {
  const C = x.shape[x.ndim - 1];
  const n = x.size / C;
  const E = c.numRoutedExperts;
  const K = c.numExpertsPerToken;
  const flat = reshape(x, [n, C]);
  // V3 eq. 15; transformers computes router logits in float32, as we do for float32 models.
  const scores = sigmoid(linear(flat, parts.routerWeight));
  const experts = moeRoute(scores, parts.bias, c);
  const gates = expertGates(scores, experts, c);
  const { offsets, tokenOfRow, slotOfRow } = moeDispatch(experts, E);
  const rows = embedding(flat, tokenOfRow, 'in range');
  const { gate, up, down } = parts.experts;
  const expertOut = groupedLinear(swiglu(groupedLinear(rows, gate, offsets), groupedLinear(rows, up, offsets)), down, offsets);
  const rowGates = embedding(reshape(gates, [n * K, 1]), slotOfRow, 'in range');
  // The gated expert rows are added into the shared experts' output (or zeros) in token order.
  const base = parts.shared ? reshape(parts.shared(flat), [n, C]) : zeros([n, C], x.dtype, x.device);
  const output = reshape(indexAdd(base, tokenOfRow, mul(expertOut, rowGates), 'in range'), x.shape);
  const balanceLoss = seqBalanceWeight > 0 ? sequenceBalanceLoss(scores, x.ndim === 3 ? x.shape[0] : 1, c, seqBalanceWeight) : null;
  const load = isGradEnabled() ? reshape(expertCounts(experts, E, 1, x.dtype === 'f64' ? 'f64' : 'f32'), [E]) : null;
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
  const T = scores.shape[0] / sequences;
  const unbiasedTopK = moeRoute(scores, zeros([E], scores.dtype, scores.device), { ...c, numGroups: 1, topkGroup: 1 });
  const f = mul(expertCounts(unbiasedTopK, E, sequences, scores.dtype === 'f64' ? 'f64' : 'f32'), E / (K * T));
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
  /**
   * Tokens routed to each expert by the forwards since the last updateBias() (grad-enabled forwards only), float
   * [E] on the device of the forwards (counted there: no download per forward); null before the first.
   */
  private pending: Tensor | null = null;
  balance: MoeBalance;

  constructor(readonly config: MoeConfig, rng: WeightInit, balance: Partial<MoeBalance> = {}) {
    super();
    const c = config;
    // Registration order and names are transformers' DeepseekV3MoE's: experts, gate, shared_experts.
    this.experts = Array.from({ length: c.numRoutedExperts }, (_, i) => this.module(`experts.${i}`, new SwiGluMlp(c.hiddenSize, c.moeIntermediateSize, rng)));
    this.gate = this.module('gate', new TopkRouter(c, rng));
    this.sharedExperts = c.numSharedExperts > 0 ? this.module('shared_experts', new SwiGluMlp(c.hiddenSize, c.moeIntermediateSize * c.numSharedExperts, rng)) : null;
    this.balance = { ...defaultMoeBalance, ...balance };
  }

  forward(x: Tensor): { output: Tensor; balanceLoss: Tensor | null } {
    const shared = this.sharedExperts;
    const { output, balanceLoss, load } = moeForward(x, {
      routerWeight: this.gate.weight,
      bias: this.gate.bias,
      experts: {
        gate: this.experts.map((e) => e.gateProj.weight),
        up: this.experts.map((e) => e.upProj.weight),
        down: this.experts.map((e) => e.downProj.weight),
      },
      shared: shared ? (h) => shared.forward(h) : null,
    }, this.config, isGradEnabled() ? this.balance.seqBalanceWeight : 0);
    if (load) this.countLoad(load);
    return { output, balanceLoss };
  }

  /** Adds a forward's load (float [E]) to the counts of the coming updateBias(). */
  countLoad(load: Tensor): void {
    if (this.pending === null || this.pending.device !== load.device || this.pending.dtype !== load.dtype) {
      this.pending = keep(zerosLike(load));
    }
    binaryInPlace('add', this.pending, load);
  }

  /** The counts since the last updateBias() (a download on a GPU). */
  pendingLoad(): number[] {
    return this.pending ? Array.from(this.pending.toArray()) : new Array<number>(this.config.numRoutedExperts).fill(0);
  }

  /**
   * Auxiliary-loss-free balancing (V3 sec. 2.1.2): b_i += gamma * sign(mean load - load_i) with the loads
   * counted since the last call (one optimizer step's batch), which are then cleared. Exact ties with the mean
   * leave b_i alone. Returns the step's load statistics, or null when no token was counted. The counts come
   * to the host once per optimizer step (the statistics are the step's metrics), not once per forward.
   */
  updateBias(): MoeLoadStats | null {
    const load = this.pendingLoad();
    if (this.pending) binaryInPlace('mul', this.pending, 0);
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
