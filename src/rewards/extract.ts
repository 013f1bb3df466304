// Finding the final answer in a whole solution, the way a grader reads one (the first step of Math-Verify's
// `parse`, which open-r1 and TRL apply to the gold and to the prediction alike). Only text is located here;
// answer.ts normalises and compares what is found.
//
// Places, from the most to the least explicit (ANSWER_PLACES); within one tier the occurrence that ends last
// wins, as Math-Verify orders matches of equal priority by their end:
//   1. answer-tag   the last complete `<answer>…</answer>` (R1-Zero's required place), read again inside;
//   2. boxed        the last `\boxed{…}` / `\fbox{…}` (with boxes joined by "and", "," or `\quad` before it:
//                   `\boxed{-2} and \boxed{1}` is the list -2, 1);
//      gsm8k        the rest of the line after the last `####`;
//      phrase       "the final answer is X" / "Final Answer: … is X" (X is math right after "is", else the
//                   text up to the end of the sentence);
//   3. phrase       "answer: X", "the answer is X", "answer = X" (the first value within ANSWER_WINDOW
//                   characters), "Answer $X$" / "Answer 9" (the value right after the word);
//   4. math         the last `$…$`, `$$…$$`, `\(…\)` or `\[…\]` (display math may span lines, inline math
//                   not), joined with the ones before it by "and", "or" or ",";
//      last-number  the last number in the prose: signs, thousands groups (1,000 / 1 000), a decimal comma
//                   where it cannot be a thousands group (1,22 = 1.22; 0,111 = 0.111), a/b, mixed numbers
//                   (4 4/9), `\frac{a}{b}`, a currency sign before and a percent after; never digits inside a
//                   word (AZYUK2A has no 2).
// Before tier 4, a text that is itself a bare answer (`x = 5`, `1 000`) is taken whole, and with multiple-choice
// letters a standalone letter is taken. A percent sign right after the answer's math (`$28$ %`,
// `\boxed{28}$ percent`) stays with the answer.
//
// Every scan is linear in the text: regexes without nested quantifiers, a scan for math that remembers the next
// closer of each kind, and at most MAX_BOX_TRIES boxes and MAX_PHRASE_TRIES phrases tried from the end; extraction
// from megabytes of text takes milliseconds.

/** Where a final answer may be read from (see the tiers above). */
export const ANSWER_PLACES = ['answer-tag', 'boxed', 'gsm8k', 'phrase', 'math', 'last-number'] as const;
export type AnswerPlace = (typeof ANSWER_PLACES)[number];

export interface ExtractedAnswer {
  answer: string;
  place: AnswerPlace;
}

export interface ExtractOptions {
  /**
   * Multiple-choice letters (e.g. ['A', 'B', 'C', 'D']): when set and no explicit place holds an answer, a
   * standalone letter among them is taken before any math or number (Math-Verify's string extraction).
   */
  choices?: readonly string[];
}

interface Found {
  answer: string;
  end: number;
}

/** A piece of the text: a box's content, a math span, a number. */
interface Span extends Found {
  start: number;
}

// Tiers 2 to 4 above (the answer tag comes first, and its content is read again).
const TIERS: ReadonlyArray<ReadonlyArray<[AnswerPlace, (text: string) => Found | null]>> = [
  [
    ['boxed', lastBoxedAnswer],
    ['gsm8k', lastGsm8k],
    ['phrase', lastFinalAnswerPhrase],
  ],
  [['phrase', lastAnswerPhrase]],
  [
    ['math', lastMath],
    ['last-number', lastNumberFound],
  ],
];

/**
 * The final answer of a whole solution from the allowed places (see the tiers at the top of this file), or null.
 * R1-Zero's accuracy reward allows only 'answer-tag'.
 */
