// Supervised fine-tuning data: JSONL conversations in the formats people already have (TRL's dataset formats),
// rendered with the model's chat template, tokenised, and marked so that the loss falls on assistant tokens only.
//
//   {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}, ...]}   every assistant turn trained
//   {"prompt": [messages], "completion": [messages]}   conversational prompt-completion: the completion's assistant turns trained
//   {"prompt": "text", "completion": "text"}           plain text, no template: the completion (+ eos) trained
//
// Which tokens are the assistant's comes from rendering, not from searching the text: for assistant message i,
// the template rendered for messages[0..i) with the generation prompt ends where the turn begins, and rendered
// for messages[0..i] it ends where the turn ends (its end-of-turn token included, which is what teaches the model
// to stop). When both renderings are prefixes of the whole conversation's (ChatML, Llama-3, R1's default), the
// conversation is one sequence with every such span trained. A template that rewrites history (Qwen3 drops the
// <think> part of earlier turns once a later user turn follows) cannot lay the turn where the whole rendering
// has it; that turn becomes a sequence of its own, rendered as the model sees it when it writes that turn.
//
// Each segment is tokenised on its own and the ids concatenated, so a sequence's prompt ends exactly where the
// generation prompt ends at inference (a merge across the boundary would teach a tokenisation the model never
// sees when it samples).
import { readJsonlObjects } from '../io/jsonl.ts';
import { IGNORE_INDEX } from '../tensor/index.ts';
import type { ChatMessage } from '../tokenizer/chat.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';

/** One line of an SFT file. */
export type SftExample =
  | { id: string; kind: 'chat'; messages: ChatMessage[]; /** assistant turns from this index on are trained */ trainFrom: number }
  | { id: string; kind: 'text'; prompt: string; completion: string };

/** Text laid out by a template, cut where the trained spans start and end. */
export interface Segment {
  text: string;
  trained: boolean;
}

/** Token ids of one training sequence, and which of them are trained (predicted with a loss). */
export interface SftSequence {
  /** `file:line` of the example it came from. */
  id: string;
  ids: Int32Array;
  /** 1 where the token is an assistant token the loss covers. */
  trained: Uint8Array;
}

function checkMessages(value: unknown, field: string, where: string): ChatMessage[] {
  if (!Array.isArray(value)) throw new UserError(`${where}: "${field}" must be a list of messages, got ${value === null ? 'null' : typeof value}`);
  return value.map((m, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new UserError(`${where}: "${field}"[${i}] must be a message object {"role", "content"}`);
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string') throw new UserError(`${where}: "${field}"[${i}].role must be a string`);
    if (typeof content !== 'string') throw new UserError(`${where}: "${field}"[${i}].content must be a string`);
    return m as ChatMessage;
  });
}

/** Reads an SFT JSONL file (formats in the file comment); a bad line fails as `file:line: problem`. */
export function readSftExamples(path: string): SftExample[] {
  return readJsonlObjects(path).map(({ line, record }) => {
    const id = `${path}:${line}`;
    if (record.messages !== undefined) {
      const messages = checkMessages(record.messages, 'messages', id);
      if (!messages.some((m) => m.role === 'assistant')) throw new UserError(`${id}: the conversation has no assistant turn to train on`);
      return { id, kind: 'chat', messages, trainFrom: 0 };
    }
    if (record.prompt !== undefined && record.completion !== undefined) {
      const { prompt, completion } = record;
      if (typeof prompt === 'string' && typeof completion === 'string') return { id, kind: 'text', prompt, completion };
      if (typeof prompt === 'string' || typeof completion === 'string') {
        throw new UserError(`${id}: "prompt" and "completion" must both be strings or both be lists of messages`);
      }
      const promptMessages = checkMessages(prompt, 'prompt', id);
      const completionMessages = checkMessages(completion, 'completion', id);
      if (!completionMessages.some((m) => m.role === 'assistant')) throw new UserError(`${id}: "completion" has no assistant turn to train on`);
      return { id, kind: 'chat', messages: [...promptMessages, ...completionMessages], trainFrom: promptMessages.length };
    }
    throw new UserError(`${id}: expected {"messages": [...]} or {"prompt": ..., "completion": ...}, found the fields ${JSON.stringify(Object.keys(record))}`);
  });
}

/** Renders messages with a chat template; `addGenerationPrompt` ends with the header of an assistant turn. */
export type RenderChat = (messages: readonly ChatMessage[], addGenerationPrompt: boolean) => string;

/**
 * The training sequences of a conversation as segments (see the file comment): the first holds every assistant
 * turn from `trainFrom` on that sits where the whole conversation's rendering has it; each other turn gets a
 * sequence of its own. Text after the last trained span is left out (no loss reads it). `where` names the
 * example in errors.
 */
export function chatSegments(render: RenderChat, messages: readonly ChatMessage[], trainFrom: number, where: string): Segment[][] {
  const whole = render(messages, false);
  const inPlace: Segment[] = [];
  const separate: Segment[][] = [];
  let covered = 0;
  for (let i = trainFrom; i < messages.length; i++) {
    if (messages[i].role !== 'assistant') continue;
    const before = render(messages.slice(0, i), true);
    const through = render(messages.slice(0, i + 1), false);
    if (!through.startsWith(before) || through.length === before.length) {
      throw new UserError(`${where}: the chat template does not render assistant message ${i} after its generation prompt (rendered up to it: ${JSON.stringify(before.slice(-60))}; with it: ${JSON.stringify(through.slice(-60))}), so its tokens cannot be told from the prompt's`);
    }
    const turn = { text: through.slice(before.length), trained: true };
    if (before.length >= covered && whole.startsWith(through)) {
      inPlace.push({ text: whole.slice(covered, before.length), trained: false }, turn);
      covered = through.length;
    } else {
      separate.push([{ text: before, trained: false }, turn]);
    }
  }
  return [...(inPlace.length > 0 ? [inPlace] : []), ...separate];
}

