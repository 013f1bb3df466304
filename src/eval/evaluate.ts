// Evaluation the way the R1 paper reports it (SPEC.md 5): k sampled responses per held-out question at
// temperature 0.6 and top-p 0.95, then pass@1 (mean correctness over the k samples), the unbiased pass@k,
// cons@k (majority vote over the extracted final answers), the format rate and the mean response length.
import { writeFileAtomic } from '../io/atomic.ts';
import { generate } from '../generate/engine.ts';
import type { CausalLM } from '../models/pretrained.ts';
import { completionWithPrefill, isStrictFormat } from '../rewards/format.ts';
import { r1ZeroPrompt } from '../rewards/template.ts';
import { verifyAll, type Task } from '../tasks/task.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { average } from '../util/average.ts';
import { majorityAnswer, passAt1, passAtK } from './estimators.ts';

export interface EvalOptions {
  /** Responses per question. */
  k: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  /** Questions of the test set to use (the first ones); null uses the task's default test set. */
  limit: number | null;
  /** Seed of the sampling: question q's sample j uses seed + q * k + j. */
  seed: number;
  /** Prompt text of a question (default: the R1-Zero template, SPEC.md 2). */
  prompt?: (question: string) => string;
  /** Whether a response (a prefilled `<think>` restored) is in the output format (default: the strict R1-Zero shape). */
  isFormatted?: (completion: string) => boolean;
}

/** The paper's evaluation settings (R1 sec. 3.1: temperature 0.6, top-p 0.95) at a size for a CPU. */
export const defaultEvalOptions: EvalOptions = { k: 8, temperature: 0.6, topP: 0.95, maxNewTokens: 64, limit: null, seed: 1234 };

export interface EvalResponse {
  text: string;
  lengthTokens: number;
  answer: string | null;
  correct: boolean;
  formatted: boolean;
  truncated: boolean;
}

export interface EvalQuestion {
  id: string;
  question: string;
  reference: unknown;
  responses: EvalResponse[];
  /** The majority answer and whether it is correct (cons@k for this question). */
  votedAnswer: string | null;
  votedCorrect: boolean;
}

export interface EvalReport {
  task: string;
  questions: number;
  k: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  /** Mean over questions of the fraction of correct responses. */
  passAt1: number;
  /** Mean over questions of 1 - C(n-c, k)/C(n, k) with n = k (so the chance that any of the k is correct). */
  passAtK: number;
  /** Fraction of questions whose majority-voted answer is correct. */
  consAtK: number;
  /** Fraction of responses in the output format (options.isFormatted; by default the strict R1-Zero one). */
  formatRate: number;
  /** Mean response length in tokens. */
  meanLength: number;
  details: EvalQuestion[];
}

/** Samples k responses per test question and scores them with the task's verifier. */
export function evaluateModel(model: CausalLM, tokenizer: Tokenizer, task: Task, options: EvalOptions): EvalReport {
  const prompt = options.prompt ?? r1ZeroPrompt;
  const isFormatted = options.isFormatted ?? isStrictFormat;
  const allExamples = task.testSet();
  const examples = options.limit === null ? allExamples : allExamples.slice(0, options.limit);
  const k = options.k;
  const requests = examples.flatMap((example, q) => {
    const ids = tokenizer.encode(prompt(example.question));
    return Array.from({ length: k }, (_, j) => ({ prompt: ids, seed: options.seed + q * k + j }));
  });
  // Every question's k responses are queued in one call, so the engine's rows stay busy until the last ones.
  const results = generate(model, tokenizer, requests, { maxNewTokens: options.maxNewTokens, temperature: options.temperature, topP: options.topP });
  const texts = results.map((result) => result.text + (result.stopString ?? ''));
  // All responses are verified in one call (a code task runs their programs in parallel).
  const verdicts = verifyAll(task, texts.map((completion, i) => ({ completion, example: examples[Math.floor(i / k)] })));
  const details = examples.map((example, q): EvalQuestion => {
    const promptText = prompt(example.question);
    const responses = results.slice(q * k, (q + 1) * k).map((result, j): EvalResponse => {
      const text = texts[q * k + j];
      const verdict = verdicts[q * k + j];
      return {
        text, lengthTokens: result.tokenIds.length, answer: verdict.answer, correct: verdict.correct,
        formatted: isFormatted(completionWithPrefill({ prompt: promptText, completion: text })), truncated: result.finishReason === 'length',
      };
    });
    const votedAnswer = majorityAnswer(responses.map((r) => r.answer));
    // The verifier's verdict on the voted answer: that of a response which gave it (verdicts depend only on
    // the extracted answer, so any such response gives the same one).
    const votedCorrect = votedAnswer !== null && responses.some((r) => r.answer === votedAnswer && r.correct);
    return { id: example.id, question: example.question, reference: example.reference, responses, votedAnswer, votedCorrect };
  });
  const all = details.flatMap((d) => d.responses);
  return {
    task: task.name,
    questions: details.length,
    k,
    temperature: options.temperature,
    topP: options.topP,
    maxNewTokens: options.maxNewTokens,
    passAt1: average(details.map((d) => passAt1(d.responses.map((r) => r.correct)))),
    passAtK: average(details.map((d) => passAtK(k, d.responses.filter((r) => r.correct).length, k))),
    consAtK: average(details.map((d) => (d.votedCorrect ? 1 : 0))),
    formatRate: average(all.map((r) => (r.formatted ? 1 : 0))),
    meanLength: average(all.map((r) => r.lengthTokens)),
    details,
  };
}

/** The headline numbers of a report, without the per-question details. */
export function summary(report: EvalReport): Omit<EvalReport, 'details'> {
  const { details: _details, ...rest } = report;
  return rest;
}

/** Writes the report as JSON (atomically), the per-question responses included. */
export async function writeEvalReport(file: string, report: EvalReport): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(report, null, 2)}\n`);
}
