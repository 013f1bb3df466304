// The accuracy reward's checker (SPEC.md 3): is a final answer mathematically equivalent to the reference? One
// checker for the GRPO accuracy reward, `r1 eval`, the JSONL tasks and `r1 verify-answer`, built after Hugging
// Face's Math-Verify (the checker of open-r1 and TRL): both sides are read the same way (extract.ts finds the
// answer in a whole solution, for the gold as for the prediction), normalised, parsed into a structure and
// compared kind by kind. It is designed against false positives: what it cannot read, it calls wrong.
//
// Normalisation (normalizeAnswer), before any parsing:
//   - `$…$`, `\(…\)`, `\[…\]`, `\boxed{}`, `\left`/`\right`, `\displaystyle`, spacing (`\,` `\!` `\;` `~`),
//     `\dfrac`/`\tfrac`/`\cfrac` (-> `\frac`), `\frac13`, `\frac3{3}`, `\sqrt3`, unicode symbols are normalised;
//   - degrees (`^\circ`, `°`) and percent signs are dropped (readings below keep p% = p/100 as well);
//   - a trailing unit (`\text{ cm}^2`, `\mbox{…}`, "5 meters") is dropped, `\text{X}` elsewhere becomes X;
//   - thousands separators: a whole answer 1,234 / 1{,}000 / 1,\!000 / 1\,000 / 1 000 is one number;
//   - relations are written one way: `>=` `\geq` `\geqslant` -> `\ge`, `\neq` `!=` -> `\ne`, `\lt` -> `<`;
//   - `a \approx b` is b when a is a name (x ≈ 11 is 11), else a; `x \in S` is S; "a and b" is the list a, b;
//   - 1.5e3 is 1.5\times10^{3}; a mixed number 2\frac{1}{2} or 4 4/9 is 5/2 or 40/9; `\emptyset` is `\{\}`.
// Readings (readings): an answer may be read more than one way, and matches when any reading does:
//   28% as 28 and as 0.28; 1,22 (no thousands group) as the list 1, 22 and as 1.22; 1 \pm \sqrt{2} as written
//   and as the set of both values; "(B) 12" as B.
// Structure (parseStructure), compared kind by kind:
//   - `(a, b)`, `[a, b]`, `[a, b)`, `(a, b]`: tuples and intervals, ordered, bracket kinds must match;
//   - `\{a, b\}` and bare lists `a, b` (also "a and b", "a or b"): sets, unordered, a repeated element counted
//     once (a bare list also equals the tuple (a, b) in that order); unions of intervals are unordered, unions
//     of finite sets are one set;
//   - `\begin{pmatrix}…\end{pmatrix}` (bmatrix, matrix, array in brackets): matrices, entry by entry; sums,
//     differences and products of numeric matrices and numbers (`A + B`, `\frac12 A`) are evaluated first;
//   - relations `=`, `<`, `>`, `\le`, `\ge`, `\ne`, chains included: an assignment `x = 5` (left side a name)
//     compared with a value is its value; an equation compared with a value is its last side (the prediction
//     `1+1 = 2` is 2); two relations are equal when each `lhs - rhs` (oriented so both read `d < 0`, `d = 0`…)
//     agrees up to a constant factor (positive for inequalities, and 1 when nothing is variable); two
//     assignments need the same name (without case: P(x) = p(x)); a name may be a ratio (V_1:V_2,
//     \frac{AM}{MB}). These rules apply inside lists too (`x = 2 or x = 3` is 2, 3). A relation in the gold equals an interval in the prediction when it says
//     the same (`-2 \le x \le 7` and `[-2, 7]`), not the other way round, as Math-Verify;
//   - scalars: equal when the normalised texts are, or both are exact rationals and equal (1,000 = 1000.0,
//     0.5 = \frac{1}{2}), or a written decimal rounds like the exact value at 6 decimals (0.333333 = 1/3,
//     Math-Verify's float_rounding; 0.33 != 1/3), or their values agree within a relative 1e-9 at every sample
//     point (\sqrt{12} = 2\sqrt3, (x+1)^2 = x^2+2x+1). Words of three letters or more, single capital letters
//     (choices) and numbers in a base (`204_5`) are compared as text.
//
// Bounds: answers longer than MAX_ANSWER_CHARS are compared as text only; expressions longer than MAX_PARSE_CHARS,
// nested deeper than MAX_NESTING or with unbalanced brackets are not parsed; a parse runs in a worker and is
// abandoned after PARSE_TIMEOUT_MS (math-eval.ts); lists hold at most MAX_LIST_ITEMS items. No answer can make a
// reward hang, and model text is never evaluated as JavaScript.
import type { Verdict } from '../tasks/task.ts';
import { ANSWER_PLACES, extractAnswer, isBareAnswer, matchingBrace, type AnswerPlace, type ExtractOptions } from './extract.ts';
import { MAX_PARSE_CHARS, SAMPLE_POINTS, isFiniteComplex, sampleValues, valuesClose, type Complex } from './math-eval.ts';

export { MAX_PARSE_CHARS };

export const MAX_ANSWER_CHARS = 1000;
export const MAX_LIST_ITEMS = 64;

// ---- the answer of a text -------------------------------------------------------------------------------------

const CHOICE_LETTERS = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'];

/**
 * The answer a text gives: the text itself when it is a bare answer (`\frac{1}{2}`, `x = 5`, `5 cm`), else the
 * one extracted from it as from a whole solution (extract.ts), or null when there is none.
 */
export function answerOf(text: string, options: ExtractOptions = {}): string | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  if (isBareAnswer(trimmed)) return trimmed;
  return extractAnswer(trimmed, ANSWER_PLACES, options)?.answer ?? null;
}

