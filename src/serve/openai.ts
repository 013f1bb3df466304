// The OpenAI-compatible API (what vLLM, SGLang and the DeepSeek API serve), over the continuous batch of the
// sampling engine: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health.
//
// Requests are checked at the edge, field by field, and answered in OpenAI's shapes: a bad body is a 400 naming
// the parameter (unknown parameters too, as OpenAI does), a prompt longer than the model's context a 400
// `context_length_exceeded`, a full queue a 429, a missing or wrong key a 401. Chat prompts are laid out by the
// tokenizer's own chat template (Tokenizer.applyChatTemplate, the one rendering path of r1ts), and a reasoning
// model's thinking comes back as `reasoning_content` (reasoning.ts). Each of the `n` choices is one request of
// the engine with seed + its index, so a seed reproduces every choice whatever else the server is doing.
import { randomInt, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, resolve } from 'node:path';
import { z } from 'zod';
import type { GenerationRequest, GenerationResult, TokenEvent, TokenLogprob } from '../generate/engine.ts';
import { loadModel, type CausalLM } from '../models/pretrained.ts';
import { useDevice, type Device } from '../tensor/index.ts';
import type { ChatMessage } from '../tokenizer/chat.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { EventStream, HttpError, listen, readJson, sendJson, type Route, type RunningServer } from './http.ts';
import { promptOpensThinking, ReasoningParser, splitReasoning } from './reasoning.ts';
import { QueueFullError, ServingEngine, type ServingOptions } from './serving-engine.ts';

/** One served model: what the routes read. */
export interface ServedModel {
  /** The id clients send as `model` and GET /v1/models lists. */
  name: string;
  model: CausalLM;
  tokenizer: Tokenizer;
  /** Stop ids of the model's generation config and tokenizer (loadModel's eosTokenIds). */
  eosTokenIds: number[];
  engine: ServingEngine;
  /** Unix seconds, for /v1/models. */
  created: number;
}

export interface OpenAiRouteOptions {
  /** Bytes a request body may have (default 1 MiB); larger ones answer 413. */
  maxBodyBytes?: number;
}

export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

/** The model's id by default: its folder's name. */
export function defaultModelName(dir: string): string {
  return basename(resolve(dir));
}

export function openAiRoutes(served: ServedModel, options: OpenAiRouteOptions = {}): Route[] {
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return [
    { method: 'GET', path: '/health', handler: (_request, response) => sendJson(response, 200, health(served)) },
    {
      method: 'GET', path: '/v1/models', authenticated: true,
      handler: (_request, response) => sendJson(response, 200, { object: 'list', data: [modelCard(served)] }),
    },
    {
      method: 'GET', path: /^\/v1\/models\/(.+)$/, authenticated: true,
      handler: (_request, response, match) => {
        if (decodeURIComponent(match![1]) !== served.name) throw unknownModel(decodeURIComponent(match![1]));
        sendJson(response, 200, modelCard(served));
      },
    },
    { method: 'POST', path: '/v1/chat/completions', authenticated: true, handler: async (request, response) => chatCompletions(served, request, response, limit) },
    { method: 'POST', path: '/v1/completions', authenticated: true, handler: async (request, response) => completions(served, request, response, limit) },
  ];
}

function health(served: ServedModel): object {
  const { engine } = served;
  return { status: 'ok', model: served.name, running: engine.running, waiting: engine.waiting, batchRows: engine.batchRows, ...engine.stats, memory: process.memoryUsage() };
}

function modelCard(served: ServedModel): object {
  return { id: served.name, object: 'model', created: served.created, owned_by: 'r1ts', max_model_len: served.model.config.maxPositionEmbeddings };
}

function unknownModel(name: string): HttpError {
  return new HttpError(404, `The model \`${name}\` does not exist.`, 'invalid_request_error', 'model_not_found', 'model');
}

// ---------------------------------------------------------------------------------------------------------
// Request bodies

const nullable = <T extends z.ZodType>(schema: T) => schema.nullable().optional();

