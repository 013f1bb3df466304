// Non-reasoning instruction following with checkable answers: the "general" data of R1's third and fourth stages
// (SPEC.md 4: writing, QA, translation; about a quarter of the SFT set), made small enough for a laptop and
// strict enough to score by rule. Three kinds of request about numbers, each asked in three wordings, each with
// one right answer:
//
//   repeat  "Repeat the number 14 3 times." / "Say 14 two times."              -> 14 14 14 / 14 14
//   last    "Write the last of these numbers: 12, 7, 30." / "Which number comes last in 12, 7, 30?" -> 30
//   swap    "Write 12 and 30 the other way round." / "Swap the numbers 12 and 30." -> 30 12
//
// Why these (docs/DESIGN.md, "General ability in miniature"): the pipeline's 370k-parameter base model carries
// numbers from a question into its answer (its pretraining text does so in every chain of thought) but not
// words, and from a few hundred SFT examples it learns the form of an answer, not a new skill. Requests about
// words (capital letters, reversed lists, translations from the base text's dictionary, a word repeated) stayed
// at 0% for every model however they were answered: the model wrote a well-formed answer about some other word.
// Comparing two numbers ("Which is larger, 12 or 31?") reached about a quarter, below a coin's half. These three
// ask for what the base can do (read the numbers, count to three, copy in order) in forms it never read.
//
// The test set holds out a quarter of the requests' skeletons (the numbers in order, and a repeat's count), by
// hash: no training request asks for a test skeleton in any wording. (Holding out whole numbers instead leaves
// the model never writing them: SFT teaches the answers' numbers along with the form.)
//
// A response has R1's readable form: a short English thought in <think>, then the answer as the summary. The
// verifier compares the summary (or an R1-Zero-format <answer> tag's content), trimmed of spaces and a final
// full stop, with the reference exactly; a summary that says more than the answer is wrong. The general-task
// score of a model is its pass@1 here.
//
// Preference pairs for the helpfulness reward model of stage 4 (TRL's conversational {prompt, chosen,
// rejected}) pair the right response with a worse one: a wrong answer (half of them: the mistakes a small model
// makes), the answer buried in extra words, or no summary at all.
import { lastAnswerTag } from '../rewards/extract.ts';
import { summaryOf } from '../rewards/format.ts';
import { Rng } from '../tensor/random.ts';
import { drawHeldOut, intBetween, isHeldOut, pick } from './split.ts';
import type { Example, Task, Verdict } from './task.ts';

export const INSTRUCTION_KINDS = ['repeat', 'last', 'swap'] as const;
export type InstructionKind = (typeof INSTRUCTION_KINDS)[number];

/** One request with its answer and the thought a readable response gives before it. */
export interface Instruction {
  kind: InstructionKind;
  /** The numbers the request is about. */
  numbers: number[];
  /** What the train/test split holds out: the numbers in order, and a repeat's count. */
  key: string;
  question: string;
  answer: string;
  thought: string;
}

/** Numbers of requests: about the range of the level-1 arithmetic questions' numbers (at most 40). */
const MIN_NUMBER = 2;
const MAX_NUMBER = 40;
const TIMES_NAMES = ['zero', 'one', 'two', 'three'];

const MAKE: Record<InstructionKind, (rng: Rng, draw: () => number) => Instruction> = {
  repeat: (rng, draw) => {
    const n = draw();
    const times = intBetween(rng, 2, 3);
    const count = rng.uniform() < 0.5 ? String(times) : TIMES_NAMES[times];
    return {
      kind: 'repeat', numbers: [n], key: `repeat:${n}x${times}`, answer: Array(times).fill(n).join(' '), thought: `say ${n} ${times} times.`,
      question: pick(rng, [`Repeat the number ${n} ${count} times.`, `Say ${n} ${count} times.`, `Write the number ${n} ${count} times.`]),
    };
  },
  last: (rng, draw) => {
    const ns = distinct(draw, 3);
    return {
      kind: 'last', numbers: ns, key: `last:${ns.join(',')}`, answer: String(ns[2]), thought: `the numbers are ${ns.join(', ')}.`,
      question: pick(rng, [`Write the last of these numbers: ${ns.join(', ')}.`, `Which number comes last in ${ns.join(', ')}?`, `What is the last number of ${ns.join(', ')}?`]),
    };
  },
  swap: (rng, draw) => {
    const [a, b] = distinct(draw, 2);
    return {
      kind: 'swap', numbers: [a, b], key: `swap:${a},${b}`, answer: `${b} ${a}`, thought: `write ${b} first, then ${a}.`,
      question: pick(rng, [`Write ${a} and ${b} the other way round.`, `Swap the numbers ${a} and ${b}.`, `Write the numbers ${a} ${b} in reverse order.`]),
    };
  },
};