/** Extraction options for predictions checked against `goldAnswer`: a single letter makes it multiple choice. */
export function optionsFor(goldAnswer: string | null): ExtractOptions {
  return goldAnswer !== null && isChoice(normalizeAnswer(goldAnswer)) ? { choices: CHOICE_LETTERS } : {};
}

function isChoice(normalized: string): boolean {
  return /^[A-J]$/.test(normalized);
}

/**
 * Extracts the final answer of `completion` from the allowed places and checks it against `gold` (itself read
 * with answerOf): the Verdict a task's verifier returns. R1-Zero's accuracy reward uses places = ['answer-tag'].
 */
export function checkAnswer(completion: string, gold: string, places: readonly AnswerPlace[] = ['answer-tag']): Verdict {
  const goldAnswer = answerOf(gold);
  const extracted = extractAnswer(completion, places, optionsFor(goldAnswer));
  if (extracted === null) return { answer: null, correct: false };
  return { answer: extracted.answer, correct: goldAnswer !== null && finalAnswersEquivalent(goldAnswer, extracted.answer) };
}

/**
 * Whether `pred` is equivalent to `gold`. Each may be a bare answer or a text holding one (`$\frac12$`, "The
 * answer is 5", a whole solution): both are read with answerOf, as Math-Verify parses both sides.
 */
export function answersEquivalent(gold: string, pred: string): boolean {
  // The same text gives the same answer, however long.
  if (gold.trim() !== '' && compactText(gold) === compactText(pred)) return true;
  const goldAnswer = answerOf(gold);
  if (goldAnswer === null) return false;
  const predAnswer = answerOf(pred, optionsFor(goldAnswer));
  return predAnswer !== null && finalAnswersEquivalent(goldAnswer, predAnswer);
}

/** Equivalence of two final answers (already extracted): any reading of the gold against any of the prediction. */
export function finalAnswersEquivalent(gold: string, pred: string): boolean {
  if (gold.length > MAX_ANSWER_CHARS || pred.length > MAX_ANSWER_CHARS) return compactText(gold) === compactText(pred);
  const cache = new Map<string, ScalarValue>();
  const predReadings = readings(pred);
  for (const g of readings(gold)) {
    for (const p of predReadings) if (readingsEqual(g, p, cache)) return true;
  }
  return false;
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
  [/≠/g, '\\ne '],
  [/≈/g, '\\approx '],
  [/∪/g, '\\cup '],
  [/∈/g, '\\in '],
  [/±/g, '\\pm '],
  [/∅/g, '\\emptyset '],
  [/½/g, '\\frac{1}{2}'],
  [/⅓/g, '\\frac{1}{3}'],
  [/⅔/g, '\\frac{2}{3}'],
  [/¼/g, '\\frac{1}{4}'],
  [/¾/g, '\\frac{3}{4}'],
  [/[⟨〈]/g, '\\langle '],
  [/[⟩〉]/g, '\\rangle '],
  [/[\u00a0\u2009\u202f]/g, ' '],
];

const TEXT_COMMANDS = 'text|textrm|textbf|textit|textnormal|textsf|texttt|mbox|mathrm|mathbf|mathit|mathsf|mathnormal|operatorname|boldsymbol|bm';

// Already canonical: most answers of arithmetic datasets (GSM8K's all are integers, some with thousands groups).
const PLAIN_NUMBER = /^-?\d+(?:\.\d+)?$/;

/** Text -> the canonical string form of an answer (see the rules at the top of this file). */
export function normalizeAnswer(raw: string): string {
  let s = raw.trim();
  if (PLAIN_NUMBER.test(s)) return s;
  for (const [pattern, replacement] of UNICODE) s = s.replace(pattern, replacement);
  // Escaped twice (JSON written from a raw string): \\frac -> \frac, outside matrices whose rows end in \\.
  if (!s.includes('\\begin')) s = s.replace(/\\\\(?=[a-zA-Z])/g, '\\');
  s = s.replace(/^(?:the\s+)?(?:final\s+)?answer\s*(?:is\s*:?|:)\s*/i, '');
  // A label before the value: "Result: 7", "Total cost: \$12".
  s = s.replace(/^[A-Za-z][A-Za-z ]{0,30}:\s*(?=\S)/, '');
  s = unwrapCommand(s, 'boxed|fbox');
  s = s
    .replace(/\\(?:left|right)\s*\./g, '')
    .replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)(?![a-zA-Z])/g, '')
    .replace(/\\langle(?![a-zA-Z])/g, '(')
    .replace(/\\rangle(?![a-zA-Z])/g, ')')
    .replace(/\\lbrace(?![a-zA-Z])/g, '\\{')
    .replace(/\\rbrace(?![a-zA-Z])/g, '\\}')
    .replace(/\\\$/g, '')
    .replace(/\$/g, '')
    .replace(/(?<!\\)\\[()[\]]/g, '')
    .replace(/\\(?:displaystyle|textstyle|scriptstyle|quad|qquad)(?![a-zA-Z])/g, ' ')
    // Thousands written in TeX: 1{,}000, 10,\!000, 14 {, }916.
    .replace(/\{\s*,\s*\}\s*/g, ',')
    .replace(/,\\!\s*(?=\d{3}(?!\d))/g, ',')
    .replace(/(?<!\\)\\!/g, '')
    .replace(/(?<!\\)\\[,;: ]/g, ' ')
    .replace(/~/g, ' ')
    .replace(/\\[dtc]frac(?![a-zA-Z])/g, '\\frac')
    // \frac13, \frac3{3}, \frac{1}3, \sqrt3, \sqrt 2: one-character arguments without braces.
    .replace(/\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])/g, '\\frac{$1}{$2}')
    .replace(/\\frac\s*([0-9a-zA-Z])\s*\{/g, '\\frac{$1}{')
    .replace(/\\frac(\{[^{}]*\})\s*([0-9a-zA-Z])/g, '\\frac$1{$2}')
    .replace(/\\sqrt\s*([0-9a-zA-Z])/g, '\\sqrt{$1}')
    .replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|°/g, '')
    .replace(/\\?%/g, '')
    .replace(/\s*\b(?:percent|percentage|pct)\b\.?\s*$/i, '')
    .replace(/>=|\\geqslant(?![a-zA-Z])|\\geq(?![a-zA-Z])/g, '\\ge ')
    .replace(/<=|\\leqslant(?![a-zA-Z])|\\leq(?![a-zA-Z])/g, '\\le ')
    .replace(/!=|\\neq(?![a-zA-Z])/g, '\\ne ')
    .replace(/\\lt(?![a-zA-Z])/g, '<')
    .replace(/\\gt(?![a-zA-Z])/g, '>')
    .replace(/\\(?:emptyset|varnothing)(?![a-zA-Z])/g, '\\{\\}')
    .replace(/\\mathbb\s*\{?\s*R\s*\}?/g, '(-\\infty, \\infty)')
    .replace(/\\(?:dots|ldots|cdots)(?![a-zA-Z])/g, '...')
    // TeX reads one character after `_`; the engine would read x_1+x_2 as x_{1+x_2}.
    .replace(/_([A-Za-z0-9])/g, '_{$1}')
    // Plain text writes 2^10 for 2^{10} (TeX would read 2^1 0).
    .replace(/\^(\d{2,})(?![\d.])/g, '^{$1}');
  // One full stop or comma closing a sentence, not an ellipsis.
  const closeSentence = (text: string) => text.replace(/\s+/g, ' ').trim().replace(/(?<!\.)[.,;]$/, '').trim();
  s = dropTrailingUnit(closeSentence(s));
  s = unwrapCommand(s, TEXT_COMMANDS);
  s = dropTrailingUnit(closeSentence(s)); // \text{12 cm}
  s = s.replace(/^=\s*/, '');
  s = s.replace(/^\(?([A-J])\)$/, '$1');
  s = resolveApprox(s);
  s = memberOf(s);
  s = stripGroupingBraces(s);
  s = joinThousands(s);
  s = s.replace(/^([-+]?\d*\.?\d+)[eE]([-+]?\d+)$/, '$1\\times10^{$2}');
  s = mixedNumber(s);
  s = andToList(s);
  return s;
}