/** Parameters both endpoints take. Penalties and logit_bias are accepted only at their neutral values. */
const samplingFields = {
  model: z.string(),
  temperature: nullable(z.number().min(0).max(2)),
  top_p: nullable(z.number().gt(0).max(1)),
  n: nullable(z.number().int().min(1).max(128)),
  max_tokens: nullable(z.number().int().min(1)),
  stop: nullable(z.union([z.string(), z.array(z.string()).max(4)])),
  seed: nullable(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)),
  stream: nullable(z.boolean()),
  stream_options: nullable(z.strictObject({ include_usage: nullable(z.boolean()) })),
  user: nullable(z.string()),
  frequency_penalty: nullable(z.literal(0, { error: 'frequency_penalty is not supported by this server (only 0)' })),
  presence_penalty: nullable(z.literal(0, { error: 'presence_penalty is not supported by this server (only 0)' })),
  logit_bias: nullable(z.record(z.string(), z.number()).refine((bias) => Object.keys(bias).length === 0, 'logit_bias is not supported by this server (only {})')),
  // Parameters clients send that change nothing here (accepted so that those clients work).
  store: nullable(z.boolean()),
  metadata: nullable(z.record(z.string(), z.string())),
  service_tier: nullable(z.string()),
  // vLLM's extensions.
  top_k: nullable(z.number().int().min(-1)),
  ignore_eos: nullable(z.boolean()),
};

const textPart = z.looseObject({ type: z.literal('text'), text: z.string() });
const chatMessage = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: nullable(z.union([z.string(), z.array(textPart)])),
  name: nullable(z.string()),
});

const chatSchema = z.strictObject({
  ...samplingFields,
  messages: z.array(chatMessage).min(1),
  max_completion_tokens: nullable(z.number().int().min(1)),
  logprobs: nullable(z.boolean()),
  top_logprobs: nullable(z.number().int().min(0).max(20)),
  chat_template_kwargs: nullable(z.record(z.string(), z.unknown())),
  // Tools and structured output are not served: accepted only when they ask for nothing.
  tools: nullable(z.array(z.unknown()).max(0, { error: 'tools are not supported by this server' })),
  tool_choice: nullable(z.literal('none', { error: 'tool_choice is not supported by this server (only "none")' })),
  parallel_tool_calls: nullable(z.boolean()),
  response_format: nullable(z.strictObject({ type: z.literal('text', { error: 'response_format is not supported by this server (only {"type": "text"})' }) })),
});

const tokenIds = z.array(z.number().int().min(0)).min(1);
const completionSchema = z.strictObject({
  ...samplingFields,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  logprobs: nullable(z.number().int().min(0).max(5)),
  echo: nullable(z.literal(false, { error: 'echo is not supported by this server' })),
  suffix: nullable(z.null({ error: 'suffix is not supported by this server' })),
  best_of: nullable(z.number().int().min(1)),
});

type ChatBody = z.infer<typeof chatSchema>;
type CompletionBody = z.infer<typeof completionSchema>;
type SamplingBody = ChatBody | CompletionBody;

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object', 'invalid_request_error', 'invalid_body');
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue.code === 'unrecognized_keys') {
    throw new HttpError(400, `Unrecognized request argument supplied: ${issue.keys.join(', ')}`, 'invalid_request_error', 'unrecognized_argument', [...issue.path, issue.keys[0]].join('.'));
  }
  const param = issue.path.map((key, i) => (typeof key === 'number' ? `[${key}]` : `${i > 0 ? '.' : ''}${String(key)}`)).join('');
  throw new HttpError(400, `${param || 'body'}: ${issue.message}`, 'invalid_request_error', 'invalid_value', param || null);
}

/** Engine settings shared by the n choices of a request (seed aside). */
function samplingRequest(served: ServedModel, body: SamplingBody, maxTokens: number, topLogprobs: number): Omit<GenerationRequest, 'prompt'> {
  const topK = body.top_k ?? 0;
  return {
    maxNewTokens: maxTokens,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: topK < 0 ? 0 : topK,
    stop: typeof body.stop === 'string' ? [body.stop] : body.stop ?? [],
    stopTokenIds: body.ignore_eos ? [] : served.eosTokenIds,
    topLogprobs,
  };
}

