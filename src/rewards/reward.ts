// Rewards are plain functions (SPEC.md 3): (prompt, completion, reference) -> number, composed with weights.
// A reward that throws or returns a non-finite number scores 0 for that sample and the failure is counted,
// so one bad completion never crashes a run.
import type { Verdict } from '../tasks/task.ts';

/** What a reward sees of one sample. */
export interface RewardInput {
  /** The prompt as given to the model (after the template). */
  prompt: string;
  /** The question before the template, when the caller has it (a reward model reads the conversation). */
  question?: string;
  /** The sampled completion text (without the prompt). */
  completion: string;
  /** The reference answer or test data of the example (task-specific; a string for math answers). */
  reference: unknown;
  /**
   * The task verifier's verdict on this completion, when the caller already has it: rollouts verify a whole round
   * at once (code tasks run its programs in parallel), so the accuracy reward reads the verdict instead of running
   * the verifier again.
   */
  verdict?: Verdict;
}

export type RewardFn = (input: RewardInput) => number;

export interface WeightedReward {
  /** Name used in metrics (`reward/<name>`). */
  name: string;
  fn: RewardFn;
  weight: number;
}

export interface RewardBreakdown {
  total: number;
  /** Unweighted value of each component, by name. */
  parts: Record<string, number>;
  /** Names of components that threw or returned a non-finite value (scored 0). */
  failed: string[];
}

/** Sums weighted components; a component that throws or gives NaN/Infinity counts 0 and is reported. */
export function scoreSample(rewards: readonly WeightedReward[], input: RewardInput): RewardBreakdown {
  const parts: Record<string, number> = {};
  const failed: string[] = [];
  let total = 0;
  for (const { name, fn, weight } of rewards) {
    let value: number;
    try {
      value = fn(input);
    } catch {
      value = Number.NaN;
    }
    if (!Number.isFinite(value)) {
      failed.push(name);
      value = 0;
    }
    parts[name] = value;
    total += weight * value;
  }
  return { total, parts, failed };
}