/** `\name{X}` -> X for each of the `|`-separated command names, with balanced braces. */
function unwrapCommand(s: string, names: string): string {
  if (!s.includes('\\')) return s;
  const pattern = cachedRegExp(`\\\\(?:${names})\\s*\\{`, 'g');
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
  const words = /^(-?[\d.,]+(?:\/\d+)?)\s+(?!pi\b)[A-Za-z]{2,}(?:\s+[A-Za-z]+)*(?:\^\{?\d\}?)?\.?$/.exec(s);
  return words !== null && !/^(?:and|or)\b/.test(s.slice(words[1].length).trim()) ? words[1] : s;
}

const NAME_ATOM = String.raw`\\?[A-Za-z]+(?:_\{\w+\})?'*(?:\([^()=<>]*\))?`;
// A name as the left side of an assignment: x, x_{1}, f(x), f(2), P(A), a+b, xy, (x, y).
const NAME = new RegExp(String.raw`^(?:${NAME_ATOM}(?:\s*(?:[+*/:]|\\cdot)?\s*${NAME_ATOM})*|\((?:\s*${NAME_ATOM}\s*,)+\s*${NAME_ATOM}\s*\))$`);

function isName(s: string): boolean {
  const t = s.trim();
  const ratio = /^\\frac\{([^{}]+)\}\{([^{}]+)\}$/.exec(t); // \frac{NO}{BO}
  if (ratio !== null) return isName(ratio[1]) && isName(ratio[2]);
  return t.length <= 40 && NAME.test(t) && !/^\\(?:pi|infty|frac|sqrt|e)\b/.test(t);
}

/** `x \approx 11` -> 11; `\frac{1}{3} \approx 0.33` -> \frac{1}{3} (the exact value, not its approximation). */
function resolveApprox(s: string): string {
  const parts = splitTopLevel(s, /\\approx(?![a-zA-Z])/);
  if (parts.length < 2) return s;
  return isName(parts[0]) ? parts[parts.length - 1].trim() : parts[0].trim();
}

/** `x \in [1, 2]` -> [1, 2]: the set a name is said to belong to. */
function memberOf(s: string): string {
  const member = /^(.*?)\\in(?![a-zA-Z])(.*)$/s.exec(s);
  return member !== null && isName(member[1]) && member[2].trim() !== '' ? member[2].trim() : s;
}

/** `{1,3}` -> 1,3: braces around the whole answer only group (they are `\{…\}` for a set). */
function stripGroupingBraces(s: string): string {
  for (let guard = 0; guard < 4 && s.startsWith('{') && matchingBrace(s, 0) === s.length - 1; guard++) s = s.slice(1, -1).trim();
  return s;
}