export function extractAnswer(
  text: string,
  places: readonly AnswerPlace[] = ANSWER_PLACES,
  options: ExtractOptions = {},
): ExtractedAnswer | null {
  if (places.includes('answer-tag')) {
    const content = lastAnswerTag(text);
    if (content !== null && content.trim() !== '') {
      const inner = isBareAnswer(content) ? null : extractAnswer(content, ANSWER_PLACES.filter((p) => p !== 'answer-tag'), options);
      return { answer: (inner?.answer ?? content).trim(), place: 'answer-tag' };
    }
  }
  for (const [tier, candidates] of TIERS.entries()) {
    const lastTier = tier === TIERS.length - 1;
    // A text with no explicit place that is itself an answer (`x = 5`, `1 000`, `\{1, 2\}`) is taken whole.
    if (lastTier && (places.includes('math') || places.includes('last-number')) && isBareAnswer(text)) {
      return { answer: text.trim(), place: 'math' };
    }
    if (lastTier && options.choices !== undefined && options.choices.length > 0) {
      const choice = lastChoice(text, options.choices);
      if (choice !== null) return { answer: choice, place: 'phrase' };
    }
    let best: (Found & { place: AnswerPlace }) | null = null;
    for (const [place, find] of candidates) {
      if (!places.includes(place)) continue;
      const found = find(text);
      if (found !== null && found.answer.trim() !== '' && (best === null || found.end > best.end)) best = { ...found, place };
    }
    if (best !== null) return { answer: best.answer.trim(), place: best.place };
  }
  return null;
}

/**
 * Whether a text is an answer as it stands (`\frac{1}{2}`, `5 meters`, `x \in [1, 2]`, `Evelyn`) rather than a
 * solution to extract one from: no math delimiters, box, tag, `####` or "answer" phrase, and at most
 * MAX_BARE_WORDS words of prose.
 */