function checkModel(served: ServedModel, body: SamplingBody): void {
  if (body.model !== served.name) throw unknownModel(body.model);
  if (body.stream_options && !body.stream) throw new HttpError(400, 'stream_options is only allowed when stream is true', 'invalid_request_error', 'invalid_value', 'stream_options');
}

/** The completion budget: what was asked, or by default the rest of the context; a 400 when it does not fit. */
function completionBudget(served: ServedModel, promptTokens: number, asked: number | null | undefined, fallback: number | null, promptParam: 'messages' | 'prompt'): number {
  const context = served.model.config.maxPositionEmbeddings;
  const maxTokens = asked ?? fallback ?? context - promptTokens;
  if (promptTokens + Math.max(1, maxTokens) > context) {
    throw new HttpError(400,
      `This model's maximum context length is ${context} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the prompt, ${maxTokens} for the completion). Please reduce the length of the prompt or of max_tokens.`,
      'invalid_request_error', 'context_length_exceeded', asked === undefined || asked === null ? promptParam : 'max_tokens');
  }
  return Math.min(maxTokens, context - promptTokens);
}

/** n seeds: the given one plus each choice's index, or fresh random ones. */
function seeds(body: SamplingBody, count: number): number[] {
  const base = body.seed ?? randomInt(2 ** 31);
  return Array.from({ length: count }, (_, i) => base + i);
}

// ---------------------------------------------------------------------------------------------------------
// Running choices on the engine

interface ChoiceEvents {
  onToken?: (choice: number, event: TokenEvent) => void;
  onDone?: (choice: number, result: GenerationResult) => void;
}

/**
 * Submits the choices (throwing a 429 or 400 at once when the engine refuses them, before any answer is
 * written) and returns a promise of their results once all are done. A client that leaves cancels them,
 * freeing their rows, and the promise resolves with null; an engine failure rejects it.
 */
function startChoices(served: ServedModel, response: ServerResponse, choices: readonly GenerationRequest[], events: ChoiceEvents): Promise<GenerationResult[] | null> {
  let settle!: { resolve: (results: GenerationResult[] | null) => void; reject: (error: unknown) => void };
  const promise = new Promise<GenerationResult[] | null>((resolve, reject) => (settle = { resolve, reject }));
  const results: GenerationResult[] = new Array(choices.length);
  let remaining = choices.length;
  const choiceOf = new Map<number, number>();
  let ids: number[];
  try {
    ids = served.engine.submit(choices, {
      onToken: (id, event) => events.onToken?.(choiceOf.get(id)!, event),
      onDone: (id, result) => {
        const choice = choiceOf.get(id)!;
        results[choice] = result;
        events.onDone?.(choice, result);
        if (--remaining === 0) settle.resolve(results);
      },
      onError: (error) => {
        remaining = 0;
        settle.reject(error);
      },
    });
  } catch (error) {
    if (error instanceof QueueFullError) throw new HttpError(429, error.message, 'rate_limit_error', 'rate_limit_exceeded');
    if (error instanceof UserError) throw new HttpError(400, error.message, 'invalid_request_error', 'invalid_value');
    throw error;
  }
  ids.forEach((id, choice) => choiceOf.set(id, choice));
  // 'close' fires when the client goes, or after the answer is sent (when nothing is left to cancel).
  response.on('close', () => {
    if (remaining === 0) return;
    served.engine.cancel(ids);
    remaining = 0;
    settle.resolve(null);
  });
  return promise;
}

/**
 * Waits for the choices and closes their stream: the usage chunk (when asked for) and `data: [DONE]`; an
 * engine failure as an error event; nothing more for a client that left.
 */