/** 1,234,567.8 / 1 000 -> 1234567.8 / 1000, only when the whole answer is one such number. */
function joinThousands(s: string): string {
  if (/^[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$/.test(s)) return s.replace(/,/g, '');
  if (/^[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?$/.test(s)) return s.replace(/ /g, '');
  return s;
}

/**
 * 2\frac{1}{2} and 4 4/9 -> \frac{5}{2} and \frac{40}{9}: an integer written right before a proper fraction of
 * integers (an improper one, `11 7/6`, is no mixed number and stays text).
 */
function mixedNumber(s: string): string {
  const match = /^([-+]?)(\d{1,3}(?: \d{3})+|\d+)(?:\s*\\frac\{(\d+)\}\{(\d+)\}| (\d+)\/(\d+))$/.exec(s);
  if (match === null) return s;
  const [, sign, whole, num1, den1, num2, den2] = match;
  const [num, den] = [num1 ?? num2, den1 ?? den2];
  if (BigInt(num) >= BigInt(den)) return s;
  return `${sign === '-' ? '-' : ''}\\frac{${BigInt(whole.replace(/ /g, '')) * BigInt(den) + BigInt(num)}}{${den}}`;
}

/** "12 and 13" -> "12, 13": the items of an answer given in words. */
function andToList(s: string): string {
  const parts = splitTopLevel(s, /\s+(?:and|or)\s+|,\s*(?:and|or)\s+|(?<=[)\]])\s*(?:and|or)\s*(?=[([])/);
  return parts.length > 1 && parts.every((p) => p.trim() !== '') ? parts.map((p) => p.trim()).join(', ') : s;
}

// ---- readings -------------------------------------------------------------------------------------------------

const PERCENT = /(?:\\?%|\bpercent(?:age)?\b|\bpct\b)\s*\.?\s*\$?\s*\}?\s*$/i;

/** The normalised readings of an answer (see the rules at the top of this file), the literal one first. */
export function readings(answer: string): string[] {
  const normalized = normalizeAnswer(answer);
  if (normalized === '') return [];
  if (PLAIN_NUMBER.test(normalized) && !answer.includes('%') && !/per|pct/i.test(answer)) return [normalized];
  const out = [normalized];
  if (PERCENT.test(answer.trim())) {
    const exact = exactRational(normalized);
    out.push(exact !== null ? `\\frac{${exact.num}}{${exact.den * 100n}}` : `\\frac{${normalized}}{100}`);
  }
  if (/^-?\d+,\d+$/.test(normalized)) out.push(normalized.replace(',', '.'));
  const plusMinus = splitTopLevel(normalized, /\\pm(?![a-zA-Z])/);
  if (plusMinus.length === 2) {
    const [a, b] = plusMinus.map((p) => p.trim());
    if (b !== '') out.push(`\\{${a}+${b}, ${a}-${b}\\}`);
  }
  const option = /^\(?([A-J])\)[.:]?\s+\S|^([A-J])[.:]\s+\S/.exec(normalized);
  if (option !== null) out.push(option[1] ?? option[2]);
  return out;
}

// ---- structure ------------------------------------------------------------------------------------------------

export type RelationOp = '=' | '<' | '>' | '\\le' | '\\ge' | '\\ne';

export type AnswerStructure =
  | { kind: 'scalar'; text: string }
  | { kind: 'tuple'; open: '(' | '['; close: ')' | ']'; items: AnswerStructure[] }
  | { kind: 'set'; braced: boolean; items: AnswerStructure[] }
  | { kind: 'union'; parts: AnswerStructure[] }
  | { kind: 'matrix'; rows: string[][] }
  | { kind: 'relation'; parts: string[]; ops: RelationOp[] };

const regExps = { g: new Map<string, RegExp>(), y: new Map<string, RegExp>() };

/** A compiled regex for a source and flags, compiled once (callers reset lastIndex before use). */
function cachedRegExp(source: string, flags: 'g' | 'y'): RegExp {
  let re = regExps[flags].get(source);
  if (re === undefined) regExps[flags].set(source, (re = new RegExp(source, flags)));
  return re;
}

/**
 * Splits at matches of `separator` outside (), [], {}, `\{…\}` (the regex is tried at each top-level position);
 * the separators found are pushed to `found` when given.
 */
function splitTopLevel(s: string, separator: RegExp, found?: string[]): string[] {
  const sticky = cachedRegExp(separator.source, 'y');
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && (s[i + 1] === '{' || s[i + 1] === '}')) {
      depth += s[i + 1] === '{' ? 1 : -1;
      i++;
    } else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (depth === 0) {
      sticky.lastIndex = i;
      const match = sticky.exec(s);
      if (match !== null && match[0].length > 0) {
        parts.push(s.slice(start, i));
        found?.push(match[0]);
        start = i + match[0].length;
        i = start - 1;
      }
    }
  }
  parts.push(s.slice(start));
  return parts;
}

/** True when the bracket opening at 0 closes at the last character (any of ( [ { with any of ) ] }). */
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

const RELATION = /\\le(?![a-zA-Z])|\\ge(?![a-zA-Z])|\\ne(?![a-zA-Z])|(?<![<>!\\])=|<(?!=)|>(?!=)/;
const MATRIX = /^[([]?\s*\\begin\{([pbBvV]?matrix|array)\}(?:\{[^{}]*\})?([\s\S]*)\\end\{\1\}\s*[)\]]?$/;