/** `count` different numbers (so that a wrong answer is never the right one by accident). */
function distinct(draw: () => number, count: number): number[] {
  const out: number[] = [];
  while (out.length < count) {
    const n = draw();
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

// A quarter of the keys are held out (by hash): the test set asks about them only, training requests never do.
const TEST_FRACTION = 1 / 4;
const TEST_SEED = 0x1257;

/** A request of one of `kinds` (uniformly), held out or not. */
export function drawInstruction(rng: Rng, kinds: readonly InstructionKind[] = INSTRUCTION_KINDS): Instruction {
  return MAKE[pick(rng, kinds)](rng, () => intBetween(rng, MIN_NUMBER, MAX_NUMBER));
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

export function instructionTask(): Task {
  const toExample = (instruction: Instruction, id: string): Example => ({ id, question: instruction.question, reference: instruction.answer });
  return {
    name: 'instructions',
    description: `instruction following with checkable answers (${INSTRUCTION_KINDS.join(', ')}) that no training request asks in any wording`,
    sample: (rng: Rng, count: number) => trainingInstructions(rng, count).map((instruction) => toExample(instruction, `instructions/train/${instruction.kind}`)),
    testSet(size = 100): Example[] {
      const held = drawHeldOut(new Rng(TEST_SEED), size, TEST_FRACTION, (rng) => {
        const instruction = drawInstruction(rng);
        return { key: instruction.key, dedupKey: instruction.question, value: instruction };
      }, 'instructions test set');
      return held.map((instruction, i) => toExample(instruction, `instructions/test/${i}`));
    },
    verify(completion: string, example: Example): Verdict {
      const answer = normalizedSummary(completion);
      return { answer: answer === '' ? null : answer, correct: answer === example.reference };
    },
  };
}

/** Training-side instructions (never a held-out pair or repeat), for SFT data and preference pairs. */
export function trainingInstructions(rng: Rng, count: number): Instruction[] {
  const out: Instruction[] = [];
  while (out.length < count) {
    const instruction = drawInstruction(rng);
    if (!isHeldOut(instruction.key, TEST_FRACTION)) out.push(instruction);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Preference pairs

export const REJECTION_KINDS = ['wrong', 'wrong', 'verbose', 'no-summary'] as const;

/** A worse response to the same instruction, of the given kind. */
export function worseResponse(rng: Rng, instruction: Instruction, kind: (typeof REJECTION_KINDS)[number]): string {
  const think = `<think> ${instruction.thought} </think>`;
  switch (kind) {
    case 'wrong':
      return `${think} ${wrongAnswer(rng, instruction)}.`;
    case 'verbose':
      return `${think} ${pick(rng, ['Sure! Here it is:', 'The answer is', 'Of course, I think'])} ${instruction.answer} ${pick(rng, ['and that is all.', 'I hope this helps.', 'as you asked.'])}`;
    case 'no-summary':
      return `<think> ${instruction.thought} ${instruction.answer}.`;
  }
}

/** The mistakes a small model makes: another number of the list, the numbers unswapped, a wrong count or number. */
function wrongAnswer(rng: Rng, instruction: Instruction): string {
  const [n] = instruction.numbers;
  switch (instruction.kind) {
    case 'last':
      return String(instruction.numbers[rng.int(2)]);
    case 'swap':
      return instruction.numbers.join(' ');
    case 'repeat': {
      const times = instruction.answer.split(' ').length;
      return rng.uniform() < 0.5 ? Array(times === 2 ? 3 : 2).fill(n).join(' ') : Array(times).fill(n + pick(rng, [-1, 1, 10])).join(' ');
    }
  }
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
