// Format rewards (SPEC.md 3; R1 paper 2.2.2; r1-spec-detail 2.2): 1 when the completion has the shape the R1-Zero
// template asks for, 0 otherwise. Three rules, chosen by name (one small function each):
//
//   strict  the whole completion is `<think>…</think> <answer>…</answer>`: exactly one of each tag, in that
//           order, only whitespace before `<think>`, between `</think>` and `<answer>`, and after `</answer>`.
//           This is the shape the template demands ("<think> reasoning process here </think> <answer> answer
//           here </answer>") and the default; it matches open-r1's format_reward without its newline rules.
//   loose   a `<think>…</think>` block followed somewhere later by an `<answer>…</answer>` block; other text,
//           repeated tags or text after the answer are tolerated.
//   think   a closed `<think>…</think>` block anywhere: the paper's sentence taken literally ("enforces the model to
//           put its thinking process between '<think>' and '</think>' tags").
// The paper's text states only the think rule, but for R1-Zero the template (and SPEC.md 3: "and the answer in
// <answer> tags for R1-Zero") implies the strict shape, which is what the accuracy reward needs anyway.
//
// Block contents may be empty (as in open-r1): an empty answer already earns no accuracy reward. When the prompt
// itself ends with `<think>` (templates that prefill it, e.g. Dr. GRPO's), the completion starts inside the
// think block and is read as if it began with `<think>`.
import type { RewardFn, RewardInput } from './reward.ts';

const THINK_OPEN = '<think>';
const THINK_CLOSE = '</think>';
const ANSWER_OPEN = '<answer>';
const ANSWER_CLOSE = '</answer>';
const TAG = /<\/?(?:think|answer)>/g;

/** The completion as if it began at the end of the template: `<think>` added back when the prompt prefilled it. */
export function completionWithPrefill(input: Pick<RewardInput, 'prompt' | 'completion'>): string {
  return input.prompt.trimEnd().endsWith(THINK_OPEN) ? THINK_OPEN + input.completion : input.completion;
}

/** Exactly `<think>…</think>`, whitespace, `<answer>…</answer>`, with only whitespace around. */
export function isStrictFormat(text: string): boolean {
  const tags = [...text.matchAll(TAG)];
  if (tags.length !== 4) return false;
  const expected = [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE];
  if (tags.some((m, i) => m[0] !== expected[i])) return false;
  const [thinkOpen, thinkClose, answerOpen, answerClose] = tags.map((m) => m.index);
  const blank = (from: number, to: number) => text.slice(from, to).trim() === '';
  return blank(0, thinkOpen) && blank(thinkClose + THINK_CLOSE.length, answerOpen) && blank(answerClose + ANSWER_CLOSE.length, text.length);
}

/** A think block, then (anywhere after it) an answer block; any other text allowed. */
export function isLooseFormat(text: string): boolean {
  const thinkOpen = text.indexOf(THINK_OPEN);
  if (thinkOpen < 0) return false;
  const thinkClose = text.indexOf(THINK_CLOSE, thinkOpen + THINK_OPEN.length);
  if (thinkClose < 0) return false;
  const answerOpen = text.indexOf(ANSWER_OPEN, thinkClose + THINK_CLOSE.length);
  return answerOpen >= 0 && text.indexOf(ANSWER_CLOSE, answerOpen + ANSWER_OPEN.length) >= 0;
}

/** A closed think block anywhere. */
export function hasThinkBlock(text: string): boolean {
  const thinkOpen = text.indexOf(THINK_OPEN);
  return thinkOpen >= 0 && text.indexOf(THINK_CLOSE, thinkOpen + THINK_OPEN.length) >= 0;
}

/**
 * R1's readable output (R1 sec. 2.3.1; SPEC.md 4: `|special_token|<reasoning_process>|special_token|<summary>`, which
 * the released models write as `<think>…</think>` and a summary): one think block at the start, then a non-empty
 * summary, and no answer tags (the answer is in the summary, e.g. as \boxed{}). Not one of FORMAT_RULES, which
 * read the R1-Zero template's shape (each accepts its strict form); this shape replaces it.
 */
export function isReadableFormat(text: string): boolean {
  const tags = [...text.matchAll(TAG)];
  if (tags.length !== 2 || tags[0][0] !== THINK_OPEN || tags[1][0] !== THINK_CLOSE) return false;
  return text.slice(0, tags[0].index).trim() === '' && summaryOf(text).trim() !== '';
}

/** The summary of a readable completion: the text after its last `</think>` ('' when there is none). */
export function summaryOf(completion: string): string {
  const close = completion.lastIndexOf(THINK_CLOSE);
  return close < 0 ? '' : completion.slice(close + THINK_CLOSE.length);
}

export const FORMAT_RULES = {
  strict: isStrictFormat,
  loose: isLooseFormat,
  think: hasThinkBlock,
} satisfies Record<string, (text: string) => boolean>;

export type FormatRule = keyof typeof FORMAT_RULES;

/** The format reward: 1 when the completion (with a prefilled `<think>` restored) follows `rule`, else 0. */
export function formatReward(rule: FormatRule = 'strict'): RewardFn {
  const follows = FORMAT_RULES[rule];
  return (input) => (follows(completionWithPrefill(input)) ? 1 : 0);
}

/**
 * Partial credit while the format is being learnt: 0.25 for each of the four tags that occurs exactly once (open-r1's
 * tag_count_reward). Small-scale recipes report that format partial credit helps small models pick up the format
 * early (TinyZero's 0.1 for well-formed answers, open-r1's demo; r1-spec-detail 6.2). Not part of R1-Zero's
 * reward: add it with a small weight, or not at all.
 */
export function tagCountReward(): RewardFn {
  return (input) => {
    const text = completionWithPrefill(input);
    let score = 0;
    for (const tag of [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE]) {
      const first = text.indexOf(tag);
      if (first >= 0 && text.indexOf(tag, first + tag.length) < 0) score += 0.25;
    }
    return score;
  };
}
