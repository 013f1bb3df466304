// The R1-Zero training template, verbatim from DeepSeek-R1 Table 1 (SPEC.md 2; r1-spec-detail 2.1). The PDF
// breaks the line between `</think>` and `<answer>`; a single space is the source text. The question replaces
// the word "prompt", keeping the period after it as the paper prints it. The prompt ends at "Assistant:", so the
// completion is expected to begin with " <think>" (or "<think>"): the format reward allows that leading space.
//
// PROMPT_TEMPLATES names the ways a question is shown to a model being sampled (RL and rejection sampling).
import { renderConversation } from '../tokenizer/chat.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';

const R1_ZERO_PREFIX =
  'A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The ' +
  'assistant first thinks about the reasoning process in the mind and then provides the user with the answer. ' +
  'The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, ' +
  'respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. User: ';

/** The template with the placeholder `prompt` where the question goes, exactly as the paper prints it. */
export const R1_ZERO_TEMPLATE = `${R1_ZERO_PREFIX}prompt. Assistant:`;

/**
 * The R1-Zero prompt for one question: the template with `question` in place of "prompt". Surrounding whitespace
 * of the question is dropped (a trailing newline from a data file would otherwise sit before the period).
 */
export function r1ZeroPrompt(question: string): string {
  return `${R1_ZERO_PREFIX}${question.trim()}. Assistant:`;
}

export const PROMPT_TEMPLATES = {
  /** The R1-Zero template (SPEC.md 2), for a base model or an R1-Zero checkpoint. */
  'r1-zero': (question: string) => r1ZeroPrompt(question),
  /** The chat template (the tokenizer's, or the default) with one user turn and the assistant's header (a chat or SFT model). */
  chat: (question: string, tokenizer: Tokenizer) => renderConversation(tokenizer, [{ role: 'user', content: question }], { addGenerationPrompt: true }),
  /** The question as it is. */
  plain: (question: string) => question,
} satisfies Record<string, (question: string, tokenizer: Tokenizer) => string>;

export type PromptTemplate = keyof typeof PROMPT_TEMPLATES;
