// GRPO's mathematics (DeepSeekMath sec. 4.1; SPEC.md 1): group-relative advantages, the clipped ratio
// objective, the k3 KL estimator against a reference policy, and the loss aggregations of GRPO, BNPO, Dr. GRPO
// and DAPO. Pure functions over tensors: the trainer (src/rl/trainer.ts) supplies log-probabilities.
import { exp, maximum, minimum, mul, neg, sub, sum, tensor, type Tensor } from '../tensor/index.ts';

// ---------------------------------------------------------------------------------------------------------
// Advantages

export interface AdvantageOptions {
  /** Divide by the group's standard deviation (GRPO, DAPO) or not (Dr. GRPO). */
  scaleByStd: boolean;
  /** Added to the std (TRL uses 1e-4), so that a group of equal rewards gives advantages 0, not NaN. */
  epsStd: number;
  /** 'unbiased' divides the variance by G - 1 (torch.std's default, TRL), 'population' by G. */
  std: 'unbiased' | 'population';
}

export const defaultAdvantageOptions: AdvantageOptions = { scaleByStd: true, epsStd: 1e-4, std: 'unbiased' };

/**
 * A_i = (r_i - mean(group)) / (std(group) + eps) for consecutive groups of `groupSize` rewards
 * (outcome supervision: every token of sample i shares A_i).
 */
export function groupAdvantages(rewards: readonly number[], groupSize: number, options: AdvantageOptions = defaultAdvantageOptions): number[] {
  if (groupSize < 1 || rewards.length % groupSize !== 0) {
    throw new Error(`groupAdvantages: ${rewards.length} rewards do not split into groups of ${groupSize}`);
  }
  const out = new Array<number>(rewards.length);
  for (let g = 0; g < rewards.length; g += groupSize) {
    const group = rewards.slice(g, g + groupSize);
    const mean = group.reduce((a, b) => a + b, 0) / groupSize;
    const squares = group.reduce((a, r) => a + (r - mean) ** 2, 0);
    const denominator = options.std === 'unbiased' ? groupSize - 1 : groupSize;
    const std = denominator > 0 ? Math.sqrt(squares / denominator) : 0;
    for (let i = 0; i < groupSize; i++) {
      const centered = group[i] - mean;
      // A flat group has centered = 0 (and std = 0): its advantage is 0 even with epsStd = 0.
      out[g + i] = options.scaleByStd && centered !== 0 ? centered / (std + options.epsStd) : centered;
    }
  }
  return out;
}

/** Whether every reward of each group is the same (DAPO's dynamic sampling drops such groups: zero signal). */
export function flatGroups(rewards: readonly number[], groupSize: number): boolean[] {
  const flat: boolean[] = [];
  for (let g = 0; g < rewards.length; g += groupSize) {
    const group = rewards.slice(g, g + groupSize);
    flat.push(group.every((r) => r === group[0]));
  }
  return flat;
}

/**
 * DAPO's overlong reward shaping (DAPO eq. 13): within the soft window L_cache before L_max a length |y| adds
 * (L_max - L_cache - |y|) / L_cache, beyond L_max it adds -1, elsewhere 0.
 */
export function overlongPenalty(lengthTokens: number, maxLength: number, cacheLength: number): number {
  if (lengthTokens <= maxLength - cacheLength) return 0;
  if (lengthTokens <= maxLength) return (maxLength - cacheLength - lengthTokens) / cacheLength;
  return -1;
}

// ---------------------------------------------------------------------------------------------------------
// Per-token objective

export interface ObjectiveInputs {
  /** log pi_theta of each sampled token, [N, L], with gradient. */
  logpNew: Tensor;
  /** log pi_old of the same tokens (from sampling, or recomputed), [N, L]. */
  logpOld: Tensor;
  /** log pi_ref of the same tokens, [N, L]; null when beta = 0 (no reference forward at all). */
  logpRef: Tensor | null;
  /** One advantage per sequence, [N]. */
  advantages: readonly number[];
  /** 1 for completion tokens that count in the loss, 0 for padding and masked (e.g. overlong) samples, [N, L]. */
  mask: Tensor;
}

export interface ObjectiveOptions {
  /** Lower clip range: the ratio is clipped below at 1 - epsLow (PPO's eps; DAPO 0.2). */
  epsLow: number;
  /** Upper clip range: clipped above at 1 + epsHigh (DAPO's clip-higher uses 0.28). */
  epsHigh: number;
  /** KL coefficient; 0 turns the KL term (and the reference model) off. */
  beta: number;
}

export interface TokenTerms {
  /** -(min(rho A, clip(rho) A) - beta KL) per token, [N, L]: the quantity the aggregations average. */
  loss: Tensor;
  /** k3 KL estimate per token (detached values), [N, L], or null without a reference. */
  kl: Tensor | null;
  /** The ratio rho per token (detached values), [N, L]. */
  ratio: Tensor;
}

/**
 * The clipped surrogate with a KL penalty (DeepSeekMath eq. 3), negated into a loss, per token:
 *   rho = exp(logp_new - logp_old)
 *   l   = -( min(rho A, clip(rho, 1 - epsLow, 1 + epsHigh) A) - beta * (pi_ref/pi - log(pi_ref/pi) - 1) )
 * The KL term is DeepSeekMath eq. 4's unbiased, non-negative k3 estimator.
 */
