// The route table under r1 serve and r1 dashboard: unknown paths and methods, a handler that throws, malformed
// HTTP and a port in use get answers (or errors) that say what is wrong, and the server stays up.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HttpError, listen, sendJson, type RunningServer } from '../../src/serve/http.ts';
import { UserError } from '../../src/util/errors.ts';

let server: RunningServer;
before(async () => {
  server = await listen([
    { method: 'GET', path: '/ok', handler: (_request, response) => sendJson(response, 200, { ok: true }) },
    { method: 'GET', path: '/teapot', handler: () => { throw new HttpError(418, 'short and stout'); } },
    { method: 'GET', path: '/bug', handler: () => { throw new TypeError('a bug'); } },
    { method: 'GET', path: '/secret', authenticated: true, handler: (_request, response) => sendJson(response, 200, { secret: 1 }) },
  ], { host: '127.0.0.1', port: 0, apiKey: 'k' });
});
after(() => server.close());

describe('http routes', () => {
  it('answers unknown paths 404, wrong methods 405, thrown errors with their status (500 for bugs), all as error objects', async () => {
    const answer = async (path: string, init?: RequestInit) => {
      const response = await fetch(`${server.url}${path}`, init);
      return { status: response.status, body: await response.json() as { error: { message: string; code: string | null } } };
    };
    assert.equal((await answer('/nowhere')).status, 404);
    const wrongMethod = await answer('/ok', { method: 'POST' });
    assert.equal(wrongMethod.status, 405);
    assert.match(wrongMethod.body.error.message, /use GET/);
    assert.deepEqual([(await answer('/teapot')).status, (await answer('/teapot')).body.error.message], [418, 'short and stout']);
    const consoleError = console.error;
    console.error = () => undefined;
    try {
      const bug = await answer('/bug');
      assert.equal(bug.status, 500);
      assert.match(bug.body.error.message, /a bug/);
    } finally {
      console.error = consoleError;
    }
    assert.equal((await answer('/secret')).status, 401);
    assert.equal((await answer('/secret', { headers: { authorization: 'Bearer k' } })).status, 200);
    assert.equal((await answer('/ok')).status, 200, 'still up');
  });

  it('answers a request that is not HTTP with 400 and stays up', async () => {
    const reply = await new Promise<string>((resolve) => {
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });
    assert.match(reply, /^HTTP\/1\.1 400/);
    assert.equal((await fetch(`${server.url}/ok`)).status, 200);
  });

  it('says so when the port is taken', async () => {
    await assert.rejects(listen([], { host: '127.0.0.1', port: Number(new URL(server.url).port) }), (e: Error) => e instanceof UserError && /in use/.test(e.message));
  });
});