export function isBareAnswer(text: string): boolean {
  if (text.length > 2000) return false;
  if (/(?<!\\)\$|\\[([]|\\(?:boxed|fbox)(?![a-zA-Z])|####|<\/?answer>|<\/?think>|\banswer\b|\b(?:is|are|was|were|equals|gives)\b/i.test(text)) return false;
  const prose = text
    .replace(/\\(?:text|textbf|textit|textrm|textnormal|mbox|mathrm|operatorname|begin|end)\s*\{[^{}]*\}/g, ' ')
    .replace(/\\[a-zA-Z]+/g, ' ');
  const words = prose.match(/[A-Za-z]{2,}/g) ?? [];
  // Lines are separate statements ("11\n5/6" is not 11 5/6), except inside a matrix.
  return words.length <= MAX_BARE_WORDS && (!text.includes('\n') || /\\begin\{/.test(text));
}

const MAX_BARE_WORDS = 3;

// ---- answer tag -----------------------------------------------------------------------------------------------

/** The content of the last complete `<answer>…</answer>`, or null. */
export function lastAnswerTag(text: string): string | null {
  const close = text.lastIndexOf('</answer>');
  if (close < 0) return null;
  const open = text.lastIndexOf('<answer>', close);
  if (open < 0) return null;
  return text.slice(open + '<answer>'.length, close);
}

// ---- boxes ----------------------------------------------------------------------------------------------------

// Tries at most this many \boxed occurrences from the end (a truncated last box falls back to the one before).
const MAX_BOX_TRIES = 16;
// What may stand between two boxes that give one answer together: `\boxed{1}, \boxed{2}`, `$\boxed{-2}$ and
// $\boxed{1}$`, `\boxed{1} \quad \text{and} \quad \boxed{2}`.
const BOX_JOINER = /^(?:[\s$,;&.]|\\[()[\]]|\\quad|\\qquad|\\[,;: ]|\\text\s*\{\s*(?:and|or|,)?\s*\}|\band\b|\bor\b)*$/;
const BOX_CONNECTOR = /[,;&]|\band\b|\bor\b|\\q?quad/;
const PERCENT_AFTER = /^\s*\$?\s*(?:\\?%|percent(?:age)?\b|pct\b)/i;

/** The last complete boxes of a text, the last one first (at most MAX_BOX_TRIES are tried). */
function lastBoxes(text: string): Span[] {
  const starts: number[] = [];
  for (const match of text.matchAll(/\\(?:boxed|fbox)(?![a-zA-Z])/g)) starts.push(match.index);
  const boxes: Span[] = [];
  for (let k = starts.length - 1; k >= Math.max(0, starts.length - MAX_BOX_TRIES); k--) {
    let i = starts[k] + (text.startsWith('\\boxed', starts[k]) ? 6 : 5);
    while (text[i] === ' ') i++;
    if (text[i] === '{') {
      const end = matchingBrace(text, i);
      if (end >= 0) boxes.push({ answer: text.slice(i + 1, end), start: starts[k], end: end + 1 });
    } else if (i > starts[k] + 5) {
      // `\boxed 5`: one token, up to whitespace or a closing `$`.
      const token = /^[^\s$]+/.exec(text.slice(i, i + 1000));
      if (token !== null) boxes.push({ answer: token[0].replace(/[.,]$/, ''), start: starts[k], end: i + token[0].length });
    }
  }
  return boxes;
}

/** The content of the last `\boxed{…}` / `\fbox{…}` with balanced braces (or `\boxed 5`), or null. */
export function lastBoxed(text: string): string | null {
  return lastBoxes(text)[0]?.answer ?? null;
}

function lastBoxedAnswer(text: string): Found | null {
  const boxes = lastBoxes(text);
  if (boxes.length === 0) return null;
  const joined = [boxes[0]];
  for (let k = 1; k < boxes.length && boxes[k].end <= joined[0].start; k++) {
    const gap = text.slice(boxes[k].end, joined[0].start);
    // Boxes in separate math (`$$\boxed{20}$$ \boxed{143}`) are one answer only when a word or comma joins them.
    if (!BOX_JOINER.test(gap) || (/\$|\\[()[\]]/.test(gap) && !BOX_CONNECTOR.test(gap))) break;
    joined.unshift(boxes[k]);
  }
  const answer = joined.map((box) => box.answer.trim()).join(', ');
  return { answer: withPercent(answer, text, boxes[0].end), end: boxes[0].end };
}

/** `answer` with `\%` appended when a percent sign follows it in the text at `end`. */
function withPercent(answer: string, text: string, end: number): string {
  return PERCENT_AFTER.test(text.slice(end, end + 16)) && !/%\s*$/.test(answer) ? `${answer}\\%` : answer;
}

/** Index of the `}` closing the `{` at `open` (escaped `\{`, `\}` skipped), or -1. */
export function matchingBrace(text: string, open: number): number {
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

// ---- GSM8K ----------------------------------------------------------------------------------------------------

/** GSM8K: the rest of the line after the last `####`. */
export function lastGsm8kAnswer(text: string): string | null {
  return lastGsm8k(text)?.answer ?? null;
}

function lastGsm8k(text: string): Found | null {
  const at = text.lastIndexOf('####');
  if (at < 0) return null;
  const line = text.slice(at + 4).split('\n', 1)[0];
  return { answer: line.trim().replace(/\.$/, ''), end: at + 4 + line.length };
}

// ---- phrases --------------------------------------------------------------------------------------------------

// How far after the word "answer" its value may start, as Math-Verify's `answer.{0,50}?`.
const ANSWER_WINDOW = 50;
// Tries at most this many phrases from the end (a degenerate text repeating "answer" stays linear).
const MAX_PHRASE_TRIES = 16;
// How far after "final answer" the "is" may come ("Final Answer: The largest $n$ is 34.").
const FINAL_ANSWER_WINDOW = 100;

/**
 * "The final answer is X" / "Final Answer: … is X": the last one that holds an answer. The phrase must introduce
 * its value (a colon, a line break or "is" after it, or an "is" later in a sentence that has no other clause):
 * "before giving the final answer, let me check: 3 + 4 = 7" gives nothing.
 */
function lastFinalAnswerPhrase(text: string): Found | null {
  const anchors = [...text.matchAll(/final\s+answer/gi)];
  for (let k = anchors.length - 1; k >= Math.max(0, anchors.length - MAX_PHRASE_TRIES); k--) {
    const from = anchors[k].index + anchors[k][0].length;
    const rest = text.slice(from, from + FINAL_ANSWER_WINDOW + 1000);
    const sentence = rest.slice(0, sentenceEnd(rest, 0));
    const is = /\sis\b\s*:?/i.exec(sentence.slice(0, FINAL_ANSWER_WINDOW + 4));
    const introduced = /^[\s*]*(?::|\bis\b|\n)/i.test(rest);
    if (!introduced && (is === null || /[,;:]/.test(sentence.slice(0, is.index)))) continue;
    // The value follows an "is" of the same sentence ("Final Answer: The volume of $V$ is 120."), else the
    // sentence itself is the value ("Final Answer: $5$", "Final Answer: Jane started 3 hours ago.").
    const lead = is !== null ? is.index + is[0].length : /^[\s*:]*/.exec(rest)![0].length;
    const found = valueAt(rest, lead, true);
    if (found !== null) return { answer: found.answer, end: from + found.end };
  }
  return null;
}

/**
 * "answer: X", "the answer is X", "answer = X", and "Answer \\[ X \\]" / "Answer 9" (the value right after the
 * word): the last one that holds an answer. "let me check the answer. 3 + 4 = 7" gives nothing.
 */
function lastAnswerPhrase(text: string): Found | null {
  const anchors = [...text.matchAll(/\banswer\b/gi)];
  for (let k = anchors.length - 1; k >= Math.max(0, anchors.length - MAX_PHRASE_TRIES); k--) {
    const from = anchors[k].index + anchors[k][0].length;
    const rest = text.slice(from, from + ANSWER_WINDOW + 1000);
    const connector = /^[*\s]*(?::|\bis\b|=)[\s:*]*/i.exec(rest);
    const lead = connector !== null ? connector[0].length : /^[*\s]*/.exec(rest)![0].length;
    const found = valueAt(rest, lead, false);
    // Without ":", "is" or "=", only math, a number or a choice letter right after the word is its value.
    const immediate = found !== null && found.start === lead && /^(?:[\\$\d.(+-]|[A-Z]\b)/.test(rest.slice(lead));
    if (found !== null && (connector !== null || immediate)) return { answer: found.answer, end: from + found.end };
  }
  return null;
}

/** Where the sentence starting at `from` ends: a full stop before a space, "I hope", a line break or the end. */
function sentenceEnd(text: string, from: number): number {
  const end = /\.(?=\s|$)|\s+I hope|\n/.exec(text.slice(from));
  return end === null ? text.length : from + end.index;
}

/**
 * The value a phrase gives from `start` of `rest`: math that starts there (with the math joined to it), else the
 * rest of the sentence when it is a bare answer ("is B.", "is 19 apples."); else for "final answer" the last
 * math or number of the sentence, and for "answer" the first within ANSWER_WINDOW characters.
 */
function valueAt(rest: string, start: number, finalAnswer: boolean): Span | null {
  const head = rest.slice(start);
  const lead = /^\s*/.exec(head)![0].length;
  const spans = mathSpans(head);
  if (spans.length > 0 && spans[0].start === lead) {
    const joined = joinedMath(head, spans, 0, true);
    return { answer: joined.answer, start: start + joined.start, end: start + joined.end };
  }
  const end = sentenceEnd(head, lead);
  const sentence = head.slice(lead, end).replace(/\*+/g, '').trim();
  if (sentence !== '' && sentence.length <= 200 && isBareAnswer(sentence)) return { answer: sentence, start: start + lead, end: start + end };
  const limit = finalAnswer ? end : lead + ANSWER_WINDOW;
  const candidates: Span[] = [
    ...spans.map((span, i) => (span.start < limit ? joinedMath(head, spans, i, false) : null)).filter((s): s is Span => s !== null),
    ...numbers(head.slice(0, finalAnswer ? end : limit + 40)).filter((n) => n.start < limit),
  ];
  if (candidates.length === 0) return null;
  const best = candidates.reduce((a, b) => (finalAnswer ? (b.end > a.end ? b : a) : b.start < a.start ? b : a));
  return { answer: best.answer, start: start + best.start, end: start + best.end };
}

// ---- math -----------------------------------------------------------------------------------------------------

// $$…$$ and \[…\] may span lines; $…$ and \(…\) may not. A `$` right after a digit or a backslash is money or
// an escaped dollar, not math. Lazy regexes as Math-Verify's find these in quadratic time on a text of many
// unclosed openers (a degenerate completion of 50,000 `\(` took 80 s); this scan is linear: each opener looks
// for its closer from where it stands, and the next closer of each kind is remembered.
const MATH_OPENER = /\$\$|\$|\\\[|\\\(/g;
const MATH_JOINER = /^\s*(?:,?\s*(?:and|or)|,)\s*$/i;
// Math-Verify joins at most five more expressions to the first.
const MAX_JOINED = 6;

function mathSpans(text: string): Span[] {
  const spans: Span[] = [];
  const nextAt = new Map<string, number>();
  // The first `needle` at or after `from` (from only grows, so a remembered position stays right until passed).
  const find = (needle: string, from: number): number => {
    const known = nextAt.get(needle);
    if (known !== undefined && (known === -1 || known >= from)) return known;
    const at = text.indexOf(needle, from);
    nextAt.set(needle, at);
    return at;
  };
  MATH_OPENER.lastIndex = 0;
  for (let match = MATH_OPENER.exec(text); match !== null; match = MATH_OPENER.exec(text)) {
    const [opener, at] = [match[0], match.index];
    const from = at + opener.length;
    let close = -1;
    let closer = '';
    if (opener === '$$' || opener === '\\[') {
      closer = opener === '$$' ? '$$' : '\\]';
      close = find(closer, from + 1);
    } else if (opener === '\\(') {
      closer = '\\)';
      close = find(closer, from + 1);
      const newline = find('\n', from);
      if (newline !== -1 && newline < close) close = -1;
    } else if (!/[\\\d$]/.test(text[at - 1] ?? '')) {
      // Inline $…$: the next `$` on the line that is not escaped.
      closer = '$';
      const newline = find('\n', from);
      for (let k = text.indexOf('$', from + 1); k !== -1 && (newline === -1 || k < newline); k = text.indexOf('$', k + 1)) {
        if (text[k - 1] !== '\\') {
          close = k;
          break;
        }
      }
    }
    if (close === -1) continue;
    MATH_OPENER.lastIndex = close + closer.length;
    const body = text.slice(from, close);
    // `costs $5 and then $6`: an amount followed by words between two dollar signs is money, not math.
    if (body.trim() === '' || (opener === '$' && /^\d[\d,.]*\s+[A-Za-z]{2,}/.test(body))) continue;
    spans.push({ answer: body.trim(), start: at, end: close + closer.length });
  }
  return spans;
}

/** Joins math spans written as one answer ("$1$, $2$ and $3$") and keeps a percent sign written after them. */
function joinedMath(text: string, spans: readonly Span[], last: number, forward: boolean): Span {
  let [first, final] = [last, last];
  if (forward) {
    while (final + 1 < spans.length && final - first + 1 < MAX_JOINED && MATH_JOINER.test(text.slice(spans[final].end, spans[final + 1].start))) final++;
  } else {
    while (first > 0 && final - first + 1 < MAX_JOINED && MATH_JOINER.test(text.slice(spans[first - 1].end, spans[first].start))) first--;
  }
  const parts = spans.slice(first, final + 1).map((span) => withPercent(mathBody(span.answer), text, span.end));
  return { answer: parts.join(', '), start: spans[first].start, end: spans[final].end };
}

/** Math content with the boxes inside it read out (`$x = \boxed{5}$` -> 5). */
function mathBody(body: string): string {
  const boxed = lastBoxedAnswer(body);
  return boxed !== null ? boxed.answer : body;
}

function lastMath(text: string): Found | null {
  const spans = mathSpans(text);
  if (spans.length === 0) return null;
  const joined = joinedMath(text, spans, spans.length - 1, false);
  return { answer: joined.answer, end: joined.end };
}

function firstMath(text: string): Span | null {
  const match = /\S/.exec(text);
  const spans = mathSpans(text.slice(0, 2000));
  if (spans.length === 0) return null;
  const joined = joinedMath(text, spans, 0, true);
  return match !== null && spans[0].start === match.index ? { ...joined, start: 0 } : joined;
}

// ---- numbers --------------------------------------------------------------------------------------------------

// A number: not right after a letter, digit, `_`, `.` or `/` (so `AZYUK2A` and `x_2` give none); an optional sign
// (not after a closing bracket: `5-3` gives 3); an optional currency sign; a mixed number `4 4/9` (the whole part
// and a fraction on one line, one space apart); digits with space-separated thousands groups (1 000) or
// comma-separated digit runs (1,000 / 1,22 / 1,2,3, resolved in `numberText`), decimals or a bare `.5`; an
// optional `/b`; an optional percent. `\frac{a}{b}` with plain numbers counts as a number.
const NUMBER =
  /(?<![A-Za-z0-9_.\\)\]}\/])(-|−|\+)?(?:[$€£¥₹]\s?)?(?:(?:([1-9]\d{0,2}(?: \d{3})+|\d+) (\d+)\/(\d+)(?![\d.\/]))|([1-9]\d{0,2}(?: \d{3})+(?![\d,])(?:\.\d+)?)|(\d+(?:,\d+)*(?:\.\d+)?)|(\.\d+))(?:\s?\/\s?(\d+)(?!\d|\.\d))?(\s*(?:\\?%|percent(?:age)?\b|pct\b))?|(-)?\\[dtc]?frac\{(\d+)\}\{(\d+)\}/gi;

/** The text of the last number in a text (see NUMBER), or null. */
export function lastNumber(text: string): string | null {
  return lastNumberFound(text)?.answer ?? null;
}

function lastNumberFound(text: string): Found | null {
  const all = numbers(text);
  return all.length === 0 ? null : all[all.length - 1];
}

/** Every number of a text (see NUMBER), in order, as canonical text: 1,000 -> 1000, 1,22 -> 1.22, 28% -> 28\\%. */
function numbers(text: string): Span[] {
  const found: Span[] = [];
  for (const match of text.matchAll(NUMBER)) {
    const [, sign, mixedWhole, mixedNum, mixedDen, spaced, digits, bareDecimal, denominator, percent, fracSign, fracNum, fracDen] = match;
    const [start, end] = [match.index, match.index + match[0].length];
    if (fracNum !== undefined) {
      found.push({ answer: `${fracSign ?? ''}\\frac{${fracNum}}{${fracDen}}`, start, end });
      continue;
    }
    if (mixedWhole !== undefined) {
      const mixed = `${sign === '-' || sign === '−' ? '-' : ''}${mixedWhole.replace(/ /g, '')} ${mixedNum}/${mixedDen}`;
      found.push({ answer: `${mixed}${percent !== undefined ? '\\%' : ''}`, start, end });
      continue;
    }
    let value = spaced !== undefined ? spaced.replace(/ /g, '') : bareDecimal !== undefined ? `0${bareDecimal}` : numberText(digits);
    // In a list (1,2,3) the last item is the number that ends there.
    const list = value.includes(',');
    if (list) value = value.slice(value.lastIndexOf(',') + 1);
    const negative = sign !== undefined && !list;
    const answer = `${negative ? '-' : ''}${value}${denominator !== undefined ? `/${denominator}` : ''}${percent !== undefined ? '\\%' : ''}`;
    found.push({ answer, start, end });
  }
  return found;
}

/**
 * A run of digits with commas as a number: thousands groups (12,000,003 -> 12000003), else one comma between
 * digits is a decimal comma (1,22 -> 1.22; 0,111 -> 0.111); several commas are a list (its items kept).
 */
function numberText(digits: string): string {
  if (!digits.includes(',')) return digits;
  if (/^[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$/.test(digits)) return digits.replace(/,/g, '');
  if (/^\d+,\d+$/.test(digits)) return digits.replace(',', '.');
  return digits;
}

// ---- multiple choice ------------------------------------------------------------------------------------------

/** The last standalone choice letter (`B`, `(B)`, `**B**`, `B.`), not a letter inside a word. */
function lastChoice(text: string, choices: readonly string[]): string | null {
  const letters = choices.map((c) => c.replace(/[^A-Za-z]/g, '')).filter((c) => c.length === 1).join('');
  if (letters === '') return null;
  const pattern = new RegExp(`(?<![A-Za-z0-9\\\\])\\(?([${letters}])\\)?(?![A-Za-z0-9])`, 'g');
  let last: string | null = null;
  for (const match of text.matchAll(pattern)) last = match[1];
  return last;
}
