// The accuracy reward's checker (SPEC.md 3): find the final answer of a completion and decide whether it is
// mathematically equivalent to the reference. Equivalence, not string equality, following the practice of
// Math-Verify (the checker open-r1 uses) where the two differ from plain sympy:
//
// Extraction (extractAnswer), in this order of preference, limited to the places allowed: the last
// `<answer>…</answer>` (R1-Zero's required place; a \boxed{} inside it is unwrapped), the last `\boxed{…}` or
// `\fbox{…}` with balanced braces (MATH), the text after the last `####` (GSM8K), the last number in the text.
//
// Normalisation (normalizeAnswer), before any parsing:
//   - `$…$`, `\(…\)`, `\[…\]`, `\boxed{}`, `\left`/`\right`, `\displaystyle`, spacing (`\,` `\!` `\;` `~`),
//     `\dfrac`/`\tfrac`/`\cfrac` (-> `\frac`), unicode minus/times/pi/infinity/superscripts are normalised;
//   - degrees (`^\circ`, `°`) are dropped: 90^\circ = 90;
//   - percent signs are dropped: 50\% = 50 (Math-Verify's rule: "28%" equals "28" but not "0.28");
//   - a trailing unit, as `\text{ cm}` / `\mbox{…}` or as plain words after a number ("5 meters"), is dropped, and
//     `\text{X}` elsewhere becomes X (so \text{Evelyn} = Evelyn);
//   - `x = 5`, `k = \frac13`, `(x, y) = (1, 2)`, `x \in [1, 2]`: when the left side is a name, the right side
//     (the last one in `x = 2 + 3 = 5`) is the answer;
//   - thousands separators: a whole answer of the form 1,234 / 12,345,678.9 / 1{,}000 / 1\,000 / 1 000 is one
//     number. Any other comma separates items: "1,2" and "1,23" are lists of two numbers.
//
// Structure (parseStructure), compared kind by kind:
//   - `(a, b)` and `[a, b]` and the mixed `[a, b)`, `(a, b]`: ordered, bracket kinds must match, so the tuple (1, 2)
//     differs from (2, 1) and the interval [1, 2) from [1, 2] (a one-item `(a)` is just a);
//   - `\{a, b\}` and bare lists `a, b` (e.g. "all solutions"): unordered sets, \{1, 2\} = \{2, 1\} = 2, 1;
//   - unions `A \cup B` of intervals: unordered;
//   - equations `lhs = rhs` whose left side is not a name: equal when lhs - rhs agree up to sign;
//   - everything else is a scalar: equal when the normalised text is equal, or both are exact rationals and
//     equal (1,000 = 1000.0, 0.5 = .5 = 1/2 = \frac{1}{2}, 1/3 != 0.33), or their values agree within a relative
//     1e-9 at every sample point (\sqrt{8} = 2\sqrt{2}, 2^3 = 8, (x+1)^2 = x^2+2x+1). Words of three letters or
//     more are compared as text, case-insensitively (so "yes" never equals "sey" as a product y*e*s).
//
// Bounds: answers longer than MAX_ANSWER_CHARS are compared as text only; expressions longer than MAX_PARSE_CHARS,
// nested deeper than MAX_NESTING or with unbalanced brackets are not parsed; a parse runs in a worker and is
// abandoned after PARSE_TIMEOUT_MS; lists hold at most MAX_LIST_ITEMS items; our evaluator (math-eval.ts) works in
// doubles. So no answer can make a reward hang. Model text is never evaluated as JavaScript.
//
// Known limits: integers beyond 2^53 reached through arithmetic (2^{60}+1 vs 2^{60}) compare within 1e-9 relative;
// matrices, \binom, \gcd and inequalities compare as normalised text only.
import type { Verdict } from '../tasks/task.ts';
import { MAX_PARSE_CHARS, SAMPLE_POINTS, isFiniteComplex, sampleValues, valuesClose, type Complex } from './math-eval.ts';

export { MAX_PARSE_CHARS };

