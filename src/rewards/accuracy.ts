// Accuracy rewards (SPEC.md 3): 1 when the completion's final answer is correct, 0 otherwise. R1-Zero's rule
// requires the answer in a fixed place (inside <answer>, or \boxed{} for math) and checks it for mathematical
// equivalence with the reference (answer.ts); "Reward_rule = Reward_acc + Reward_format" with equal weights (NAT
// eq. 4, r1-spec-detail 2.2).
import { verdictScore, type Example, type Task, type Verdict } from '../tasks/task.ts';
import { checkAnswer } from './answer.ts';
import type { AnswerPlace } from './extract.ts';
import type { RewardFn } from './reward.ts';

/** A verifier of a completion against an example's reference: a Verdict or a plain boolean. */
export type AnswerVerifier = (completion: string, reference: unknown) => Verdict | boolean;

/** Wraps a verifier into a reward: 1 when it says correct, 0 otherwise (a verifier that throws scores 0 in scoreSample). */
export function accuracyReward(verify: AnswerVerifier): RewardFn {
  return ({ completion, reference }) => {
    const verdict = verify(completion, reference);
    return (typeof verdict === 'boolean' ? verdict : verdict.correct) ? 1 : 0;
  };
}

/**
 * The accuracy reward of a task: its own verifier's verdict (the one the caller passes in `verdict`, else a fresh
 * one), scored with its partial credit when it has one (code: the fraction of tests passed). A reward sees only the
 * reference, so the verifier gets an Example holding that reference (task verifiers read `example.reference` alone).
 */
export function taskAccuracyReward(task: Task): RewardFn {
  return ({ completion, reference, verdict }) => {
    const example: Example = { id: `${task.name}/reward`, question: '', reference };
    return verdictScore(verdict ?? task.verify(completion, example));
  };
}

export interface MathAccuracyOptions {
  /** Where the final answer may be read from; R1-Zero requires `<answer>` (the default). */
  places?: readonly AnswerPlace[];
}

/** Math answers: the reference is the gold answer (a string or a number), compared by equivalence (answer.ts). */
export function mathAccuracyReward(options: MathAccuracyOptions = {}): RewardFn {
  const places = options.places ?? ['answer-tag'];
  return accuracyReward((completion, reference) => {
    if (typeof reference === 'number' && Number.isFinite(reference)) reference = String(reference);
    if (typeof reference !== 'string') {
      throw new TypeError(`math accuracy reward: the reference must be a string or a number, got ${typeof reference}`);
    }
    return checkAnswer(completion, reference, places);
  });
}
