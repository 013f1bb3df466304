// A task: a seeded generator (or loader) of examples, fixed held-out test sets, and the verifier that decides
// whether a completion solves an example. Tasks know nothing of models; the RL and eval code call them.
import type { Rng } from '../tensor/random.ts';

/** One problem. `question` goes into the R1-Zero template; `reference` is what the verifier checks against. */
export interface Example {
  /** Stable identifier (e.g. `countdown/test/17`), for reports and dedup. */
  id: string;
  question: string;
  /** The gold answer (a string for math answers; structured data for Countdown or code tests). */
  reference: unknown;
  /** Difficulty level the generator used, when it has levels. */
  level?: number;
}

/** What a verifier says about one completion. */
export interface Verdict {
  /** The completion's final answer as extracted (null when none could be found). */
  answer: string | null;
  correct: boolean;
  /** Partial credit in [0, 1] (code: the fraction of tests passed); absent means correct ? 1 : 0. */
  score?: number;
  /** Why it is not correct, when the verifier knows (code: compile_error, timeout, ...). */
  status?: string;
}

/** The reward value of a verdict: its partial credit when it has one, else 1 or 0. */
export function verdictScore(verdict: Verdict): number {
  return verdict.score ?? (verdict.correct ? 1 : 0);
}

/** One completion to verify against one example. */
export interface VerifyItem {
  completion: string;
  example: Example;
}

export interface Task {
  readonly name: string;
  readonly description: string;
  /** Training examples drawn with the given generator (infinite tasks) or sampled from a file (loaded tasks). */
  sample(rng: Rng, count: number): Example[];
  /** The fixed held-out test set: the same examples on every call and every machine. */
  testSet(size?: number): Example[];
  /** Extracts the final answer of a completion and checks it against the example's reference. */
  verify(completion: string, example: Example): Verdict;
  /**
   * Verifies many completions at once, when that is cheaper than one by one (code tasks run all the programs of a
   * GRPO step in parallel). Same verdicts as `verify` on each item.
   */
  verifyMany?(items: readonly VerifyItem[]): Verdict[];
}

/**
 * Verdicts of many completions, through `verifyMany` when the task has it. Nothing a completion contains can make
 * this throw: `verify` throwing on an item gives that item an incorrect verdict, and `verifyMany` handles every
 * completion itself; it throws only when the verifier is broken (a code task's sandbox failing), which must stop a
 * run rather than score every sample 0.
 */
export function verifyAll(task: Task, items: readonly VerifyItem[]): Verdict[] {
  if (task.verifyMany !== undefined) return items.length === 0 ? [] : task.verifyMany(items);
  return items.map(({ completion, example }) => {
    try {
      return task.verify(completion, example);
    } catch {
      return { answer: null, correct: false };
    }
  });
}