export const MAX_ANSWER_CHARS = 1000;
export const MAX_LIST_ITEMS = 64;

// ---- extraction ---------------------------------------------------------------------------------------------

/** Where a final answer may be read from, in order of preference. */
export const ANSWER_PLACES = ['answer-tag', 'boxed', 'gsm8k', 'last-number'] as const;
export type AnswerPlace = (typeof ANSWER_PLACES)[number];

export interface ExtractedAnswer {
  answer: string;
  place: AnswerPlace;
}

/**
 * The final answer of a completion from the first of ANSWER_PLACES (in that order) that is allowed and present,
 * or null. R1-Zero's accuracy reward allows only 'answer-tag'.
 */
export function extractAnswer(text: string, places: readonly AnswerPlace[] = ANSWER_PLACES): ExtractedAnswer | null {
  for (const place of ANSWER_PLACES) {
    if (!places.includes(place)) continue;
    const answer = EXTRACTORS[place](text);
    if (answer !== null && answer.trim() !== '') return { answer: answer.trim(), place };
  }
  return null;
}

const EXTRACTORS: Record<AnswerPlace, (text: string) => string | null> = {
  'answer-tag': lastAnswerTag,
  boxed: lastBoxed,
  gsm8k: lastGsm8kAnswer,
  'last-number': lastNumber,
};

/** The content of the last complete `<answer>…</answer>`, or of the last \boxed{} inside it when it has one. */
export function lastAnswerTag(text: string): string | null {
  const close = text.lastIndexOf('</answer>');
  if (close < 0) return null;
  const open = text.lastIndexOf('<answer>', close);
  if (open < 0) return null;
  const content = text.slice(open + '<answer>'.length, close);
  return lastBoxed(content) ?? content;
}

// Tries at most this many \boxed occurrences from the end (a truncated last box falls back to the one before).
const MAX_BOX_TRIES = 16;

/** The content of the last `\boxed{…}` / `\fbox{…}` with balanced braces (or `\boxed 5`), or null. */
export function lastBoxed(text: string): string | null {
  const starts: number[] = [];
  for (const match of text.matchAll(/\\(?:boxed|fbox)(?![a-zA-Z])/g)) starts.push(match.index + match[0].length);
  for (let k = starts.length - 1; k >= Math.max(0, starts.length - MAX_BOX_TRIES); k--) {
    let i = starts[k];
    while (text[i] === ' ') i++;
    if (text[i] === '{') {
      const end = matchingBrace(text, i);
      if (end >= 0) return text.slice(i + 1, end);
    } else if (i > starts[k]) {
      // `\boxed 5`: one token, up to whitespace or a closing `$`.
      const token = /^[^\s$]+/.exec(text.slice(i, i + MAX_ANSWER_CHARS));
      if (token !== null) return token[0];
    }
  }
  return null;
}

/** Index of the `}` closing the `{` at `open` (escaped `\{`, `\}` skipped), or -1. */
function matchingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

/** GSM8K: the rest of the line after the last `####`. */
export function lastGsm8kAnswer(text: string): string | null {
  const at = text.lastIndexOf('####');
  if (at < 0) return null;
  const line = text.slice(at + 4).split('\n', 1)[0];
  return line.trim().replace(/\.$/, '');
}

// A number: optional sign (not right after a word or a closing bracket, so 5-3 gives 3), digits with optional
// thousands groups, decimals, and an optional /denominator.
const NUMBER = /(?:(?<![\w)\]])[-−])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\/\d+)?|(?:(?<![\w)\]])[-−])?\.\d+/g;

/** The last number in the text. */
export function lastNumber(text: string): string | null {
  let last: string | null = null;
  for (const match of text.matchAll(NUMBER)) last = match[0];
  return last;
}

// ---- normalisation --------------------------------------------------------------------------------------------