/** The structure of a normalised answer (see the rules at the top of this file). */
export function parseStructure(s: string, depth = 0): AnswerStructure {
  s = s.trim();
  if (depth > 4 || PLAIN_NUMBER.test(s)) return { kind: 'scalar', text: s };
  const matrix = MATRIX.exec(s);
  if (matrix !== null && !/\\end\{/.test(matrix[2])) {
    const rows = matrixRows(matrix[2]);
    if (rows !== null) return { kind: 'matrix', rows };
  }
  if (s.includes('\\begin{')) {
    const value = matrixArithmetic(s);
    if (value !== null) return { kind: 'matrix', rows: value.map((row) => row.map(String)) };
  }
  const union = splitTopLevel(s, /\\cup(?![a-zA-Z])/);
  if (union.length > 1 && union.length <= MAX_LIST_ITEMS) {
    const parts = union.map((part) => parseStructure(part, depth + 1));
    // A union of finite sets is one finite set.
    if (parts.every((p) => p.kind === 'set' && p.braced)) {
      return { kind: 'set', braced: true, items: parts.flatMap((p) => (p.kind === 'set' ? p.items : [])) };
    }
    return { kind: 'union', parts };
  }
  if (s.startsWith('\\{') && s.endsWith('\\}') && closesAtEnd(s)) {
    const inner = s.slice(2, -2).trim();
    const items = inner === '' ? [] : splitTopLevel(inner, /,|;/);
    if (items.length <= MAX_LIST_ITEMS) return { kind: 'set', braced: true, items: items.map((item) => parseStructure(item, depth + 1)) };
  }
  if ((s[0] === '(' || s[0] === '[') && (s.endsWith(')') || s.endsWith(']')) && enclosedWhole(s)) {
    const items = splitTopLevel(s.slice(1, -1), /,|;/);
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
  const bare = splitTopLevel(s, /,|;/);
  if (bare.length > 1 && bare.length <= MAX_LIST_ITEMS && bare.every((item) => item.trim() !== '')) {
    return { kind: 'set', braced: false, items: bare.map((item) => parseStructure(item, depth + 1)) };
  }
  const relation = parseRelation(s);
  if (relation !== null) return relation;
  return { kind: 'scalar', text: s };
}

/** The cells of a matrix body (`1 & 2 \\\\ 3 & 4`), a trailing empty row dropped; null when too large. */
function matrixRows(body: string): string[][] | null {
  const rows = splitTopLevel(body, /\\\\/).map((row) => splitTopLevel(row, /&/).map((cell) => cell.trim()));
  while (rows.length > 0 && rows[rows.length - 1].every((cell) => cell === '')) rows.pop();
  return rows.length > 0 && rows.length * rows[0].length <= MAX_LIST_ITEMS ? rows : null;
}

type MatrixValue = number[][];
const MATRIX_ENV = /\\begin\{([pbBvV]?matrix|array)\}(?:\{[^{}]*\})?([\s\S]*?)\\end\{\1\}/g;
const MATRIX_TOKEN = /\s*(?:(M\d+)|(\d*\.?\d+|\\frac\{\d+\}\{\d+\})|(\+|-|\\cdot|\\times|\*|\(|\)))/y;

/**
 * The value of sums, differences and products of numeric matrices and numbers (`A + B`, `A B`, `\frac12 A`), as
 * a prediction may leave them: null for anything else (a symbol, a shape mismatch, an operator not listed).
 */
function matrixArithmetic(s: string): MatrixValue | null {
  const matrices: MatrixValue[] = [];
  const cache = new Map<string, ScalarValue>();
  let failed = false;
  const expression = s.replace(/^\[|\]$/g, ' ').replace(MATRIX_ENV, (_, __, body: string) => {
    const rows = matrixRows(body);
    const values = rows?.map((row) => row.map((cell) => numericValues(cell, cache)?.[0] ?? null));
    if (values === undefined || values.some((row) => row.length !== values[0].length || row.some((v) => v === null || v[1] !== 0))) failed = true;
    else matrices.push(values.map((row) => row.map((v) => v![0])));
    return ` M${matrices.length - 1} `;
  });
  if (failed || matrices.length === 0) return null;
  const tokens: string[] = [];
  MATRIX_TOKEN.lastIndex = 0;
  while (MATRIX_TOKEN.lastIndex < expression.trimEnd().length) {
    const match = MATRIX_TOKEN.exec(expression);
    if (match === null) return null;
    tokens.push(match[0].trim());
  }
  let at = 0;
  type Value = number | MatrixValue;
  const combine = (a: Value, b: Value, op: string): Value | null => {
    if (typeof a === 'number' && typeof b === 'number') return op === '+' ? a + b : op === '-' ? a - b : a * b;
    if (op === '*') {
      if (typeof a === 'number') return (b as MatrixValue).map((row) => row.map((v) => a * v));
      if (typeof b === 'number') return a.map((row) => row.map((v) => v * b));
      if (a[0].length !== b.length) return null;
      return a.map((row) => b[0].map((_, j) => row.reduce((sum, v, k) => sum + v * b[k][j], 0)));
    }
    if (typeof a === 'number' || typeof b === 'number' || a.length !== b.length || a[0].length !== b[0].length) return null;
    return a.map((row, i) => row.map((v, j) => (op === '+' ? v + b[i][j] : v - b[i][j])));
  };
  const factor = (): Value | null => {
    const token = tokens[at++];
    if (token === '-') {
      const inner = factor();
      return inner === null ? null : combine(-1, inner, '*');
    }
    if (token === '(') {
      const inner = sum();
      return tokens[at++] === ')' ? inner : null;
    }
    if (token?.startsWith('M')) return matrices[Number(token.slice(1))];
    const scalar = token === undefined ? null : exactRational(token);
    return scalar === null ? null : toNumber(scalar);
  };
  const product = (): Value | null => {
    let value = factor();
    while (value !== null && at < tokens.length && !['+', '-', ')'].includes(tokens[at])) {
      if (['\\cdot', '\\times', '*'].includes(tokens[at])) at++;
      const next = factor();
      value = next === null ? null : combine(value, next, '*');
    }
    return value;
  };
  const sum = (): Value | null => {
    let value = product();
    while (value !== null && (tokens[at] === '+' || tokens[at] === '-')) {
      const op = tokens[at++];
      const next = product();
      value = next === null ? null : combine(value, next, op);
    }
    return value;
  };
  const value = sum();
  return value !== null && typeof value !== 'number' && at === tokens.length && value.every((row) => row.every(Number.isFinite)) ? value : null;
}

/** `\{…\}` whose opening `\{` closes at the very end. */
function closesAtEnd(s: string): boolean {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && (s[i + 1] === '{' || s[i + 1] === '}')) {
      depth += s[i + 1] === '{' ? 1 : -1;
      if (depth === 0) return i === s.length - 2;
      i++;
    }
  }
  return false;
}

function parseRelation(s: string): AnswerStructure | null {
  const ops: string[] = [];
  const parts = splitTopLevel(s, RELATION, ops).map((part) => part.trim());
  if (ops.length === 0 || parts.some((part) => part === '')) return null;
  return { kind: 'relation', parts, ops: ops as RelationOp[] };
}

