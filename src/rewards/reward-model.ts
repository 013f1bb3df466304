// A reward model as a reward function (R1 sec. 2.3.4; SPEC.md 3): "for helpfulness, we focus exclusively on the
// final summary ... for harmlessness, we evaluate the entire response of the model, including both the reasoning
// process and the summary". `on` picks that part; the reward model scores it as the answer to the question:
//   chat  the conversation [user: question, assistant: part] in the reward model's chat template (what a model
//         trained on TRL's conversational pairs saw);
//   text  the policy's prompt text followed by the part (what a model trained on string pairs saw).
// The summary is the text after the last `</think>`; a completion without one has an empty summary.
import type { RewardModel } from '../models/reward-model.ts';
import { renderConversation } from '../tokenizer/chat.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { completionWithPrefill, summaryOf } from './format.ts';
import type { RewardFn, RewardInput } from './reward.ts';

export const REWARD_MODEL_PARTS = {
  /** Helpfulness: the final summary only. */
  summary: (input: RewardInput) => summaryOf(completionWithPrefill(input)).trim(),
  /** Harmlessness: the whole response, reasoning and summary. */
  response: (input: RewardInput) => completionWithPrefill(input).trim(),
} satisfies Record<string, (input: RewardInput) => string>;

export type RewardModelPart = keyof typeof REWARD_MODEL_PARTS;

export const REWARD_MODEL_INPUTS = {
  chat: (tokenizer: Tokenizer, input: RewardInput, part: string) =>
    tokenizer.encode(renderConversation(tokenizer, [{ role: 'user', content: input.question ?? input.prompt }, { role: 'assistant', content: part }]), { addSpecialTokens: false }),
  text: (tokenizer: Tokenizer, input: RewardInput, part: string) => tokenizer.encode(`${input.prompt}${part}`),
} satisfies Record<string, (tokenizer: Tokenizer, input: RewardInput, part: string) => number[]>;

export type RewardModelInput = keyof typeof REWARD_MODEL_INPUTS;

/** The reward model's score of the chosen part of each completion. */
export function rewardModelReward(model: RewardModel, tokenizer: Tokenizer, on: RewardModelPart, input: RewardModelInput = 'chat'): RewardFn {
  return (sample) => model.scoreIds([REWARD_MODEL_INPUTS[input](tokenizer, sample, REWARD_MODEL_PARTS[on](sample))])[0];
}