const UNICODE: Array<[RegExp, string]> = [
  [/[\u2212\u2012\u2013\ufe63\uff0d]/g, '-'],
  [/[×]/g, '\\times '],
  [/[·⋅]/g, '\\cdot '],
  [/÷/g, '\\div '],
  [/π/g, '\\pi '],
  [/∞/g, '\\infty '],
  [/√/g, '\\sqrt'],
  [/²/g, '^2'],
  [/³/g, '^3'],
  [/≤/g, '\\le '],
  [/≥/g, '\\ge '],
  [/∪/g, '\\cup '],
  [/[\u00a0\u2009\u202f]/g, ' '],
];

const TEXT_COMMANDS = 'text|textrm|textbf|textit|textnormal|mbox|mathrm|mathbf|mathit|mathsf|mathnormal|operatorname';

/** Text -> the canonical string form of an answer (see the rules at the top of this file). */
export function normalizeAnswer(raw: string): string {
  let s = raw.trim();
  for (const [pattern, replacement] of UNICODE) s = s.replace(pattern, replacement);
  s = s.replace(/^(?:the\s+)?(?:final\s+)?answer\s*(?:is\s*:?|:)\s*/i, '');
  s = unwrapCommand(s, 'boxed|fbox');
  s = s
    .replace(/\\(?:left|right)\s*\./g, '')
    .replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)(?![a-zA-Z])/g, '')
    .replace(/\\lbrace(?![a-zA-Z])/g, '\\{')
    .replace(/\\rbrace(?![a-zA-Z])/g, '\\}')
    .replace(/\\\$/g, '')
    .replace(/\$/g, '')
    .replace(/\\[()[\]]/g, '')
    .replace(/\\(?:displaystyle|textstyle|quad|qquad)(?![a-zA-Z])/g, ' ')
    .replace(/\\!/g, '')
    .replace(/\\[,;: ]/g, ' ')
    .replace(/~/g, ' ')
    .replace(/\\[dtc]frac(?![a-zA-Z])/g, '\\frac')
    .replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|°/g, '')
    .replace(/\\?%/g, '')
    .replace(/\s*\b(?:percent|percentage|pct)\b\.?\s*$/i, '')
    .replace(/\{,\}/g, ',')
    // TeX reads one character after `_`; the engine would read x_1+x_2 as x_{1+x_2}.
    .replace(/_([A-Za-z0-9])/g, '_{$1}');
  s = dropTrailingUnit(s);
  s = unwrapCommand(s, TEXT_COMMANDS);
  s = s.replace(/\s+/g, ' ').trim().replace(/[.,;]+$/, '').trim();
  s = s.replace(/^=\s*/, '');
  s = rightSideOfDefinition(s);
  s = joinThousands(s);
  return s;
}

/** `\name{X}` -> X for each of the `|`-separated command names, with balanced braces. */
function unwrapCommand(s: string, names: string): string {
  const pattern = new RegExp(`\\\\(?:${names})\\s*\\{`, 'g');
  for (let guard = 0; guard < 64; guard++) {
    pattern.lastIndex = 0;
    const match = pattern.exec(s);
    if (match === null) break;
    const open = match.index + match[0].length - 1;
    const close = matchingBrace(s, open);
    if (close < 0) break;
    s = s.slice(0, match.index) + s.slice(open + 1, close) + s.slice(close + 1);
  }
  return s;
}

const UNIT_TEXT = new RegExp(`\\\\(?:${TEXT_COMMANDS})\\s*\\{\\s*[A-Za-z][A-Za-z\\s./]*\\}(?:\\s*\\^\\s*\\{?\\d\\}?)?\\s*$`);

/** `3\text{ cm}`, `5 meters` -> 3, 5: a unit after a number or a closing bracket is not part of the answer. */
function dropTrailingUnit(s: string): string {
  const unit = UNIT_TEXT.exec(s);
  if (unit !== null) {
    const before = s.slice(0, unit.index).trimEnd();
    if (/[\d})\]]$/.test(before)) return before;
  }
  const words = /^(-?[\d.,]+(?:\/\d+)?)\s+(?!pi\b)[A-Za-z]{2,}(?:\s+[A-Za-z]+)*\.?$/.exec(s);
  return words !== null ? words[1] : s;
}

