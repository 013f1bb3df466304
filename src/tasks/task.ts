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
}
