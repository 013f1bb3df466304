// Chat formatting: the special tokens of our own small models and the Jinja chat template that lays a
// conversation out with them. Rendering goes through @huggingface/jinja from the template stored in
// tokenizer_config.json, so a user's Hugging Face tokenizer with its own template renders the same way
// `transformers`' apply_chat_template does (same variables: messages, add_generation_prompt, tools and the
// special token strings).
import { Template } from '@huggingface/jinja';
import { UserError } from '../util/errors.ts';

export interface ChatMessage {
  role: string;
  content: string;
  /** Templates may read more fields (reasoning_content, tool_calls, name). */
  [field: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End with the header of an assistant turn, so that sampling continues as the assistant. */
  addGenerationPrompt?: boolean;
  /** Tool schemas, for templates that describe tools (Qwen3's). */
  tools?: unknown[];
  /** Further template variables, e.g. Qwen3's `enable_thinking`. */
  variables?: Record<string, unknown>;
  /** A template to use instead of the tokenizer's own (e.g. DEFAULT_CHAT_TEMPLATE for a tokenizer without one). */
  template?: string;
}

/** End of a document in pretraining data; the pad token. */
export const END_OF_TEXT = '<|endoftext|>';
/** Start and end of a chat turn (ChatML, as Qwen uses); IM_END is the eos of a chat model. */
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';

/** Special tokens every tokenizer we train has: never split, dropped by decode(skipSpecialTokens). */
export const CHAT_SPECIAL_TOKENS: readonly string[] = [END_OF_TEXT, IM_START, IM_END];

/**
 * The tags of DeepSeek-R1's output format (R1 paper, Table 1: "The reasoning process and answer are enclosed
 * within <think> </think> and <answer> </answer> tags"). Single tokens, so that the format reward and the
 * answer extraction see them whole, but not special: decode(skipSpecialTokens) keeps them, as Qwen3 does with
 * its <think> tokens, because they are part of the text the model writes.
 */
export const REASONING_TAG_TOKENS: readonly string[] = ['<think>', '</think>', '<answer>', '</answer>'];

/** ChatML, the layout of Qwen's templates without their tool and thinking branches. */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}" +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/**
 * The chat template of a model whose tokenizer_config.json has none (documented in README, "r1 sft"): ChatML
 * turns, as our own tokenizers' special tokens spell them, with R1's reasoning format for assistant turns. An
 * assistant message may carry its chain of thought in `reasoning_content` (the field DeepSeek's API and
 * Qwen3's template use), rendered as DeepSeek-R1 writes it, `<think>\nreasoning\n</think>\n\nsummary`; a
 * content that already holds `<think>...</think>` is kept as it is. Every turn ends in <|im_end|>, the token
 * that stops sampling.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{%- for message in messages %}" +
  "{%- if message.role == 'assistant' and message.reasoning_content is defined and message.reasoning_content is not none %}" +
  "{{- '<|im_start|>assistant\n<think>\n' + message.reasoning_content.strip() + '\n</think>\n\n' + message.content.strip() + '<|im_end|>\n' }}" +
  "{%- else %}" +
  "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}" +
  "{%- endif %}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}";

const parsedTemplates = new Map<string, Template>();

/**
 * Renders `template` for `messages`. `specialTokens` are the config's bos/eos/pad/unk strings, which HF passes
 * to every template. `where` names the file the template came from, for errors.
 */
export function renderChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  options: ChatTemplateOptions,
  specialTokens: Record<string, string | undefined>,
  where: string,
): string {
  messages.forEach((m, i) => {
    if (typeof m?.role !== 'string') throw new UserError(`chat message ${i}: "role" must be a string`);
  });
  let parsed = parsedTemplates.get(template);
  if (parsed === undefined) {
    try {
      parsed = new Template(template);
    } catch (err) {
      throw new UserError(`${where}: chat_template does not parse: ${(err as Error).message}`);
    }
    parsedTemplates.set(template, parsed);
  }
  try {
    return parsed.render({
      ...specialTokens,
      ...options.variables,
      messages,
      tools: options.tools,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    });
  } catch (err) {
    throw new UserError(`${where}: chat_template failed: ${(err as Error).message}`);
  }
}

/**
 * A conversation as a model sees it: the tokenizer's own chat template, or DEFAULT_CHAT_TEMPLATE when it has
 * none (our trained tokenizers have ChatML; a bare tokenizer.json has nothing).
 */
export function renderConversation(
  tokenizer: { readonly chatTemplate: string | null; applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string },
  messages: readonly ChatMessage[],
  options: Omit<ChatTemplateOptions, 'template'> = {},
): string {
  return tokenizer.applyChatTemplate(messages, { ...options, template: tokenizer.chatTemplate ?? DEFAULT_CHAT_TEMPLATE });
}