const NAME = /^(?:\\?[A-Za-z]+(?:_\{?\w+\}?)?(?:\([A-Za-z, ]*\))?|\((?:\s*[A-Za-z]\s*,)+\s*[A-Za-z]\s*\))$/;

/** `x = 5` -> 5, `x = 2 + 3 = 5` -> 5, `x \in [1, 2]` -> [1, 2]: the value given to a name. */
function rightSideOfDefinition(s: string): string {
  const member = /^(.*?)\\in(?![a-zA-Z])(.*)$/s.exec(s);
  if (member !== null && NAME.test(member[1].trim())) return member[2].trim();
  const sides = splitTopLevel(s, /(?<![<>!=\\])=(?!=)/);
  if (sides.length >= 2 && NAME.test(sides[0].trim()) && sides.every((side) => side.trim() !== '')) {
    return sides[sides.length - 1].trim();
  }
  return s;
}

/** 1,234,567.8 / 1 000 -> 1234567.8 / 1000, only when the whole answer is one such number. */
function joinThousands(s: string): string {
  if (/^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) return s.replace(/,/g, '');
  if (/^[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?$/.test(s)) return s.replace(/ /g, '');
  return s;
}

// ---- structure ----------------------------------------------------------------------------------------------

export type AnswerStructure =
  | { kind: 'scalar'; text: string }
  | { kind: 'tuple'; open: '(' | '['; close: ')' | ']'; items: AnswerStructure[] }
  | { kind: 'set'; items: AnswerStructure[] }
  | { kind: 'union'; parts: AnswerStructure[] }
  | { kind: 'equation'; lhs: string; rhs: string };

/** Splits at matches of `separator` outside (), [], {} (the regex is tried at each top-level position). */
function splitTopLevel(s: string, separator: RegExp): string[] {
  const sticky = new RegExp(separator.source, 'y');
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (depth === 0) {
      sticky.lastIndex = i;
      const match = sticky.exec(s);
      if (match !== null && match[0].length > 0) {
        parts.push(s.slice(start, i));
        start = i + match[0].length;
        i = start - 1;
      }
    }
  }
  parts.push(s.slice(start));
  return parts;
}

/** True when the bracket opening at 0 closes at the last character (any of ( [ with any of ) ]). */
function enclosedWhole(s: string): boolean {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) return i === s.length - 1;
    }
  }
  return false;
}

/** The structure of a normalised answer (see the rules at the top of this file). */
export function parseStructure(s: string, depth = 0): AnswerStructure {
  s = s.trim();
  if (depth > 4) return { kind: 'scalar', text: s };
  const union = splitTopLevel(s, /\\cup(?![a-zA-Z])/);
  if (union.length > 1 && union.length <= MAX_LIST_ITEMS) {
    return { kind: 'union', parts: union.map((part) => parseStructure(part, depth + 1)) };
  }
  if (s.startsWith('\\{') && s.endsWith('\\}') && enclosedWhole(s.slice(1))) {
    const inner = s.slice(2, -2).trim();
    const items = inner === '' ? [] : splitTopLevel(inner, /,/);
    if (items.length <= MAX_LIST_ITEMS) return { kind: 'set', items: items.map((item) => parseStructure(item, depth + 1)) };
  }
  if ((s[0] === '(' || s[0] === '[') && (s.endsWith(')') || s.endsWith(']')) && enclosedWhole(s)) {
    const items = splitTopLevel(s.slice(1, -1), /,/);
    if (items.length === 1 && s[0] === '(' && s.endsWith(')')) return parseStructure(items[0], depth + 1);
    if (items.length <= MAX_LIST_ITEMS) {
      return {
        kind: 'tuple',
        open: s[0] as '(' | '[',
        close: s[s.length - 1] as ')' | ']',
        items: items.map((item) => parseStructure(item, depth + 1)),
      };
    }
  }
  const bare = splitTopLevel(s, /,/);
  if (bare.length > 1 && bare.length <= MAX_LIST_ITEMS) {
    return { kind: 'set', items: bare.map((item) => parseStructure(item, depth + 1)) };
  }
  const sides = splitTopLevel(s, /(?<![<>!=\\])=(?!=)/);
  if (sides.length === 2) return { kind: 'equation', lhs: sides[0].trim(), rhs: sides[1].trim() };
  return { kind: 'scalar', text: s };
}