/** Tokenises segments one by one (addSpecialTokens false: templates write their own BOS, as HF's apply_chat_template). */
function encodeSegments(tokenizer: Tokenizer, segments: readonly Segment[], id: string): SftSequence {
  const ids: number[] = [];
  const trained: number[] = [];
  for (const segment of segments) {
    if (segment.text.length === 0) continue;
    for (const token of tokenizer.encode(segment.text, { addSpecialTokens: false })) {
      ids.push(token);
      trained.push(segment.trained ? 1 : 0);
    }
  }
  return { id, ids: Int32Array.from(ids), trained: Uint8Array.from(trained) };
}

/**
 * An example's training sequences. Conversations go through `render` (the model's chat template); plain
 * prompt/completion text is tokenised as TRL does it: the prompt with the tokenizer's special tokens (Llama's
 * BOS), the completion without, then the eos token, trained with the completion.
 */
export function encodeSftExample(tokenizer: Tokenizer, render: RenderChat, example: SftExample): SftSequence[] {
  if (example.kind === 'chat') {
    return chatSegments(render, example.messages, example.trainFrom, example.id).map((segments) => encodeSegments(tokenizer, segments, example.id));
  }
  const prompt = tokenizer.encode(example.prompt);
  const completion = tokenizer.encode(example.completion, { addSpecialTokens: false });
  if (tokenizer.eosTokenId !== null) completion.push(tokenizer.eosTokenId);
  return [{
    id: example.id,
    ids: Int32Array.from([...prompt, ...completion]),
    trained: Uint8Array.from([...prompt.map(() => 0), ...completion.map(() => 1)]),
  }];
}

/** A row of a batch: inputs and next-token targets (-100 where no loss is taken), up to the row's length. */
export interface SftRow {
  inputs: Int32Array;
  targets: Int32Array;
  /** Targets that carry a loss. */
  trainedTokens: number;
}

/**
 * One row per sequence: inputs ids[0..n-1), targets ids[1..n) where trained, else -100. A sequence longer than
 * maxLength + 1 tokens is cut to it (as TRL's max_length truncates); returns the rows with at least one trained
 * target and how many sequences were cut and dropped.
 */
export function sequenceRows(sequences: readonly SftSequence[], maxLength: number): { rows: SftRow[]; truncated: number; empty: number } {
  const rows: SftRow[] = [];
  let truncated = 0;
  let empty = 0;
  for (const sequence of sequences) {
    const n = Math.min(sequence.ids.length, maxLength + 1);
    if (n < sequence.ids.length) truncated++;
    const row = shiftedRow(sequence.ids.subarray(0, n), sequence.trained.subarray(0, n));
    if (row.trainedTokens === 0) empty++;
    else rows.push(row);
  }
  return { rows, truncated, empty };
}

/**
 * Packing: every sequence's tokens in one stream, cut into rows of exactly `length` inputs (the last one
 * shorter), as TRL's "wrapped" packing does. No padding is computed, and attention runs across the sequences
 * that share a row, as in pretraining; the loss still falls on assistant tokens only.
 */
export function packedRows(sequences: readonly SftSequence[], length: number): SftRow[] {
  const total = sequences.reduce((n, s) => n + s.ids.length, 0);
  const ids = new Int32Array(total);
  const trained = new Uint8Array(total);
  let at = 0;
  for (const s of sequences) {
    ids.set(s.ids, at);
    trained.set(s.trained, at);
    at += s.ids.length;
  }
  const rows: SftRow[] = [];
  for (let start = 0; start + 1 < total; start += length) {
    const end = Math.min(total, start + length + 1);
    const row = shiftedRow(ids.subarray(start, end), trained.subarray(start, end));
    if (row.trainedTokens > 0) rows.push(row);
  }
  return rows;
}

function shiftedRow(ids: Int32Array, trained: Uint8Array): SftRow {
  const inputs = ids.slice(0, ids.length - 1);
  const targets = new Int32Array(inputs.length);
  let trainedTokens = 0;
  for (let t = 0; t < targets.length; t++) {
    if (trained[t + 1]) {
      targets[t] = ids[t + 1];
      trainedTokens++;
    } else {
      targets[t] = IGNORE_INDEX;
    }
  }
  return { inputs, targets, trainedTokens };
}

/** Rows right-padded to the longest into [B, T] arrays (padding: `padId` as input, -100 as target). */
export function padRows(rows: readonly SftRow[], padId: number): { inputs: Int32Array; targets: Int32Array; batch: number; length: number } {
  const length = Math.max(...rows.map((r) => r.inputs.length));
  const inputs = new Int32Array(rows.length * length).fill(padId);
  const targets = new Int32Array(rows.length * length).fill(IGNORE_INDEX);
  rows.forEach((row, b) => {
    inputs.set(row.inputs, b * length);
    targets.set(row.targets, b * length);
  });
  return { inputs, targets, batch: rows.length, length };
}