// ---- equivalence ----------------------------------------------------------------------------------------------

/** The text without white space, but for one space between letters or digits (`2 3` is not 23). */
function compactText(s: string): string {
  if (!/\s/.test(s)) return s;
  return s.trim().replace(/\s+/g, ' ').replace(/(?<![A-Za-z0-9]) | (?![A-Za-z0-9])/g, '');
}

type Relation = Extract<AnswerStructure, { kind: 'relation' }>;

const isEquation = (s: AnswerStructure): s is Relation => s.kind === 'relation' && s.ops.every((op) => op === '=');
const isAssignment = (s: AnswerStructure): s is Relation => isEquation(s) && isName(s.parts[0]);
const isEquationChain = (s: Relation): boolean => s.parts.length > 2 && s.ops.every((op) => op === '=');

/** Two normalised readings (gold first). */
function readingsEqual(gold: string, pred: string, cache: Map<string, ScalarValue>): boolean {
  return compactText(gold) === compactText(pred) || structuresEqual(parseStructure(gold), parseStructure(pred), cache);
}

/**
 * Definitions and equations read as Math-Verify does before comparing (gold first): two equations compare as
 * relations (two assignments need the same name); an assignment or chain in the gold against a value gives its
 * last side, as does an equation in the prediction; a relation in the gold against an interval becomes one.
 */
function unwrapRelations(g: AnswerStructure, p: AnswerStructure): [AnswerStructure, AnswerStructure] {
  if (g.kind === 'relation' && p.kind !== 'relation') {
    // A chain `a = b = c` gives its last side, as does an assignment.
    if (isAssignment(g) || isEquationChain(g)) g = parseStructure(g.parts[g.parts.length - 1]);
    else if (p.kind === 'tuple' || p.kind === 'union') g = relationAsInterval(g) ?? g;
  } else if (isEquation(p) && g.kind !== 'relation') p = parseStructure(p.parts[p.parts.length - 1]);
  return [g, p];
}

/** Two equations: the same name and value for two assignments, else the same relation of first and last sides. */
function equationsEqual(g: Relation, p: Relation, cache: Map<string, ScalarValue>): boolean {
  if (isAssignment(g) && isAssignment(p)) {
    // Names compare without case (P(x) = p(x)), as Math-Verify lowercases symbols.
    return compactText(g.parts[0]).toLowerCase() === compactText(p.parts[0]).toLowerCase() && scalarsEqual(g.parts[g.parts.length - 1], p.parts[p.parts.length - 1], cache);
  }
  return relationsEqual(firstAndLast(g), firstAndLast(p), cache);
}

/** `a = b = c` -> `a = c` (an equation chain says its first side equals its last). */
function firstAndLast(r: Relation): Relation {
  return r.parts.length === 2 ? r : { kind: 'relation', parts: [r.parts[0], r.parts[r.parts.length - 1]], ops: ['='] };
}

function structuresEqual(a: AnswerStructure, b: AnswerStructure, cache: Map<string, ScalarValue>): boolean {
  if (isEquation(a) && isEquation(b)) return equationsEqual(a, b, cache);
  [a, b] = unwrapRelations(a, b);
  switch (a.kind) {
    case 'scalar':
      if (b.kind === 'set' && b.braced && b.items.length === 1) return structuresEqual(a, b.items[0], cache);
      return b.kind === 'scalar' && scalarsEqual(a.text, b.text, cache);
    case 'tuple':
      if (b.kind === 'set' && !b.braced && a.open === '(' && a.close === ')') return sameSequence(a.items, b.items, cache);
      return b.kind === 'tuple' && a.open === b.open && a.close === b.close && sameSequence(a.items, b.items, cache);
    case 'set':
      if (b.kind === 'tuple' && !a.braced && b.open === '(' && b.close === ')') return sameSequence(a.items, b.items, cache);
      if (b.kind === 'scalar' && a.braced && a.items.length === 1) return structuresEqual(a.items[0], b, cache);
      // Sets: the same elements, a repeated one counted once.
      return b.kind === 'set' && sameElements(a.items, b.items, cache);
    case 'union':
      return b.kind === 'union' && a.parts.length === b.parts.length && sameElements(a.parts, b.parts, cache);
    case 'matrix':
      return (
        b.kind === 'matrix' && a.rows.length === b.rows.length &&
        a.rows.every((row, i) => row.length === b.rows[i].length && row.every((cell, j) => scalarsEqual(cell, b.rows[i][j], cache)))
      );
    case 'relation':
      return b.kind === 'relation' && relationsEqual(a, b, cache);
  }
}

function sameSequence(a: readonly AnswerStructure[], b: readonly AnswerStructure[], cache: Map<string, ScalarValue>): boolean {
  return a.length === b.length && a.every((item, i) => structuresEqual(item, b[i], cache));
}

/** Set equality: every element of each side equals some element of the other. */
function sameElements(a: readonly AnswerStructure[], b: readonly AnswerStructure[], cache: Map<string, ScalarValue>): boolean {
  const covered = (xs: readonly AnswerStructure[], ys: readonly AnswerStructure[]) =>
    xs.every((x) => ys.some((y) => structuresEqual(x, y, cache)));
  return covered(a, b) && covered(b, a);
}

// ---- relations ------------------------------------------------------------------------------------------------

/** One comparison `left op right` read as `d op' 0` with d = left - right and op' one of < ≤ = ≠. */
interface Atom {
  left: string;
  right: string;
  op: '<' | '\\le' | '=' | '\\ne';
}

function atoms(r: Relation): Atom[] {
  return r.ops.map((op, i) => {
    const [left, right] = [r.parts[i], r.parts[i + 1]];
    if (op === '>') return { left: right, right: left, op: '<' };
    if (op === '\\ge') return { left: right, right: left, op: '\\le' };
    return { left, right, op };
  });
}