// ---- equivalence --------------------------------------------------------------------------------------------

/** Whether `pred` is mathematically equivalent to `gold` (both final answers, not whole completions). */
export function answersEquivalent(gold: string, pred: string): boolean {
  const cache = new Map<string, ScalarValue>();
  if (gold.length > MAX_ANSWER_CHARS || pred.length > MAX_ANSWER_CHARS) return compactText(gold) === compactText(pred);
  const [g, p] = [normalizeAnswer(gold), normalizeAnswer(pred)];
  if (g === '' || p === '') return false;
  if (compactText(g) === compactText(p)) return true;
  return structuresEqual(parseStructure(g), parseStructure(p), cache);
}

/**
 * Extracts the final answer of `completion` from the allowed places and checks it against `gold`: the Verdict a
 * task's verifier returns. R1-Zero's accuracy reward uses places = ['answer-tag'] (the default).
 */
export function checkAnswer(completion: string, gold: string, places: readonly AnswerPlace[] = ['answer-tag']): Verdict {
  const extracted = extractAnswer(completion, places);
  if (extracted === null) return { answer: null, correct: false };
  return { answer: extracted.answer, correct: answersEquivalent(gold, extracted.answer) };
}

function compactText(s: string): string {
  return s.replace(/\s+/g, '');
}

function structuresEqual(a: AnswerStructure, b: AnswerStructure, cache: Map<string, ScalarValue>): boolean {
  switch (a.kind) {
    case 'scalar':
      return b.kind === 'scalar' && scalarsEqual(a.text, b.text, cache);
    case 'tuple':
      return (
        b.kind === 'tuple' && a.open === b.open && a.close === b.close && a.items.length === b.items.length &&
        a.items.every((item, i) => structuresEqual(item, b.items[i], cache))
      );
    case 'set':
      return b.kind === 'set' && sameElements(a.items, b.items, cache);
    case 'union':
      return b.kind === 'union' && a.parts.length === b.parts.length && sameElements(a.parts, b.parts, cache);
    case 'equation':
      return b.kind === 'equation' && equationsEqual(a, b, cache);
  }
}

/** Set equality: every element of each side equals some element of the other. */
function sameElements(a: readonly AnswerStructure[], b: readonly AnswerStructure[], cache: Map<string, ScalarValue>): boolean {
  const covered = (xs: readonly AnswerStructure[], ys: readonly AnswerStructure[]) =>
    xs.every((x) => ys.some((y) => structuresEqual(x, y, cache)));
  return covered(a, b) && covered(b, a);
}

interface ScalarValue {
  compact: string;
  exact: Rational | null;
  word: string | null;
  values: Complex[] | null;
}

function scalarValue(text: string, cache: Map<string, ScalarValue>): ScalarValue {
  let value = cache.get(text);
  if (value === undefined) {
    const exact = exactRational(text);
    const word = /^[A-Za-z]{3,}(?: [A-Za-z]+)*$/.test(text) ? text.toLowerCase() : null;
    const parseable = exact === null && word === null && text.length <= MAX_PARSE_CHARS;
    value = { compact: compactText(text), exact, word, values: parseable ? sampleValues(text) : null };
    cache.set(text, value);
  }
  return value;
}

function scalarsEqual(a: string, b: string, cache: Map<string, ScalarValue>): boolean {
  const [x, y] = [scalarValue(a, cache), scalarValue(b, cache)];
  if (x.compact === y.compact) return true;
  if (x.exact !== null && y.exact !== null) return x.exact.num * y.exact.den === y.exact.num * x.exact.den;
  if (x.word !== null || y.word !== null) return x.word === y.word;
  const xs = x.values ?? (x.exact !== null ? constantValues(x.exact) : null);
  const ys = y.values ?? (y.exact !== null ? constantValues(y.exact) : null);
  return xs !== null && ys !== null && sampledEqual(xs, ys);
}

