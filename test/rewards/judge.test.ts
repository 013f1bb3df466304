// The generative judge against a real OpenAI-compatible HTTP server started here on 127.0.0.1: verdicts are read
// from its replies, a busy server is retried, and a server that is down or answers garbage fails with an error
// naming the endpoint and what came back.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { endpointJudge, judgePrompt, parseVerdict } from '../../src/rewards/judge.ts';
import { UserError } from '../../src/util/errors.ts';

/** A chat-completions server whose reply to each request `respond` decides; records the request bodies. */
async function chatServer(respond: (body: { model: string; messages: Array<{ content: string }> }, n: number, res: ServerResponse) => void): Promise<{ url: string; server: Server; requests: unknown[] }> {
  const requests: unknown[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.on('data', (chunk) => { text += chunk; });
    req.on('end', () => {
      assert.equal(req.url, '/v1/chat/completions');
      assert.equal(req.method, 'POST');
      const body = JSON.parse(text);
      requests.push(body);
      respond(body, requests.length, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, server, requests };
}

const reply = (res: ServerResponse, content: string) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] }));
};
const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));
const fast = { attempts: 3, retryDelayMs: 5, timeoutMs: 5000 };

describe('parseVerdict', () => {
  it('reads the JSON verdict, a boolean, or a first word, and nothing else', () => {
    assert.equal(parseVerdict('{"analysis": "same value", "correctness": "correct"}'), true);
    assert.equal(parseVerdict('Sure.\n```json\n{"analysis": "no", "correctness": "Incorrect"}\n```'), false);
    assert.equal(parseVerdict('{"correctness": true}'), true);
    assert.equal(parseVerdict('Yes, they agree.'), true);
    assert.equal(parseVerdict('incorrect: 3 is not 4'), false);
    assert.equal(parseVerdict('{"correctness": "maybe"}'), null);
    assert.equal(parseVerdict('I think so'), null);
    assert.equal(parseVerdict(''), null);
  });
});

describe('endpointJudge', () => {
  it('asks the endpoint with the question, reference and answer, and returns its verdict', async () => {
    // The server plays a judge: correct when the student answer equals the reference.
    const { url, server, requests } = await chatServer((body, _n, res) => {
      const prompt = body.messages[0].content;
      const reference = prompt.match(/Reference answer: (.*)/)![1];
      const answer = prompt.match(/Student answer: (.*)/)![1];
      reply(res, JSON.stringify({ analysis: 'compared', correctness: reference === answer ? 'correct' : 'incorrect' }));
    });
    servers.push(server);
    const judge = endpointJudge(url, { ...fast, model: 'my-judge' });
    assert.equal(await judge.judge({ question: 'What is 2 + 2?', reference: '4', answer: '4' }), true);
    assert.equal(await judge.judge({ question: 'What is 2 + 2?', reference: '4', answer: 'five' }), false);
    assert.equal(requests.length, 2);
    assert.equal((requests[0] as { model: string }).model, 'my-judge');
    assert.equal((requests[0] as { messages: Array<{ content: string }> }).messages[0].content, judgePrompt({ question: 'What is 2 + 2?', reference: '4', answer: '4' }));
  });

  it('retries a busy server (HTTP 503, then a reply without a verdict) and takes the first real verdict', async () => {
    const { url, server, requests } = await chatServer((_body, n, res) => {
      if (n === 1) {
        res.writeHead(503);
        res.end('overloaded');
      } else if (n === 2) {
        reply(res, 'hmm, let me think');
      } else {
        reply(res, '{"correctness": "correct"}');
      }
    });
    servers.push(server);
    assert.equal(await endpointJudge(url, fast).judge({ question: 'q', reference: '1', answer: '1' }), true);
    assert.equal(requests.length, 3);
  });

  it('gives up on garbage after its attempts, naming the endpoint and what it answered', async () => {
    const { url, server, requests } = await chatServer((_body, _n, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>not an API</html>');
    });
    servers.push(server);
    await assert.rejects(endpointJudge(url, fast).judge({ question: 'q', reference: '1', answer: '1' }),
      (e: Error) => e instanceof UserError && e.message.includes(`${url}/chat/completions`) && /gave up after 3 attempts.*not JSON.*not an API/.test(e.message));
    assert.equal(requests.length, 3);
  });

  it('fails at once on a client error (HTTP 401), without retrying', async () => {
    const { url, server, requests } = await chatServer((_body, _n, res) => {
      res.writeHead(401);
      res.end('{"error": "bad key"}');
    });
    servers.push(server);
    await assert.rejects(endpointJudge(url, fast).judge({ question: 'q', reference: '1', answer: '1' }), /HTTP 401: .*bad key/);
    assert.equal(requests.length, 1);
  });

  it('says it cannot connect when the server is down', async () => {
    const { url, server } = await chatServer(() => {});
    await new Promise((resolve) => server.close(resolve));
    await assert.rejects(endpointJudge(url, fast).judge({ question: 'q', reference: '1', answer: '1' }), /gave up after 3 attempts; the last one got cannot connect \(ECONNREFUSED\)/);
  });

  it('refuses what is not an http(s) URL', () => {
    assert.throws(() => endpointJudge('ftp://example.org/v1'), /only http and https/);
  });
});
