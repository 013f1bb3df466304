// `r1 serve`'s API driven by the official openai client (and by raw fetch for what a client library would not
// send), against a tiny model folder: answers must be the engine's own completions for the same prompt and
// seed, streamed or not, alone or beside other clients; errors must be OpenAI's; a client that leaves must
// free its row. Only 127.0.0.1.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { generate } from '../../src/generate/engine.ts';
import { saveModel } from '../../src/models/pretrained.ts';
import { defaultServeConfig, serveModel } from '../../src/serve/openai.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';

const root = mkdtempSync(join(tmpdir(), 'r1ts-serve-'));
const modelDir = join(root, 'tiny');
// Room for long completions, so that a stream is still running when the test acts on it.
const model = tinyModel(7, { eosTokenId: 295, maxPositionEmbeddings: 4096 });
let tokenizer: Tokenizer;
let server: Awaited<ReturnType<typeof serveModel>>;
let client: OpenAI;

before(async () => {
  await saveTrainedBpe(join(root, 'tok'), tinyBpe());
  tokenizer = Tokenizer.fromFile(join(root, 'tok'));
  await saveModel(model, tokenizer, modelDir);
  server = await serveModel({ ...defaultServeConfig, model: modelDir, port: 0, maxBatchSize: 8 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

const user = (content: string) => [{ role: 'user' as const, content }];
const chatPrompt = (content: string) => tokenizer.encodeChat(user(content), { addGenerationPrompt: true });
const engineAnswer = (prompt: number[], seed: number, options: { maxNewTokens: number; temperature?: number; stop?: string[] }) =>
  generate(model, tokenizer, [{ prompt, seed, stopTokenIds: [295], ...options }])[0];

async function post(path: string, body: string | object, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

async function health(): Promise<any> {
  return (await fetch(`${server.url}/health`)).json();
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`never happened: ${what}`);
}

describe('r1 serve: chat completions', () => {
  it('answers with the engine\'s completion of the chat-templated prompt, with usage', async () => {
    const answer = await client.chat.completions.create({ model: 'tiny', messages: user('the cat'), max_tokens: 12, seed: 3, temperature: 0.8 });
    const expected = engineAnswer(chatPrompt('the cat'), 3, { maxNewTokens: 12, temperature: 0.8 });
    assert.equal(answer.object, 'chat.completion');
    assert.equal(answer.choices[0].message.content, expected.text);
    assert.equal(answer.choices[0].finish_reason, expected.finishReason);
    assert.deepEqual(answer.usage, { prompt_tokens: chatPrompt('the cat').length, completion_tokens: expected.tokenIds.length, total_tokens: chatPrompt('the cat').length + expected.tokenIds.length });
  });

  it('streams the same answer in deltas, then usage, then [DONE]', async () => {
    const stream = await client.chat.completions.create({ model: 'tiny', messages: user('a dog'), max_tokens: 20, seed: 5, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.choices.length > 0) {
        text += chunk.choices[0].delta.content ?? '';
        finish = chunk.choices[0].finish_reason ?? finish;
      } else {
        usage = chunk.usage;
      }
    }
    const expected = engineAnswer(chatPrompt('a dog'), 5, { maxNewTokens: 20 });
    assert.equal(text, expected.text);
    assert.equal(finish, expected.finishReason);
    assert.equal(usage?.completion_tokens, expected.tokenIds.length);
    assert.ok(chunks > 3, `${chunks} chunks`);
    // On the wire: the stream ends with the [DONE] sentinel.
    const raw = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'tiny', messages: user('x'), max_tokens: 3, stream: true }) });
    assert.match(raw.headers.get('content-type')!, /text\/event-stream/);
    assert.ok((await raw.text()).trimEnd().endsWith('data: [DONE]'));
  });

  it('gives n choices, each the engine\'s completion with seed + its index; a seed reproduces them', async () => {
    const ask = () => client.chat.completions.create({ model: 'tiny', messages: user('numbers'), max_tokens: 10, n: 3, seed: 11 });
    const [first, again] = [await ask(), await ask()];
    assert.equal(first.choices.length, 3);
    first.choices.forEach((choice, i) => {
      assert.equal(choice.index, i);
      assert.equal(choice.message.content, engineAnswer(chatPrompt('numbers'), 11 + i, { maxNewTokens: 10 }).text);
    });
    assert.deepEqual(again.choices.map((c) => c.message.content), first.choices.map((c) => c.message.content));
    assert.equal(new Set(first.choices.map((c) => c.message.content)).size, 3, 'different seeds, different samples');
  });

  it('stops before a stop string', async () => {
    const free = engineAnswer(chatPrompt('the cat'), 0, { maxNewTokens: 24, temperature: 0 });
    const stop = free.text.slice(5, 8);
    const answer = await client.chat.completions.create({ model: 'tiny', messages: user('the cat'), max_tokens: 24, temperature: 0, stop: ['NEVER', stop] });
    assert.equal(answer.choices[0].finish_reason, 'stop');
    assert.equal(answer.choices[0].message.content, free.text.slice(0, free.text.indexOf(stop)));
  });

  it('gives concurrent streaming clients the answers they get alone', async () => {
    const prompts = ['the cat', 'a dog ran', 'numbers: 12', '<think>two'];
    const streams = await Promise.all(prompts.map((p, i) => client.chat.completions.create({ model: 'tiny', messages: user(p), max_tokens: 16, seed: 20 + i, stream: true })));
    const texts = await Promise.all(streams.map(async (stream) => {
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      return text;
    }));
    texts.forEach((text, i) => assert.equal(text, engineAnswer(chatPrompt(prompts[i]), 20 + i, { maxNewTokens: 16 }).text, prompts[i]));
  });

  it('returns log-probabilities and the most likely tokens', async () => {
    const answer = await client.chat.completions.create({ model: 'tiny', messages: user('the cat'), max_tokens: 5, seed: 2, logprobs: true, top_logprobs: 3 });
    const expected = engineAnswer(chatPrompt('the cat'), 2, { maxNewTokens: 5 });
    const content = answer.choices[0].logprobs!.content!;
    assert.equal(content.length, expected.tokenIds.length);
    content.forEach((entry, j) => {
      assert.ok(Math.abs(entry.logprob - expected.logprobs[j]) < 1e-4);
      assert.deepEqual(entry.bytes, [...tokenizer.tokenBytes(expected.tokenIds[j])]);
      assert.equal(entry.top_logprobs.length, 3);
      assert.ok(entry.top_logprobs[0].logprob >= entry.logprob - 1e-6);
    });
  });
});

