// Non-reasoning instruction following with checkable answers: the "general" data of R1's third and fourth stages
// (SPEC.md 4: writing, QA, translation; about a quarter of the SFT set), made small enough for a laptop and
// strict enough to score by rule. Three kinds of request, each asked in a few wordings, each with one right
// answer in the words the pipeline's base model read in pretraining (corpus.ts's dictionary pages):
//
//   to-chinese  "Translate cat into Chinese." / "What is the Chinese for cat?" -> The Chinese for cat is 猫.
//   to-english  "Translate 猫 into English." / "What does 猫 mean?"           -> 猫 means cat.
//   repeat      "Repeat the word fox 3 times." / "Say fox two times."         -> fox fox fox / fox fox
//
// Why these (docs/DESIGN.md, "General ability in miniature"): a 370k-parameter model learns from a few hundred
// examples the form of an answer, not new facts. The translation answers are the dictionary's own sentences, so
// a model that read the dictionary answers an unseen word once it has learned to answer in that form; repeat
// asks only to copy a word from the request and count to three. An earlier set (capital letters, reversed word
// lists, a bare translated word) scored 0% for every model: the base text has no capitals, and a bare word
// asked the model to recall a fact in a form it never read.
//
// The test set holds out whole words (a quarter of the dictionary, by hash): no training request names them,
// so the general score is the base model's knowledge reached through the instruction form SFT taught.
//
// A response has R1's readable form: a short English thought in <think>, then the answer as the summary. The
// verifier compares the summary (or an R1-Zero-format <answer> tag's content), trimmed of spaces and a final
// full stop, with the reference exactly; a summary that says more than the answer is wrong. The general-task
// score of a model is its pass@1 here.
//
// Preference pairs for the helpfulness reward model of stage 4 (TRL's conversational {prompt, chosen,
// rejected}) pair the right response with a worse one: a wrong answer, the answer in the other language, the
// answer buried in extra words, or no summary at all.
import { lastAnswerTag } from '../rewards/extract.ts';
import { summaryOf } from '../rewards/format.ts';
import { Rng } from '../tensor/random.ts';
import { BILINGUAL_WORDS } from '../train/corpus.ts';
import { drawHeldOut, intBetween, isHeldOut, pick } from './split.ts';
import type { Example, Task, Verdict } from './task.ts';

export const INSTRUCTION_KINDS = ['to-chinese', 'to-english', 'repeat'] as const;
export type InstructionKind = (typeof INSTRUCTION_KINDS)[number];

/** One request with its answer and the thought a readable response gives before it. */
export interface Instruction {
  kind: InstructionKind;
  /** The dictionary word the request is about (English): what the train/test split holds out. */
  word: string;
  question: string;
  answer: string;
  thought: string;
}

const NUMBER_NAMES = ['zero', 'one', 'two', 'three'];

/** The answer sentences, in the dictionary pages' words (corpus.ts dictionaryDocument). */
const chineseFor = (en: string, zh: string) => `The Chinese for ${en} is ${zh}`;
const meaningOf = (en: string, zh: string) => `${zh} means ${en}`;

const MAKE: Record<InstructionKind, (rng: Rng, en: string, zh: string) => Instruction> = {
  'to-chinese': (rng, en, zh) => ({
    kind: 'to-chinese', word: en, answer: chineseFor(en, zh), thought: `recall the Chinese word for ${en}.`,
    question: pick(rng, [`Translate ${en} into Chinese.`, `What is the Chinese for ${en}?`, `How do you say ${en} in Chinese?`, `Give the Chinese word for ${en}.`]),
  }),
  'to-english': (rng, en, zh) => ({
    kind: 'to-english', word: en, answer: meaningOf(en, zh), thought: 'recall what the Chinese word means.',
    question: pick(rng, [`Translate ${zh} into English.`, `What does ${zh} mean?`, `What is ${zh} in English?`]),
  }),
  repeat: (rng, en) => {
    const times = intBetween(rng, 2, 3);
    const count = rng.uniform() < 0.5 ? String(times) : NUMBER_NAMES[times];
    return {
      kind: 'repeat', word: en, answer: Array(times).fill(en).join(' '), thought: `say ${en} ${times} times.`,
      question: pick(rng, [`Repeat the word ${en} ${count} times.`, `Say ${en} ${count} times.`, `Write ${en} ${count} times.`]),
    };
  },
};

/** A request of one of `kinds` (uniformly) about a dictionary word, held out or not. */
export function drawInstruction(rng: Rng, kinds: readonly InstructionKind[] = INSTRUCTION_KINDS): Instruction {
  const kind = pick(rng, kinds);
  const [en, zh] = pick(rng, BILINGUAL_WORDS);
  return MAKE[kind](rng, en, zh);
}

/** The readable response to an instruction: a short English thought, then the answer alone as the summary. */
export function instructionResponse(instruction: Instruction): string {
  return `<think> ${instruction.thought} </think> ${instruction.answer}.`;
}

