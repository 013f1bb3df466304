// Non-reasoning instruction following with checkable answers: the "general" data of R1's third and fourth stages
// (SPEC.md 4: writing, QA, translation; about a quarter of the SFT set), made small enough for a laptop and
// strict enough to score by rule. Four kinds of request, each with one right answer:
//
//   repeat     "Repeat the word fox 3 times."                  -> fox fox fox
//   reverse    "Write these words in reverse order: a b c."    -> c b a
//   capitals   "Write the word honey in capital letters."       -> HONEY
//   translate  "Translate cat into Chinese." / "... into English." -> 猫 / cat   (corpus.ts's dictionary)
//
// A response has R1's readable form: a short English thought in <think>, then the answer as the summary. The
// verifier compares the summary (or an R1-Zero-format <answer> tag's content), trimmed of spaces and a final
// full stop, with the reference exactly; a summary that says more than the answer is wrong. The general-task score of a model is its pass@1 here.
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

export const INSTRUCTION_KINDS = ['repeat', 'reverse', 'capitals', 'translate'] as const;
export type InstructionKind = (typeof INSTRUCTION_KINDS)[number];

/** One request with its answer and the thought a readable response gives before it. */
export interface Instruction {
  kind: InstructionKind;
  question: string;
  answer: string;
  thought: string;
}

const ENGLISH_WORDS = BILINGUAL_WORDS.map(([en]) => en);
const NUMBER_NAMES = ['zero', 'one', 'two', 'three', 'four'];

const MAKE: Record<InstructionKind, (rng: Rng) => Instruction> = {
  repeat: (rng) => {
    const word = pick(rng, ENGLISH_WORDS);
    const times = intBetween(rng, 2, 4);
    const count = rng.uniform() < 0.5 ? String(times) : NUMBER_NAMES[times];
    return { kind: 'repeat', question: `Repeat the word ${word} ${count} times.`, answer: Array(times).fill(word).join(' '), thought: `say ${word} ${times} times.` };
  },
  reverse: (rng) => {
    const words = Array.from({ length: intBetween(rng, 2, 4) }, () => pick(rng, ENGLISH_WORDS));
    return { kind: 'reverse', question: `Write these words in reverse order: ${words.join(' ')}.`, answer: [...words].reverse().join(' '), thought: 'read the words from the last one to the first.' };
  },
  capitals: (rng) => {
    const word = pick(rng, ENGLISH_WORDS);
    return { kind: 'capitals', question: `Write the word ${word} in capital letters.`, answer: word.toUpperCase(), thought: 'write each letter as a capital.' };
  },
  translate: (rng) => {
    const [en, zh] = pick(rng, BILINGUAL_WORDS);
    return rng.uniform() < 0.5
      ? { kind: 'translate', question: `Translate ${en} into Chinese.`, answer: zh, thought: `find ${en} in the dictionary.` }
      : { kind: 'translate', question: `Translate ${zh} into English.`, answer: en, thought: 'find the word in the dictionary.' };
  },
};

export function drawInstruction(rng: Rng, kinds: readonly InstructionKind[] = INSTRUCTION_KINDS): Instruction {
  return MAKE[pick(rng, kinds)](rng);
}

/** The readable response to an instruction: a short English thought, then the answer alone as the summary. */
export function instructionResponse(instruction: Instruction): string {
  return `<think> ${instruction.thought} </think> ${instruction.answer}`;
}

/**
 * The answer part of a response as compared with the reference: the <answer> tag's content in R1-Zero's format,
 * else the summary after </think>, else the whole response.
 */
function normalizedSummary(completion: string): string {
  const text = lastAnswerTag(completion) ?? (completion.includes('</think>') ? summaryOf(completion) : completion);
  return text.trim().replace(/[.。]$/, '').replace(/\s+/g, ' ').trim();
}

// One request in eight is held out (by its question text), so the general-task score is on unseen requests.
const TEST_FRACTION = 1 / 8;
const TEST_SEED = 0x1257;

export function instructionTask(): Task {
  const toExample = (instruction: Instruction, id: string): Example => ({ id, question: instruction.question, reference: instruction.answer });
  return {
    name: 'instructions',
    description: `instruction following with checkable answers (${INSTRUCTION_KINDS.join(', ')})`,
    sample: (rng: Rng, count: number) => trainingInstructions(rng, count).map((instruction) => toExample(instruction, `instructions/train/${instruction.kind}`)),
    testSet(size = 200): Example[] {
      const held = drawHeldOut(new Rng(TEST_SEED), size, TEST_FRACTION, (rng) => {
        const instruction = drawInstruction(rng);
        return { key: instruction.question, dedupKey: instruction.question, value: instruction };
      }, 'instructions test set');
      return held.map((instruction, i) => toExample(instruction, `instructions/test/${i}`));
    },
    verify(completion: string, example: Example): Verdict {
      const answer = normalizedSummary(completion);
      return { answer: answer === '' ? null : answer, correct: answer === example.reference };
    },
  };
}

/** Training-side instructions (never a held-out one), for SFT data and preference pairs. */
export function trainingInstructions(rng: Rng, count: number): Instruction[] {
  const out: Instruction[] = [];
  while (out.length < count) {
    const instruction = drawInstruction(rng);
    if (!isHeldOut(instruction.question, TEST_FRACTION)) out.push(instruction);
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
    case 'wrong': {
      let wrong = drawInstruction(rng, [instruction.kind]).answer;
      while (wrong === instruction.answer) wrong = drawInstruction(rng, [instruction.kind]).answer;
      return `${think} ${wrong}`;
    }
    case 'other-language':
      return `${think} ${instruction.answer.split(' ').map(inOtherLanguage).join(' ')}`;
    case 'verbose':
      return `${think} ${pick(rng, ['Sure! Here it is:', 'The answer is', 'Of course, I think'])} ${instruction.answer} ${pick(rng, ['and that is all.', 'I hope this helps.', 'as you asked.'])}`;
    case 'no-summary':
      return `<think> ${instruction.thought} ${instruction.answer}`;
  }
}

/** A dictionary word in the other language (a capitalised English word too); other words unchanged. */
function inOtherLanguage(word: string): string {
  const pair = BILINGUAL_WORDS.find(([en, zh]) => en === word.toLowerCase() || zh === word);
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