describe('r1 serve: reasoning models', () => {
  let reasoningServer: Awaited<ReturnType<typeof serveModel>>;
  let reasoningClient: OpenAI;
  before(async () => {
    // R1's chat template opens the thinking in the generation prompt: the whole completion, until </think>, is reasoning.
    const dir = join(root, 'r1-like');
    await saveModel(model, tokenizer, dir);
    const configFile = join(dir, 'tokenizer_config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    config.chat_template = config.chat_template.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'");
    await writeFile(configFile, JSON.stringify(config));
    reasoningServer = await serveModel({ ...defaultServeConfig, model: dir, port: 0 });
    reasoningClient = new OpenAI({ baseURL: `${reasoningServer.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(() => reasoningServer?.close());

  it('returns the thinking as reasoning_content, in the message and in stream deltas', async () => {
    const request = { model: 'r1-like', messages: user('the cat'), max_tokens: 30, seed: 9 };
    const answer = await reasoningClient.chat.completions.create(request);
    const message = answer.choices[0].message as { content: string; reasoning_content?: string };
    const templated = Tokenizer.fromFile(join(root, 'r1-like')).applyChatTemplate(user('the cat'), { addGenerationPrompt: true });
    assert.ok(templated.endsWith('<think>\n'));
    const raw = await reasoningClient.completions.create({ model: 'r1-like', prompt: templated, max_tokens: 30, seed: 9 });
    // The completion endpoint gives the raw text (the same prompt ids: the template text encodes without additions here).
    const text = raw.choices[0].text;
    const close = text.indexOf('</think>');
    assert.equal(message.reasoning_content, close < 0 ? text : text.slice(0, close));
    assert.equal(message.content, close < 0 ? '' : text.slice(close + '</think>'.length));
    let reasoning = '';
    let content = '';
    for await (const chunk of await reasoningClient.chat.completions.create({ ...request, stream: true })) {
      const delta = chunk.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
      reasoning += delta?.reasoning_content ?? '';
      content += delta?.content ?? '';
    }
    assert.deepEqual({ reasoning, content }, { reasoning: message.reasoning_content, content: message.content });
    assert.ok(reasoning.length > 0);
  });
});

describe('r1 serve: completions and models', () => {
  it('completes text prompts, a batch of them, with logprobs', async () => {
    const answer = await client.completions.create({ model: 'tiny', prompt: ['the cat', 'a dog'], max_tokens: 6, seed: 4, n: 2, logprobs: 2 });
    assert.equal(answer.choices.length, 4);
    answer.choices.forEach((choice, index) => {
      const prompt = ['the cat', 'a dog'][Math.floor(index / 2)];
      const expected = engineAnswer(tokenizer.encode(prompt), 4 + (index % 2), { maxNewTokens: 6 });
      assert.equal(choice.index, index);
      assert.equal(choice.text, expected.text);
      assert.equal(choice.logprobs!.token_logprobs!.length, expected.tokenIds.length);
      assert.equal(Object.keys(choice.logprobs!.top_logprobs![0]).length <= 2, true);
    });
    assert.equal(answer.usage!.prompt_tokens, tokenizer.encode('the cat').length + tokenizer.encode('a dog').length);
  });

  it('streams text completions', async () => {
    let text = '';
    for await (const chunk of await client.completions.create({ model: 'tiny', prompt: 'the cat', max_tokens: 10, seed: 1, stream: true })) text += chunk.choices[0]?.text ?? '';
    assert.equal(text, engineAnswer(tokenizer.encode('the cat'), 1, { maxNewTokens: 10 }).text);
  });

  it('lists the model, and reports health', async () => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['tiny']);
    const status = await health();
    assert.equal(status.status, 'ok');
    assert.equal(status.model, 'tiny');
  });
});

describe('r1 serve: errors', () => {
  it('answers bad requests with 400 and OpenAI error objects naming the parameter', async () => {
    const bad = async (body: string | object, param: string | null, code: string) => {
      const { status, json } = await post('/v1/chat/completions', body);
      assert.equal(status, 400, JSON.stringify(json));
      assert.equal(json.error.type, 'invalid_request_error');
      assert.equal(json.error.code, code, JSON.stringify(json));
      if (param !== null) assert.equal(json.error.param, param, JSON.stringify(json));
      assert.equal(typeof json.error.message, 'string');
    };
    const ok = { model: 'tiny', messages: user('hi') };
    await bad('{"model": "tiny", "messages": [', null, 'invalid_json');
    await bad('[1, 2]', null, 'invalid_body');
    await bad({ ...ok, temperature: 'hot' }, 'temperature', 'invalid_value');
    await bad({ ...ok, temperature: 2.5 }, 'temperature', 'invalid_value');
    await bad({ ...ok, top_p: 0 }, 'top_p', 'invalid_value');
    await bad({ ...ok, n: 0 }, 'n', 'invalid_value');
    await bad({ ...ok, max_tokens: -1 }, 'max_tokens', 'invalid_value');
    await bad({ ...ok, messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role', 'invalid_value');
    await bad({ ...ok, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', 'invalid_value');
    await bad({ ...ok, frequency_penalty: 1 }, 'frequency_penalty', 'invalid_value');
    await bad({ ...ok, top_logprobs: 2 }, 'top_logprobs', 'invalid_value');
    await bad({ ...ok, stream_options: { include_usage: true } }, 'stream_options', 'invalid_value');
    await bad({ ...ok, temprature: 1 }, 'temprature', 'unrecognized_argument');
    await bad({ ...ok, tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools', 'invalid_value');
    await bad({ ...ok, response_format: { type: 'json_object' } }, 'response_format.type', 'invalid_value');
    // What clients send that asks for nothing is accepted.
    const neutral = await post('/v1/chat/completions', { ...ok, max_tokens: 2, store: false, tools: [], tool_choice: 'none', response_format: { type: 'text' }, user: 'u', frequency_penalty: 0 });
    assert.equal(neutral.status, 200, JSON.stringify(neutral.json));
    await bad({ ...ok, messages: user('the cat '.repeat(5000)) }, 'messages', 'context_length_exceeded');
    await bad({ ...ok, max_tokens: 5000 }, 'max_tokens', 'context_length_exceeded');
    const { status, json } = await post('/v1/chat/completions', { ...ok, model: 'gpt-4' });
    assert.equal(status, 404);
    assert.equal(json.error.code, 'model_not_found');
    const openaiError = await client.chat.completions.create({ model: 'tiny', messages: [], max_tokens: 1 }).catch((e: unknown) => e);
    assert.ok(openaiError instanceof OpenAI.BadRequestError, String(openaiError));
  });

  it('refuses a body over the size limit with 413, and stays up', async () => {
    const { status, json } = await post('/v1/completions', { model: 'tiny', prompt: 'x'.repeat(2 << 20) });
    assert.equal(status, 413);
    assert.equal(json.error.code, 'request_too_large');
    assert.equal((await health()).status, 'ok');
  });

  it('asks for the key with 401 when the server has one', async () => {
    const locked = await serveModel({ ...defaultServeConfig, model: modelDir, port: 0, apiKey: 'sk-test' });
    try {
      const ask = (key: string) => new OpenAI({ baseURL: `${locked.url}/v1`, apiKey: key, maxRetries: 0 }).chat.completions.create({ model: 'tiny', messages: user('hi'), max_tokens: 2 });
      const wrong = await ask('sk-wrong').catch((e: unknown) => e);
      assert.ok(wrong instanceof OpenAI.AuthenticationError, String(wrong));
      const missing = await fetch(`${locked.url}/v1/models`);
      assert.equal(missing.status, 401);
      assert.equal((await missing.json()).error.code, 'invalid_api_key');
      assert.equal((await ask('sk-test')).choices.length, 1);
    } finally {
      await locked.close();
    }
  });

  it('frees a row when its client leaves, and answers 429 when the queue is full', async () => {
    const small = await serveModel({ ...defaultServeConfig, model: modelDir, port: 0, maxBatchSize: 1, maxWaiting: 1 });
    const status = async () => (await fetch(`${small.url}/health`)).json();
    const long = { model: 'tiny', prompt: 'the cat', max_tokens: 4000, ignore_eos: true, stream: true };
    try {
      const tooMany = await fetch(`${small.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ ...long, n: 3, stream: false }) });
      assert.equal(tooMany.status, 400, 'n beyond what the server holds can never run');
      // A holds the one row; B waits; C finds the queue full.
      const a = new AbortController();
      const responseA = await fetch(`${small.url}/v1/completions`, { method: 'POST', body: JSON.stringify(long), signal: a.signal });
      const readerA = responseA.body!.getReader();
      await readerA.read();
      await until(async () => (await status()).running === 1, 'A runs');
      const b = new AbortController();
      const responseB = await fetch(`${small.url}/v1/completions`, { method: 'POST', body: JSON.stringify(long), signal: b.signal });
      await until(async () => (await status()).waiting === 1, 'B waits');
      const c = await fetch(`${small.url}/v1/completions`, { method: 'POST', body: JSON.stringify(long) });
      assert.equal(c.status, 429);
      assert.equal((await c.json()).error.code, 'rate_limit_exceeded');
      // A leaves: its row goes to B at once.
      a.abort();
      await until(async () => {
        const s = await status();
        return s.cancelled === 1 && s.running === 1 && s.waiting === 0;
      }, 'B takes A\'s row');
      b.abort();
      await responseB.body?.cancel().catch(() => undefined);
      await until(async () => {
        const s = await status();
        return s.cancelled === 2 && s.running === 0 && s.batchRows === 0;
      }, 'the batch is empty and its cache freed');
      const s = await status();
      assert.ok(s.completionTokens === 0 && s.finished === 0, 'nothing ran to its 4000 tokens');
    } finally {
      await small.close();
    }
  });
});