/**
 * The answer part of a response as compared with the reference: the <answer> tag's content in R1-Zero's format,
 * else the summary after </think>, else the whole response.
 */
function normalizedSummary(completion: string): string {
  const text = lastAnswerTag(completion) ?? (completion.includes('</think>') ? summaryOf(completion) : completion);
  return text.trim().replace(/[.。]$/, '').replace(/\s+/g, ' ').trim();
}

// A quarter of the dictionary's words are held out (by the hash of the English word): the test set asks about
// them only, training requests never do.
const TEST_FRACTION = 1 / 4;
const TEST_SEED = 0x1257;
const isTestWord = (word: string) => isHeldOut(`word:${word}`, TEST_FRACTION);

export function instructionTask(): Task {
  const toExample = (instruction: Instruction, id: string): Example => ({ id, question: instruction.question, reference: instruction.answer });
  return {
    name: 'instructions',
    description: `instruction following with checkable answers (${INSTRUCTION_KINDS.join(', ')}) about words the training requests never name`,
    sample: (rng: Rng, count: number) => trainingInstructions(rng, count).map((instruction) => toExample(instruction, `instructions/train/${instruction.kind}`)),
    testSet(size = 100): Example[] {
      const held = drawHeldOut(new Rng(TEST_SEED), size, TEST_FRACTION, (rng) => {
        const instruction = drawInstruction(rng);
        return { key: `word:${instruction.word}`, dedupKey: instruction.question, value: instruction };
      }, 'instructions test set');
      return held.map((instruction, i) => toExample(instruction, `instructions/test/${i}`));
    },
    verify(completion: string, example: Example): Verdict {
      const answer = normalizedSummary(completion);
      return { answer: answer === '' ? null : answer, correct: answer === example.reference };
    },
  };
}

/** Training-side instructions (never about a held-out word), for SFT data and preference pairs. */
export function trainingInstructions(rng: Rng, count: number): Instruction[] {
  const out: Instruction[] = [];
  while (out.length < count) {
    const instruction = drawInstruction(rng);
    if (!isTestWord(instruction.word)) out.push(instruction);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Preference pairs

export const REJECTION_KINDS = ['wrong', 'other-language', 'verbose', 'no-summary'] as const;

/** A worse response to the same instruction, of the given kind. */
export function worseResponse(rng: Rng, instruction: Instruction, kind: (typeof REJECTION_KINDS)[number]): string {
  const think = `<think> ${instruction.thought} </think>`;
  switch (kind) {
    case 'wrong':
      return `${think} ${wrongAnswer(rng, instruction)}.`;
    case 'other-language':
      return `${think} ${instruction.answer.split(' ').map(inOtherLanguage).join(' ')}.`;
    case 'verbose':
      return `${think} ${pick(rng, ['Sure! Here it is:', 'The answer is', 'Of course, I think'])} ${instruction.answer} ${pick(rng, ['and that is all.', 'I hope this helps.', 'as you asked.'])}`;
    case 'no-summary':
      return `<think> ${instruction.thought} ${instruction.answer}.`;
  }
}

/** The answer with the fact wrong: another word's translation in the same sentence, or a wrong count or word. */
function wrongAnswer(rng: Rng, instruction: Instruction): string {
  const zhOf = (en: string) => BILINGUAL_WORDS.find(([e]) => e === en)![1];
  let other = pick(rng, BILINGUAL_WORDS);
  while (other[0] === instruction.word) other = pick(rng, BILINGUAL_WORDS);
  switch (instruction.kind) {
    case 'to-chinese':
      return chineseFor(instruction.word, other[1]);
    case 'to-english':
      return meaningOf(other[0], zhOf(instruction.word));
    case 'repeat': {
      const times = instruction.answer.split(' ').length;
      return rng.uniform() < 0.5 ? Array(times === 2 ? 3 : 2).fill(instruction.word).join(' ') : Array(times).fill(other[0]).join(' ');
    }
  }
}

/** A dictionary word in the other language; other words unchanged. */
function inOtherLanguage(word: string): string {
  const pair = BILINGUAL_WORDS.find(([en, zh]) => en === word || zh === word);
  if (pair === undefined) return word;
  return pair[1] === word ? pair[0] : pair[1];
}

/** A pair in TRL's conversational preference format. */
export interface PreferencePair {
  prompt: Array<{ role: 'user'; content: string }>;
  chosen: Array<{ role: 'assistant'; content: string }>;
  rejected: Array<{ role: 'assistant'; content: string }>;
}

/** `count` pairs on training-side instructions, rejection kinds drawn uniformly. */
export function instructionPreferencePairs(rng: Rng, count: number): PreferencePair[] {
  return trainingInstructions(rng, count).map((instruction) => ({
    prompt: [{ role: 'user', content: instruction.question }],
    chosen: [{ role: 'assistant', content: instructionResponse(instruction) }],
    rejected: [{ role: 'assistant', content: worseResponse(rng, instruction, pick(rng, REJECTION_KINDS)) }],
  }));
}