async function endStream(stream: EventStream, pending: Promise<GenerationResult[] | null>, usageChunk: (results: GenerationResult[]) => object | null): Promise<void> {
  const results = await pending.catch((error: unknown) => {
    stream.send({ error: { message: (error as Error).message, type: 'server_error', param: null, code: null } });
    return null;
  });
  if (results !== null) {
    const chunk = usageChunk(results);
    if (chunk) stream.send(chunk);
    stream.send('[DONE]');
  }
  stream.end();
}

function usage(promptTokens: number, results: readonly GenerationResult[]): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const completionTokens = results.reduce((sum, r) => sum + r.tokenIds.length, 0);
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** Every token's string form (bytes of an incomplete character decode to U+FFFD) and UTF-8 bytes. */
function tokenText(tokenizer: Tokenizer, id: number): { token: string; bytes: number[] } {
  const bytes = tokenizer.tokenBytes(id);
  return { token: new TextDecoder('utf-8', { fatal: false }).decode(bytes), bytes: [...bytes] };
}

/** One entry of a chat choice's logprobs.content. */
function chatLogprob(tokenizer: Tokenizer, id: number, logprob: number, top: readonly TokenLogprob[] | null): object {
  return {
    ...tokenText(tokenizer, id), logprob,
    top_logprobs: (top ?? []).map((t) => ({ ...tokenText(tokenizer, t.id), logprob: t.logprob })),
  };
}

// ---------------------------------------------------------------------------------------------------------
// POST /v1/chat/completions

function messageText(content: ChatBody['messages'][number]['content']): string {
  if (content === null || content === undefined) return '';
  return typeof content === 'string' ? content : content.map((part) => part.text).join('');
}

