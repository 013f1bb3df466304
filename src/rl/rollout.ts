// Rollouts: the sampling half of a GRPO step (DESIGN.md, "Data flow of one GRPO step"). Draw prompts from the
// prompt sources, sample G completions each from the old policy, score them with their source's weighted
// rewards (SPEC.md 3), and, with DAPO's dynamic sampling (DAPO sec. 3.2), drop groups whose rewards are all
// equal and sample more prompts until the batch is full or the round limit is reached.
//
// Several sources (R1's reasoning RL and its RL for all scenarios mix math, code, logic and general prompts, each
// with its own rewards): each prompt's source is drawn by the sources' weights among those active at the step
// (a source may start later: R1 adds general data in its last 400 steps); one source draws exactly as a lone
// task always has, so a single-source run does not depend on this.
import { generate } from '../generate/engine.ts';
import type { CausalLM } from '../models/pretrained.ts';
import { scoreSample, type WeightedReward } from '../rewards/reward.ts';
import { verifyAll, type Example, type Task, type Verdict } from '../tasks/task.ts';
import type { Rng } from '../tensor/random.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { flatGroups, overlongPenalty } from './grpo.ts';

export interface RolloutOptions {
  /** Prompts (groups) per step: P. */
  promptsPerStep: number;
  /** Completions per prompt: G. */
  groupSize: number;
  maxNewTokens: number;
  /** Sampling temperature of the old policy (R1-Zero: 1.0). */
  temperature: number;
  topP: number;
  /** DAPO dynamic sampling: keep only groups whose rewards differ. */
  dynamicSampling: boolean;
  /** Sampling rounds per step at most when dynamic sampling keeps refilling the batch. */
  maxSamplingRounds: number;
  /** DAPO overlong reward shaping (eq. 13): the soft window L_cache in tokens, 0 = off. */
  overlongCacheTokens: number;
}

/** A prompt source: how a rollout draws examples, turns them into the model's prompt, and scores completions. */
export interface RolloutTask {
  /** Name in the per-source metrics. */
  name: string;
  /** Relative share of the prompts (default 1). */
  weight?: number;
  /** First step (1-based) whose prompts may come from this source (default 1). */
  fromStep?: number;
  task: Task;
  /** The prompt text for a question (the R1-Zero template, SPEC.md 2). */
  prompt: (question: string) => string;
  rewards: readonly WeightedReward[];
  /** Whether a completion follows the output format (for the format-rate metric). */
  isFormatted: (completion: string) => boolean;
}

/** One sampled completion with everything the loss and the metrics need. */
export interface Sample {
  /** The source's name. */
  source: string;
  group: number;
  example: Example;
  promptIds: number[];
  completionIds: number[];
  text: string;
  /** The completion hit maxNewTokens without stopping (overlong filtering masks these out of the loss). */
  truncated: boolean;
  /** Weighted sum of the reward components, plus the overlong shaping term when it is on. */
  reward: number;
  /** Unweighted value of each component by name (and `overlong` when shaping is on). */
  parts: Record<string, number>;
  /** Components that threw or returned a non-finite value (they scored 0). */
  failedRewards: string[];
  correct: boolean;
  formatted: boolean;
}

export interface Rollout {
  /** The groups kept for training, G consecutive samples per group. */
  samples: Sample[];
  /** Every sample drawn this step, kept or not: what the policy does, for the metrics. */
  drawn: Sample[];
  /** Groups dropped by dynamic sampling. */
  droppedGroups: number;
  rounds: number;
}

/**
 * Samples one step's batch (`step` is 1-based). `rng` draws the sources, the examples and every completion's
 * seed, so a seed fixes the step.
 */