/** Equal at every sample point where both are defined, with at least one such point, and defined at the same points. */
function sampledEqual(xs: readonly Complex[], ys: readonly Complex[]): boolean {
  let compared = 0;
  for (let i = 0; i < xs.length; i++) {
    const [fx, fy] = [!Number.isNaN(xs[i][0]) && !Number.isNaN(xs[i][1]), !Number.isNaN(ys[i][0]) && !Number.isNaN(ys[i][1])];
    if (fx !== fy) return false;
    if (!fx) continue;
    if (!valuesClose(xs[i], ys[i])) return false;
    compared++;
  }
  return compared > 0;
}

/** lhs1 = rhs1 and lhs2 = rhs2 are the same equation when lhs - rhs agree up to sign at every sample point. */
function equationsEqual(a: { lhs: string; rhs: string }, b: { lhs: string; rhs: string }, cache: Map<string, ScalarValue>): boolean {
  if (scalarsEqual(a.lhs, b.lhs, cache) && scalarsEqual(a.rhs, b.rhs, cache)) return true;
  if (scalarsEqual(a.lhs, b.rhs, cache) && scalarsEqual(a.rhs, b.lhs, cache)) return true;
  const difference = (e: { lhs: string; rhs: string }) => {
    const [l, r] = [scalarValue(e.lhs, cache), scalarValue(e.rhs, cache)];
    const lv = l.values ?? (l.exact !== null ? constantValues(l.exact) : null);
    const rv = r.values ?? (r.exact !== null ? constantValues(r.exact) : null);
    return lv === null || rv === null ? null : lv.map((v, i): Complex => [v[0] - rv[i][0], v[1] - rv[i][1]]);
  };
  const [da, db] = [difference(a), difference(b)];
  if (da === null || db === null || !da.every(isFiniteComplex) || !db.every(isFiniteComplex)) return false;
  // An identity (0 = 0 everywhere) is not an answer; compare only equations that constrain something.
  if (da.every((v) => v[0] === 0 && v[1] === 0)) return false;
  return sampledEqual(da, db) || sampledEqual(da, db.map((v): Complex => [-v[0], -v[1]]));
}

// ---- exact rationals ----------------------------------------------------------------------------------------

interface Rational {
  num: bigint;
  den: bigint;
}

/** Integers, decimals, a/b and \frac{a}{b} (with a sign) as exact rationals; null for anything else. */
export function exactRational(text: string): Rational | null {
  const s = text.replace(/\s+/g, '');
  let match = /^([-+]?)(\d*)(?:\.(\d+))?$/.exec(s);
  if (match !== null && (match[2] !== '' || match[3] !== undefined)) {
    const [, sign, whole, fraction = ''] = match;
    const num = BigInt((whole || '0') + fraction) * (sign === '-' ? -1n : 1n);
    return { num, den: 10n ** BigInt(fraction.length) };
  }
  match = /^([-+]?)(?:\\frac\{([-+]?)(\d+)\}\{(\d+)\}|\\frac(\d)(\d)|(\d+)\/(\d+))$/.exec(s);
  if (match !== null) {
    const [, sign, innerSign, a1, b1, a2, b2, a3, b3] = match;
    const num = BigInt(a1 ?? a2 ?? a3) * (sign === '-' ? -1n : 1n) * (innerSign === '-' ? -1n : 1n);
    const den = BigInt(b1 ?? b2 ?? b3);
    return den === 0n ? null : { num, den };
  }
  return null;
}

function constantValues(r: Rational): Complex[] {
  const value = Number(r.num) / Number(r.den);
  return Array.from({ length: SAMPLE_POINTS }, (): Complex => [value, 0]);
}