async function chatCompletions(served: ServedModel, request: IncomingMessage, response: ServerResponse, limit: number): Promise<void> {
  const body = parseBody(chatSchema, await readJson(request, response, limit));
  checkModel(served, body);
  if (body.top_logprobs && !body.logprobs) throw new HttpError(400, 'top_logprobs needs logprobs: true', 'invalid_request_error', 'invalid_value', 'top_logprobs');
  const { tokenizer } = served;
  if (tokenizer.chatTemplate === null) {
    throw new HttpError(400, `${served.name} has no chat template (tokenizer_config.json's chat_template): use /v1/completions`, 'invalid_request_error', 'no_chat_template', 'messages');
  }
  // Assistant turns sent back keep their content only: R1 drops earlier thinking from the context.
  const messages: ChatMessage[] = body.messages.map((m) => ({ ...m, content: messageText(m.content) }));
  let promptText: string;
  try {
    promptText = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, variables: body.chat_template_kwargs ?? undefined });
  } catch (error) {
    throw new HttpError(400, (error as Error).message, 'invalid_request_error', 'chat_template_error', 'messages');
  }
  const promptIds = tokenizer.encode(promptText, { addSpecialTokens: false });
  const maxTokens = completionBudget(served, promptIds.length, body.max_completion_tokens ?? body.max_tokens, null, 'messages');
  const n = body.n ?? 1;
  const wantLogprobs = body.logprobs === true;
  const settings = samplingRequest(served, body, maxTokens, wantLogprobs ? Math.max(body.top_logprobs ?? 0, 0) : 0);
  const choices = seeds(body, n).map((seed) => ({ ...settings, prompt: promptIds, seed }));
  const thinking = promptOpensThinking(promptText);
  const id = `chatcmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const head = { id, created, model: served.name, system_fingerprint: null };
  const logprobsOf = (r: GenerationResult) => (wantLogprobs ? { content: r.tokenIds.map((t, j) => chatLogprob(tokenizer, t, r.logprobs[j], r.topLogprobs?.[j] ?? null)), refusal: null } : null);

  if (!body.stream) {
    const results = await startChoices(served, response, choices, {});
    if (results === null) return;
    sendJson(response, 200, {
      ...head, object: 'chat.completion',
      choices: results.map((r, index) => {
        const split = splitReasoning(r.text, thinking);
        return {
          index, finish_reason: r.finishReason, logprobs: logprobsOf(r),
          message: { role: 'assistant', content: split.content, ...(split.sawReasoning ? { reasoning_content: split.reasoning } : {}), refusal: null },
        };
      }),
      usage: usage(promptIds.length, results),
    });
    return;
  }

  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (choices: object[]) => stream.send({ ...head, object: 'chat.completion.chunk', choices, ...(includeUsage ? { usage: null } : {}) });
  const parsers = choices.map(() => new ReasoningParser(thinking));
  const delta = (index: number, split: { reasoning: string; content: string }, logprobs: object | null) => {
    if (split.reasoning === '' && split.content === '' && logprobs === null) return;
    const fields = { ...(split.reasoning !== '' ? { reasoning_content: split.reasoning } : {}), ...(split.content !== '' ? { content: split.content } : {}) };
    chunk([{ index, delta: fields, logprobs, finish_reason: null }]);
  };
  // Tokens arrive from later steps of the event loop, after the stream below is open.
  const pending = startChoices(served, response, choices, {
    onToken: (index, event) => {
      const logprobs = wantLogprobs ? { content: [chatLogprob(tokenizer, event.tokenId, event.logprob, event.topLogprobs)], refusal: null } : null;
      delta(index, parsers[index].push(event.text), logprobs);
    },
    onDone: (index, result) => {
      delta(index, parsers[index].end(), null);
      chunk([{ index, delta: {}, logprobs: null, finish_reason: result.finishReason }]);
    },
  });
  const stream = new EventStream(response);
  choices.forEach((_, index) => chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
  await endStream(stream, pending, (results) => (includeUsage ? { ...head, object: 'chat.completion.chunk', choices: [], usage: usage(promptIds.length, results) } : null));
}

// ---------------------------------------------------------------------------------------------------------
// POST /v1/completions

/** The prompt(s) as token ids: strings are encoded as the tokenizer's post-processor says (BOS where it adds one). */
function completionPrompts(served: ServedModel, prompt: CompletionBody['prompt']): number[][] {
  const list: Array<string | number[]> = typeof prompt === 'string' ? [prompt] : typeof prompt[0] === 'number' ? [prompt as number[]] : prompt as Array<string | number[]>;
  const vocab = served.tokenizer.vocabSize;
  return list.map((p, i) => {
    if (typeof p === 'string') {
      const ids = served.tokenizer.encode(p);
      if (ids.length === 0) throw new HttpError(400, `prompt${list.length > 1 ? `[${i}]` : ''} has no tokens`, 'invalid_request_error', 'invalid_value', 'prompt');
      return ids;
    }
    const bad = p.find((id) => id >= vocab);
    if (bad !== undefined) throw new HttpError(400, `prompt token ${bad} is outside the vocabulary [0, ${vocab})`, 'invalid_request_error', 'invalid_value', 'prompt');
    return p;
  });
}

/** OpenAI's legacy logprobs object of a text completion. */
function completionLogprobs(tokenizer: Tokenizer, ids: readonly number[], logprobs: readonly number[], top: readonly TokenLogprob[][] | undefined, textOffset: number): object {
  const tokens = ids.map((id) => tokenText(tokenizer, id).token);
  const offsets: number[] = [];
  let at = textOffset;
  for (const token of tokens) {
    offsets.push(at);
    at += token.length;
  }
  return {
    tokens, token_logprobs: [...logprobs], text_offset: offsets,
    top_logprobs: top ? top.map((entries) => Object.fromEntries(entries.map((t) => [tokenText(tokenizer, t.id).token, t.logprob]))) : null,
  };
}

async function completions(served: ServedModel, request: IncomingMessage, response: ServerResponse, limit: number): Promise<void> {
  const body = parseBody(completionSchema, await readJson(request, response, limit));
  checkModel(served, body);
  const n = body.n ?? 1;
  if (body.best_of != null && body.best_of !== n) throw new HttpError(400, 'best_of other than n is not supported by this server', 'invalid_request_error', 'invalid_value', 'best_of');
  const prompts = completionPrompts(served, body.prompt);
  const wantLogprobs = body.logprobs !== null && body.logprobs !== undefined;
  const choices = prompts.flatMap((prompt) => {
    // OpenAI's completions default to 16 tokens.
    const settings = samplingRequest(served, body, completionBudget(served, prompt.length, body.max_tokens, 16, 'prompt'), wantLogprobs ? body.logprobs! : 0);
    return seeds(body, n).map((seed) => ({ ...settings, prompt, seed }));
  });
  const promptTokens = prompts.reduce((sum, p) => sum + p.length, 0);
  const id = `cmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const head = { id, object: 'text_completion', created, model: served.name, system_fingerprint: null };
  const { tokenizer } = served;

  if (!body.stream) {
    const results = await startChoices(served, response, choices, {});
    if (results === null) return;
    sendJson(response, 200, {
      ...head,
      choices: results.map((r, index) => ({
        index, text: r.text, finish_reason: r.finishReason,
        logprobs: wantLogprobs ? completionLogprobs(tokenizer, r.tokenIds, r.logprobs, r.topLogprobs, 0) : null,
      })),
      usage: usage(promptTokens, results),
    });
    return;
  }

  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (choice: object) => stream.send({ ...head, choices: [choice], ...(includeUsage ? { usage: null } : {}) });
  const offsets = choices.map(() => 0);
  const pending = startChoices(served, response, choices, {
    onToken: (index, event) => {
      const logprobs = wantLogprobs ? completionLogprobs(tokenizer, [event.tokenId], [event.logprob], event.topLogprobs ? [event.topLogprobs] : undefined, offsets[index]) : null;
      offsets[index] += event.text.length;
      if (event.text !== '' || logprobs !== null) chunk({ index, text: event.text, logprobs, finish_reason: null });
    },
    onDone: (index, result) => chunk({ index, text: '', logprobs: null, finish_reason: result.finishReason }),
  });
  const stream = new EventStream(response);
  await endStream(stream, pending, (results) => (includeUsage ? { ...head, choices: [], usage: usage(promptTokens, results) } : null));
}

