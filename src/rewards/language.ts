// Language-consistency reward of R1's reasoning RL stage (SPEC.md 3; R1 2.3.2; NAT eq. 7):
//   Reward_language = Num(Words_target) / Num(Words), over the chain of thought,
// added to the accuracy reward. The paper does not say how words are counted or how a language is recognised
// (r1-spec-detail 7.5); the rule here is by Unicode script:
//   - the chain of thought is the content of the first <think> block (to the end when it is not closed; the whole
//     completion before <answer> when there is no <think> tag, as with templates that prefill it);
//   - math and markup are not words: `$…$`, `$$…$$`, `\(…\)`, `\[…\]`, fenced code blocks and LaTeX commands are
//     removed first;
//   - a word is a run of letters; each Han, Hiragana or Katakana character is a word by itself (those scripts do not
//     separate words with spaces); a lone ASCII letter is a math variable (x, n) and not counted;
//   - a word is in the target language when all its letters are in the target's scripts: 'en' (and other Latin-
//     script languages, which this rule cannot tell apart) = Latin; 'zh' = Han; 'ja' = Han, Hiragana, Katakana;
//     'ko' = Hangul; 'ru' = Cyrillic.
// A chain of thought without any word scores 0: there is nothing in the target language to reward.
import { completionWithPrefill } from './format.ts';
import type { RewardFn, RewardInput } from './reward.ts';

export const LANGUAGE_SCRIPTS = {
  en: /^[\p{Script=Latin}\p{M}]+$/u,
  zh: /^\p{Script=Han}+$/u,
  ja: /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\u30fc]+$/u,
  ko: /^[\p{Script=Hangul}\p{M}]+$/u,
  ru: /^[\p{Script=Cyrillic}\p{M}]+$/u,
} satisfies Record<string, RegExp>;

export type LanguageTarget = keyof typeof LANGUAGE_SCRIPTS;

const NOT_WORDS = /\$\$[\s\S]*?\$\$|\$[^$]*\$|\\\([\s\S]*?\\\)|\\\[[\s\S]*?\\\]|```[\s\S]*?(?:```|$)|\\[a-zA-Z]+/g;
// One ideographic/kana character, or a run of other letters (with combining marks).
const WORD = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]|(?:(?![\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}])[\p{L}\p{M}])+/gu;

/** The chain of thought of a completion (see the rules at the top of this file). */
export function chainOfThought(completion: string): string {
  const open = completion.indexOf('<think>');
  if (open < 0) {
    const answer = completion.indexOf('<answer>');
    return answer < 0 ? completion : completion.slice(0, answer);
  }
  const start = open + '<think>'.length;
  const close = completion.indexOf('</think>', start);
  return completion.slice(start, close < 0 ? completion.length : close);
}

/** The words of a text, by the rules at the top of this file. */
export function countedWords(text: string): string[] {
  const words = text.replace(NOT_WORDS, ' ').match(WORD) ?? [];
  return words.filter((word) => !/^[A-Za-z]$/.test(word));
}

/** Fraction of the words of `text` in the target language; 0 when it has no words. */
export function languageConsistency(text: string, target: LanguageTarget): number {
  const words = countedWords(text);
  if (words.length === 0) return 0;
  const inTarget = LANGUAGE_SCRIPTS[target];
  return words.filter((word) => inTarget.test(word)).length / words.length;
}

/** The language-consistency reward over the chain of thought (a prefilled `<think>` restored first). */
export function languageReward(target: LanguageTarget): RewardFn {
  return (input: RewardInput) => languageConsistency(chainOfThought(completionWithPrefill(input)), target);
}