/** Same comparisons (in any order), each `d op 0` agreeing up to a constant factor (see the top of this file). */
function relationsEqual(a: Relation, b: Relation, cache: Map<string, ScalarValue>): boolean {
  const [as, bs] = [atoms(a), atoms(b)];
  if (as.length !== bs.length) return false;
  const used = new Set<number>();
  return as.every((x) => {
    const j = bs.findIndex((y, k) => !used.has(k) && atomsEqual(x, y, cache));
    if (j < 0) return false;
    used.add(j);
    return true;
  });
}

function atomsEqual(a: Atom, b: Atom, cache: Map<string, ScalarValue>): boolean {
  if (a.op !== b.op) return false;
  if (scalarsEqual(a.left, b.left, cache) && scalarsEqual(a.right, b.right, cache)) return true;
  const symmetric = a.op === '=' || a.op === '\\ne';
  if (symmetric && scalarsEqual(a.left, b.right, cache) && scalarsEqual(a.right, b.left, cache)) return true;
  const [da, db] = [difference(a, cache), difference(b, cache)];
  if (da === null || db === null) return false;
  const constant = da.constant && db.constant;
  let ratio: Complex | null = null;
  for (let i = 0; i < SAMPLE_POINTS; i++) {
    const [x, y] = [da.values[i], db.values[i]];
    if (x === null || y === null) return false;
    if (x.zero || y.zero) {
      if (x.zero !== y.zero) return false;
      continue;
    }
    const r = div(x.value, y.value);
    if (ratio === null) ratio = r;
    else if (!valuesClose(ratio, r)) return false;
  }
  // Identities (0 everywhere) constrain nothing: only equal texts match them, above.
  if (ratio === null) return false;
  if (constant) return valuesClose(ratio, [1, 0]);
  return symmetric ? true : ratio[1] === 0 && ratio[0] > 0;
}

interface Difference {
  values: Array<{ value: Complex; zero: boolean } | null>;
  constant: boolean;
}

/** left - right at the sample points, each marked zero when it vanishes relative to the sides' size. */
function difference(atom: Atom, cache: Map<string, ScalarValue>): Difference | null {
  const [l, r] = [numericValues(atom.left, cache), numericValues(atom.right, cache)];
  if (l === null || r === null) return null;
  const values = l.map((lv, i) => {
    const rv = r[i];
    if (!isFiniteComplex(lv) || !isFiniteComplex(rv)) return null;
    const value: Complex = [lv[0] - rv[0], lv[1] - rv[1]];
    const scale = Math.max(1, Math.hypot(lv[0], lv[1]), Math.hypot(rv[0], rv[1]));
    return { value, zero: Math.hypot(value[0], value[1]) <= 1e-9 * scale };
  });
  const constant = values.every((v) => v !== null && v.value[0] === values[0]?.value[0] && v.value[1] === values[0]?.value[1]);
  return { values, constant };
}

function div(a: Complex, b: Complex): Complex {
  const d = b[0] * b[0] + b[1] * b[1];
  return [(a[0] * b[0] + a[1] * b[1]) / d, (a[1] * b[0] - a[0] * b[1]) / d];
}

/** `-2 \le x \le 7` -> [-2, 7], `x > 5` -> (5, \infty): a relation of one name as the interval it describes. */
function relationAsInterval(r: Relation): AnswerStructure | null {
  const bound = (text: string): AnswerStructure => ({ kind: 'scalar', text });
  if (r.parts.length === 2) {
    const [op] = r.ops;
    let [left, right] = r.parts;
    let flipped = false;
    if (!isName(left) && isName(right)) {
      [left, right] = [right, left];
      flipped = true;
    }
    if (!isName(left) || isName(right)) return null;
    const less = (op === '<' || op === '\\le') !== flipped;
    const closed = op === '\\le' || op === '\\ge';
    if (op === '=' || op === '\\ne') return null;
    return less
      ? { kind: 'tuple', open: '(', close: closed ? ']' : ')', items: [bound('-\\infty'), bound(right)] }
      : { kind: 'tuple', open: closed ? '[' : '(', close: ')', items: [bound(right), bound('\\infty')] };
  }
  if (r.parts.length === 3 && isName(r.parts[1])) {
    const increasing = r.ops.every((op) => op === '<' || op === '\\le');
    const decreasing = r.ops.every((op) => op === '>' || op === '\\ge');
    if (!increasing && !decreasing) return null;
    const [low, high] = increasing ? [r.parts[0], r.parts[2]] : [r.parts[2], r.parts[0]];
    const [lowOp, highOp] = increasing ? r.ops : [r.ops[1], r.ops[0]];
    const closed = (op: RelationOp) => op === '\\le' || op === '\\ge';
    return { kind: 'tuple', open: closed(lowOp) ? '[' : '(', close: closed(highOp) ? ']' : ')', items: [bound(low), bound(high)] };
  }
  return null;
}

// ---- scalars --------------------------------------------------------------------------------------------------

interface ScalarValue {
  compact: string;
  exact: Rational | null;
  /** Written as a decimal number (0.333), which Math-Verify compares to other values after rounding. */
  decimal: boolean;
  word: string | null;
  values: Complex[] | null;
}

function scalarValue(text: string, cache: Map<string, ScalarValue>): ScalarValue {
  let value = cache.get(text);
  if (value === undefined) {
    const exact = exactRational(text);
    const word = /^(?:[A-Za-z]{3,}|[A-Za-z]{2,}(?: [A-Za-z]+)+)$/.test(text) ? text.toLowerCase() : /^[A-Z]$/.test(text) ? text : null;
    // Numbers in a base (204_5), ellipses and improper mixed numbers (11 7/6) are text, not expressions.
    // The engine reads `2 3` as 23 and `(11) 4/9` as 11 + 4/9: numbers side by side are text too.
    const textOnly = /\d_\{?\w+\}?|\.\.\.|\d\s+\.?\d|\)\s*\d/.test(text);
    const parseable = exact === null && word === null && !textOnly && text.length <= MAX_PARSE_CHARS;
    const decimal = exact !== null && /^[-+]?\d*\.\d+(?:\\times10\^\{?[-+]?\d+\}?)?$/.test(compactText(text));
    value = { compact: compactText(text), exact, decimal, word, values: parseable ? sampleValues(text) : null };
    cache.set(text, value);
  }
  return value;
}