// ---------------------------------------------------------------------------------------------------------
// `r1 serve`

export interface ServeConfig {
  /** Hugging Face model folder. */
  model: string;
  /** The id clients send as `model`; null: the folder's name. */
  servedModelName: string | null;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Clients must send `Authorization: Bearer <apiKey>`; null: no key. */
  apiKey: string | null;
  device: Device;
  /** Rows decoded together. */
  maxBatchSize: number;
  /** Requests (choices) that may wait for a row; more answer 429. */
  maxWaiting: number;
  maxBodyBytes: number;
}

export const defaultServeConfig: Omit<ServeConfig, 'model'> = {
  servedModelName: null,
  host: '127.0.0.1',
  port: 8000,
  apiKey: null,
  device: 'cpu',
  maxBatchSize: 64,
  maxWaiting: 256,
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
};

/** Loads a model folder into a ServedModel on the current default device (selectDevice first). */
export async function loadServedModel(dir: string, options: { name?: string | null } & ServingOptions = {}): Promise<ServedModel> {
  const { model, tokenizer, eosTokenIds } = await loadModel(dir);
  return {
    name: options.name ?? defaultModelName(dir), model, tokenizer, eosTokenIds,
    engine: new ServingEngine(model, tokenizer, options),
    created: Math.floor(Date.now() / 1000),
  };
}

/** Serves a model folder with the OpenAI-compatible API until close(); config.device becomes the default device. */
export async function serveModel(config: ServeConfig): Promise<RunningServer & { served: ServedModel }> {
  useDevice(config.device);
  const served = await loadServedModel(config.model, { name: config.servedModelName, maxBatchSize: config.maxBatchSize, maxWaiting: config.maxWaiting });
  const server = await listen(openAiRoutes(served, { maxBodyBytes: config.maxBodyBytes }), { host: config.host, port: config.port, apiKey: config.apiKey });
  return { ...server, served };
}
