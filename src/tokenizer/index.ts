// The tokenizer layer's public face: load Hugging Face byte-level BPE tokenizers, train our own, chat templates.
export { Tokenizer, DecodeStream, type DecodeOptions, type EncodeOptions, type TokenizerFiles } from './tokenizer.ts';
export { trainBpe, saveTrainedBpe, type TrainBpeOptions, type TrainProgress, type TrainedBpe } from './train.ts';
export { readCorpus } from './corpus.ts';
export {
  CHATML_TEMPLATE, CHAT_SPECIAL_TOKENS, DEFAULT_CHAT_TEMPLATE, END_OF_TEXT, IM_END, IM_START, REASONING_TAG_TOKENS, renderChatTemplate, renderConversation,
  type ChatMessage, type ChatTemplateOptions,
} from './chat.ts';