function numericValues(text: string, cache: Map<string, ScalarValue>): Complex[] | null {
  const v = scalarValue(text, cache);
  return v.values ?? (v.exact !== null ? constantValues(v.exact) : null);
}

function scalarsEqual(a: string, b: string, cache: Map<string, ScalarValue>): boolean {
  const [x, y] = [scalarValue(a, cache), scalarValue(b, cache)];
  if (x.compact === y.compact) return true;
  if (x.exact !== null && y.exact !== null) {
    if (x.exact.num * y.exact.den === y.exact.num * x.exact.den) return true;
    // 0.333333 against 1/3: a decimal against a fraction that no decimal writes exactly.
    if (x.decimal !== y.decimal) {
      const [decimal, other] = x.decimal ? [x.exact, y.exact] : [y.exact, x.exact];
      return !terminates(other) && roundedEqual(toNumber(decimal), toNumber(other));
    }
    return false;
  }
  if (x.word !== null || y.word !== null) return x.word === y.word;
  const xs = numericValues(a, cache);
  const ys = numericValues(b, cache);
  if (xs === null || ys === null) return false;
  if (x.decimal !== y.decimal && (x.decimal || y.decimal)) {
    // A decimal against an irrational constant (1.41421356 against \sqrt{2}): rounding, as Math-Verify.
    const other = x.decimal ? ys : xs;
    const decimal = toNumber((x.decimal ? x.exact : y.exact)!);
    if (other.every((v) => v[1] === 0 && v[0] === other[0][0])) return roundedEqual(decimal, other[0][0]);
  }
  return sampledEqual(xs, ys);
}

// Math-Verify's default float_rounding: a written decimal equals a value that rounds like it at 6 decimals.
const ROUNDING_DECIMALS = 6;

/** Equal after rounding both to ROUNDING_DECIMALS places; below 1e-3 also within 0.1% (so 1e-7 != 2e-7). */
function roundedEqual(a: number, b: number): boolean {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  const scale = 10 ** ROUNDING_DECIMALS;
  if (Math.max(Math.abs(a), Math.abs(b)) >= 1e9) return Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));
  if (Math.round(a * scale) !== Math.round(b * scale)) return false;
  return Math.max(Math.abs(a), Math.abs(b)) >= 1e-3 || Math.abs(a - b) <= 1e-3 * Math.max(Math.abs(a), Math.abs(b));
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

// ---- exact rationals ------------------------------------------------------------------------------------------

interface Rational {
  num: bigint;
  den: bigint;
}

const DECIMAL = String.raw`(\d*\.?\d+)`;
const PLAIN_DECIMAL = new RegExp(`^([-+]?)${DECIMAL}$`);
const SCIENTIFIC = new RegExp(String.raw`^([-+]?)${DECIMAL}(?:\\times|\\cdot)10\^(?:\{([-+]?\d{1,3})\}|(\d))$`);
const FRACTION = new RegExp(String.raw`^([-+]?)(?:\\frac\{([-+]?)${DECIMAL}\}\{([-+]?)${DECIMAL}\}|${DECIMAL}/${DECIMAL})$`);

/**
 * Integers, decimals, a/b and \frac{a}{b} of those (with signs), and m\times10^{k}, as exact rationals; null for
 * anything else.
 */
export function exactRational(text: string): Rational | null {
  const s = compactText(text);
  let match = PLAIN_DECIMAL.exec(s);
  if (match !== null) return signed(decimalRational(match[2]), match[1]);
  match = SCIENTIFIC.exec(s);
  if (match !== null) {
    const mantissa = decimalRational(match[2]);
    const exponent = BigInt(match[3] ?? match[4]);
    const scaled = exponent >= 0n ? { num: mantissa.num * 10n ** exponent, den: mantissa.den } : { num: mantissa.num, den: mantissa.den * 10n ** -exponent };
    return signed(scaled, match[1]);
  }
  match = FRACTION.exec(s);
  if (match !== null) {
    const [, sign, numSign, num1, denSign, den1, num2, den2] = match;
    const [n, d] = [decimalRational(num1 ?? num2), decimalRational(den1 ?? den2)];
    if (d.num === 0n) return null;
    const negative = [sign, numSign, denSign].filter((x) => x === '-').length % 2 === 1;
    return { num: n.num * d.den * (negative ? -1n : 1n), den: n.den * d.num };
  }
  return null;
}

function decimalRational(digits: string): Rational {
  const [whole, fraction = ''] = digits.split('.');
  return { num: BigInt((whole || '0') + fraction), den: 10n ** BigInt(fraction.length) };
}

function signed(r: Rational, sign: string): Rational {
  return sign === '-' ? { num: -r.num, den: r.den } : r;
}

/** Whether a rational has a finite decimal expansion (its reduced denominator has no prime but 2 and 5). */
function terminates(r: Rational): boolean {
  let den = r.den / gcd(r.num < 0n ? -r.num : r.num, r.den);
  for (const p of [2n, 5n]) while (den % p === 0n) den /= p;
  return den === 1n;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a === 0n ? 1n : a;
}

function toNumber(r: Rational): number {
  return Number(r.num) / Number(r.den);
}

function constantValues(r: Rational): Complex[] {
  const value = toNumber(r);
  return Array.from({ length: SAMPLE_POINTS }, (): Complex => [value, 0]);
}
