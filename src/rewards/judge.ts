// A generative judge for answers the rules cannot decide (R1 sec. 2.3.3: "some prompts judged by a generative
// reward model": the reference and the model's answer are given to DeepSeek-V3, which says whether they agree;
// R1v2 Listing 4's judge answers in JSON with an analysis and a correctness field). Two kinds, one interface:
//   - an OpenAI-compatible chat endpoint given by URL (a vLLM or llama.cpp server, a hosted API), called with
//     temperature 0; transient failures (no connection, a timeout, HTTP 429 or 5xx, an answer without a verdict)
//     are retried with a doubling pause, then fail with an error naming the endpoint and what it answered;
//   - a local model folder, prompted the same way and decoded greedily.
// A verdict is read from JSON {"correctness": "correct" | "incorrect"} (or a boolean), or from a reply whose
// first word is correct / incorrect / yes / no; anything else is an answer without a verdict.
import { generate } from '../generate/engine.ts';
import type { CausalLM } from '../models/pretrained.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';

/** What the judge is asked about one sample. */
export interface JudgeQuestion {
  question: string;
  reference: string;
  /** The sample's final answer (or its whole response when no answer could be extracted). */
  answer: string;
}

export interface Judge {
  /** The endpoint URL or model folder, for messages. */
  readonly name: string;
  /** Whether the answer agrees with the reference. */
  judge(question: JudgeQuestion): Promise<boolean>;
}

/** The instruction sent to every judge (our wording of R1v2 Listing 4's task). */
export function judgePrompt({ question, reference, answer }: JudgeQuestion): string {
  return [
    'You are checking a student\'s answer against the reference answer of a problem. Decide whether the two',
    'answers are equivalent (the same value, expression or choice, whatever the wording or notation).',
    '',
    `Problem: ${question}`,
    `Reference answer: ${reference}`,
    `Student answer: ${answer}`,
    '',
    'Reply with JSON only: {"analysis": "<one sentence>", "correctness": "correct" or "incorrect"}',
  ].join('\n');
}

/** The verdict in a judge's reply, or null when it holds none (rules in the file comment). */
export function parseVerdict(reply: string): boolean | null {
  const text = reply.trim();
  const json = text.match(/\{[\s\S]*\}/);
  if (json) {
    try {
      const value = (JSON.parse(json[0]) as { correctness?: unknown }).correctness;
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(correct|incorrect)$/i.test(value.trim())) return value.trim().toLowerCase() === 'correct';
    } catch {
      // Not JSON after all: try the first word.
    }
  }
  const first = text.match(/^[^A-Za-z]*([A-Za-z]+)/)?.[1]?.toLowerCase();
  if (first === 'correct' || first === 'yes') return true;
  if (first === 'incorrect' || first === 'no') return false;
  return null;
}

export interface EndpointJudgeOptions {
  /** The model name sent in the request (servers that host one model ignore it). */
  model: string;
  /** Attempts per question before giving up (at least 1). */
  attempts: number;
  /** Pause before the second attempt; doubled before each further one. */
  retryDelayMs: number;
  timeoutMs: number;
  /** Sent as `Authorization: Bearer ...` when set (e.g. from OPENAI_API_KEY). */
  apiKey: string | null;
}

export const defaultEndpointJudgeOptions: EndpointJudgeOptions = { model: 'judge', attempts: 4, retryDelayMs: 500, timeoutMs: 60_000, apiKey: null };

/** A failure worth another attempt (the server may be busy or restarting), with what to tell the user. */
class TransientJudgeFailure extends Error {}

/**
 * A judge behind an OpenAI-compatible chat endpoint. `url` is the server's base (`http://host:8000/v1`) or the
 * full `.../chat/completions` URL.
 */
export function endpointJudge(url: string, options: Partial<EndpointJudgeOptions> = {}): Judge {
  const settings = { ...defaultEndpointJudgeOptions, ...options };
  let endpoint: URL;
  try {
    endpoint = new URL(url.replace(/\/+$/, '').endsWith('/chat/completions') ? url : `${url.replace(/\/+$/, '')}/chat/completions`);
  } catch {
    throw new UserError(`judge ${url}: not a URL`);
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') throw new UserError(`judge ${url}: only http and https endpoints are supported`);

  async function ask(prompt: string): Promise<boolean> {
    let response: Response;
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(settings.apiKey ? { authorization: `Bearer ${settings.apiKey}` } : {}) },
        body: JSON.stringify({ model: settings.model, messages: [{ role: 'user', content: prompt }], temperature: 0 }),
        signal: AbortSignal.timeout(settings.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new TransientJudgeFailure(cause === 'TimeoutError' ? `no answer within ${settings.timeoutMs} ms` : `cannot connect (${cause})`);
    }
    const body = await response.text().catch(() => '');
    if (response.status === 429 || response.status >= 500) throw new TransientJudgeFailure(`HTTP ${response.status}: ${snippet(body)}`);
    if (!response.ok) throw new UserError(`judge ${endpoint}: HTTP ${response.status}: ${snippet(body)}`);
    let content: unknown;
    try {
      content = (JSON.parse(body) as { choices?: Array<{ message?: { content?: unknown } }> }).choices?.[0]?.message?.content;
    } catch {
      throw new TransientJudgeFailure(`an answer that is not JSON: ${snippet(body)}`);
    }
    if (typeof content !== 'string') throw new TransientJudgeFailure(`an answer without choices[0].message.content: ${snippet(body)}`);
    const verdict = parseVerdict(content);
    if (verdict === null) throw new TransientJudgeFailure(`a reply without a verdict: ${snippet(content)}`);
    return verdict;
  }

  return {
    name: endpoint.toString(),
    async judge(question: JudgeQuestion): Promise<boolean> {
      const prompt = judgePrompt(question);
      let last = '';
      for (let attempt = 1; attempt <= settings.attempts; attempt++) {
        try {
          return await ask(prompt);
        } catch (err) {
          if (!(err instanceof TransientJudgeFailure)) throw err;
          last = err.message;
          if (attempt < settings.attempts) await new Promise((resolve) => setTimeout(resolve, settings.retryDelayMs * 2 ** (attempt - 1)));
        }
      }
      throw new UserError(`judge ${endpoint}: gave up after ${settings.attempts} attempts; the last one got ${last}`);
    },
  };
}

/** A judge that is a local model, prompted with judgePrompt and decoded greedily for up to `maxNewTokens`. */
export function modelJudge(name: string, model: CausalLM, tokenizer: Tokenizer, maxNewTokens = 64): Judge {
  return {
    name,
    async judge(question: JudgeQuestion): Promise<boolean> {
      const prompt = tokenizer.chatTemplate === null
        ? `${judgePrompt(question)}\n`
        : tokenizer.applyChatTemplate([{ role: 'user', content: judgePrompt(question) }], { addGenerationPrompt: true });
      const [result] = generate(model, tokenizer, [{ prompt }], { maxNewTokens, temperature: 0 });
      const verdict = parseVerdict(result.text);
      if (verdict === null) throw new UserError(`judge ${name}: the model's reply holds no verdict (expected {"correctness": "correct" | "incorrect"}): ${snippet(result.text)}`);
      return verdict;
    },
  };
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > 200 ? `${flat.slice(0, 200)}...` : flat);
}