export function tokenTerms(inputs: ObjectiveInputs, options: ObjectiveOptions): TokenTerms {
  const [N] = inputs.logpNew.shape;
  if (inputs.advantages.length !== N) throw new Error(`tokenTerms: ${inputs.advantages.length} advantages for ${N} sequences`);
  const advantages = tensor(inputs.advantages, [N, 1], inputs.logpNew.dtype);
  const ratio = exp(sub(inputs.logpNew, inputs.logpOld));
  const clipped = minimum(maximum(ratio, 1 - options.epsLow), 1 + options.epsHigh);
  const surrogate = minimum(mul(ratio, advantages), mul(clipped, advantages));
  let objective = surrogate;
  let kl: Tensor | null = null;
  if (options.beta !== 0) {
    if (!inputs.logpRef) throw new Error('tokenTerms: beta > 0 needs reference log-probabilities');
    const refMinusNew = sub(inputs.logpRef, inputs.logpNew);
    kl = sub(sub(exp(refMinusNew), refMinusNew), 1);
    objective = sub(surrogate, mul(kl, options.beta));
  }
  return { loss: neg(objective), kl: kl?.detach() ?? null, ratio: ratio.detach() };
}

/** Fraction of counted tokens whose clipped branch is the active one (its gradient is zero). */
export function clipFraction(ratio: Tensor, advantages: readonly number[], mask: Tensor, options: ObjectiveOptions): number {
  const [N, L] = ratio.shape;
  const r = ratio.toArray();
  const m = mask.toArray();
  let clipped = 0;
  let counted = 0;
  for (let i = 0; i < N; i++) {
    for (let t = 0; t < L; t++) {
      if (!m[i * L + t]) continue;
      counted++;
      const rho = r[i * L + t];
      if ((advantages[i] > 0 && rho > 1 + options.epsHigh) || (advantages[i] < 0 && rho < 1 - options.epsLow)) clipped++;
    }
  }
  return counted ? clipped / counted : 0;
}

// ---------------------------------------------------------------------------------------------------------
// Loss aggregation (SPEC.md 1's table): how token terms become one number. Every variant is written so that
// summing the losses of the micro-batches of one optimizer step gives the loss of the whole step's batch.

/** Sizes of the whole optimizer step's batch that a micro-batch's loss is normalised by. */
export interface AggregationContext {
  /** Sequences in the step's batch (all micro-batches). */
  sequences: number;
  /** Counted tokens (mask = 1) in the step's batch. */
  tokens: number;
  /** Number of micro-batches the step's batch is split into. */
  microBatches: number;
  /** The maximum completion length (Dr. GRPO's constant normaliser). */
  maxCompletionLength: number;
}

export type Aggregation = (loss: Tensor, mask: Tensor, context: AggregationContext) => Tensor;

export interface LossVariant {
  aggregate: Aggregation;
  /** Whether advantages are divided by the group std. */
  scaleByStd: boolean;
}

const maskedRowSums = (loss: Tensor, mask: Tensor): Tensor => sum(mul(loss, mask), 1);

export const lossVariants = {
  /** DeepSeekMath: mean over each sequence's tokens, then mean over sequences. */
  grpo: {
    scaleByStd: true,
    aggregate: (loss, mask, context) => {
      const lengths = Array.from(sum(mask, 1).toArray(), (n) => Math.max(n, 1));
      const perSequence = mul(maskedRowSums(loss, mask), tensor(lengths.map((n) => 1 / n), [lengths.length], loss.dtype));
      return mul(sum(perSequence), 1 / context.sequences);
    },
  },
  /** Sum over the micro-batch's tokens over their number, averaged over micro-batches. */
  bnpo: {
    scaleByStd: true,
    aggregate: (loss, mask, context) => {
      const tokens = Math.max(sum(mask).item(), 1);
      return mul(sum(mul(loss, mask)), 1 / (tokens * context.microBatches));
    },
  },
  /** Dr. GRPO: a constant normaliser (sequences x max completion length), no length or std bias. */
  dr_grpo: {
    scaleByStd: false,
    aggregate: (loss, mask, context) => mul(sum(mul(loss, mask)), 1 / (context.sequences * context.maxCompletionLength)),
  },
  /** DAPO: token-level mean over the whole step's batch. */
  dapo: {
    scaleByStd: true,
    aggregate: (loss, mask, context) => mul(sum(mul(loss, mask)), 1 / Math.max(context.tokens, 1)),
  },
} satisfies Record<string, LossVariant>;

export type LossType = keyof typeof lossVariants;

/** Mean of a per-token quantity over counted tokens (for metrics). */
export function maskedMean(values: Tensor, mask: Tensor): number {
  const v = values.toArray();
  const m = mask.toArray();
  let total = 0;
  let count = 0;
  for (let i = 0; i < v.length; i++) {
    if (m[i]) {
      total += v[i];
      count++;
    }
  }
  return count ? total / count : 0;
}