export function sampleRollout(model: CausalLM, tokenizer: Tokenizer, sources: readonly RolloutTask[], options: RolloutOptions, rng: Rng, step: number): Rollout {
  const active = sources.filter((s) => (s.fromStep ?? 1) <= step);
  if (active.length === 0) throw new UserError(`step ${step}: no prompt source is active yet (fromStep: ${sources.map((s) => `${s.name} ${s.fromStep ?? 1}`).join(', ')})`);
  const G = options.groupSize;
  const kept: Sample[] = [];
  const drawn: Sample[] = [];
  let droppedGroups = 0;
  let rounds = 0;
  let groupIndex = 0;
  while (kept.length < options.promptsPerStep * G && rounds < Math.max(1, options.maxSamplingRounds)) {
    rounds++;
    const picked = drawExamples(active, options.promptsPerStep - kept.length / G, rng);
    const examples = picked.map((d) => d.example);
    const prompts = picked.map(({ source, example }) => tokenizer.encode(source.prompt(example.question)));
    const requests = examples.flatMap((_, e) => Array.from({ length: G }, () => ({ prompt: prompts[e], seed: rng.nextUint32() })));
    // The whole round (P x G requests) is queued in one call: the engine keeps its rows (64 by default) busy,
    // a finished completion's row taken at once by the next queued request.
    const results = generate(model, tokenizer, requests, { maxNewTokens: options.maxNewTokens, temperature: options.temperature, topP: options.topP });
    const texts = results.map((result) => result.text + (result.stopString ?? ''));
    // Each source's share of the round is verified in one call, so a code task runs its programs in parallel.
    const verdicts = verifyBySource(picked, texts, G);
    const round = results.map((result, i): Sample => {
      const e = Math.floor(i / G);
      return scoreCompletion(picked[e].source, examples[e], groupIndex + e, prompts[e], result.tokenIds, texts[i], result.finishReason === 'length', options, verdicts[i]);
    });
    groupIndex += examples.length;
    drawn.push(...round);
    const flat = flatGroups(round.map((s) => s.reward), G);
    for (let g = 0; g < examples.length; g++) {
      if (options.dynamicSampling && flat[g]) droppedGroups++;
      else kept.push(...round.slice(g * G, (g + 1) * G));
    }
    if (!options.dynamicSampling) break;
  }
  return { samples: kept, drawn, droppedGroups, rounds };
}

/**
 * `count` examples with their sources: all from the one source when there is one (a single task.sample call),
 * else each prompt's source drawn by weight, then each source's examples drawn in one call, in source order.
 */
function drawExamples(sources: readonly RolloutTask[], count: number, rng: Rng): Array<{ source: RolloutTask; example: Example }> {
  if (sources.length === 1) return sources[0].task.sample(rng, count).map((example) => ({ source: sources[0], example }));
  const weights = sources.map((s) => s.weight ?? 1);
  const total = weights.reduce((a, b) => a + b, 0);
  const counts = sources.map(() => 0);
  for (let i = 0; i < count; i++) {
    let u = rng.uniform() * total;
    let j = 0;
    while (j < sources.length - 1 && u >= weights[j]) u -= weights[j++];
    counts[j]++;
  }
  return sources.flatMap((source, j) => (counts[j] > 0 ? source.task.sample(rng, counts[j]).map((example) => ({ source, example })) : []));
}

/** The task verdicts of a round's completions (G per picked example), one verifyAll call per source. */
function verifyBySource(picked: ReadonlyArray<{ source: RolloutTask; example: Example }>, texts: readonly string[], G: number): Verdict[] {
  const verdicts = new Array<Verdict>(texts.length);
  const bySource = new Map<RolloutTask, number[]>();
  texts.forEach((_, i) => {
    const { source } = picked[Math.floor(i / G)];
    if (!bySource.has(source)) bySource.set(source, []);
    bySource.get(source)!.push(i);
  });
  for (const [source, indices] of bySource) {
    const found = verifyAll(source.task, indices.map((i) => ({ completion: texts[i], example: picked[Math.floor(i / G)].example })));
    indices.forEach((i, k) => {
      verdicts[i] = found[k];
    });
  }
  return verdicts;
}

/**
 * Rewards, correctness and format of one completion, given the task's verdict on it; nothing a completion contains
 * can make this throw.
 */
export function scoreCompletion(source: RolloutTask, example: Example, group: number, promptIds: number[], completionIds: number[], text: string, truncated: boolean, options: Pick<RolloutOptions, 'maxNewTokens' | 'overlongCacheTokens'>, verdict: Verdict): Sample {
  const breakdown = scoreSample(source.rewards, { prompt: source.prompt(example.question), question: example.question, completion: text, reference: example.reference, verdict });
  let reward = breakdown.total;
  const parts = { ...breakdown.parts };
  if (options.overlongCacheTokens > 0) {
    // The length limit is maxNewTokens, so a completion is never longer than L_max; a truncated one (it
    // did not finish) counts as beyond it: -1 (DAPO eq. 13).
    const shaping = truncated ? -1 : overlongPenalty(completionIds.length, options.maxNewTokens, options.overlongCacheTokens);
    parts.overlong = shaping;
    reward += shaping;
  }
  return {
    source: source.name, group, example, promptIds, completionIds, text, truncated, reward, parts, failedRewards: breakdown.failed,
    correct: verdict.correct,
    formatted: safely(() => source.isFormatted(text)),
  };
}

function safely(check: () => boolean): boolean {
  try {
    return check() === true;
  } catch {
    return false;
  }
}
