// The small HTTP layer under the OpenAI-compatible server and the dashboard: a route table over node:http,
// JSON bodies read with a size limit, errors as OpenAI-style objects, and server-sent events.
//
// Why node:http and not a framework (hono was measured to fit, ../shared/DESIGN.md): the two servers have a
// dozen routes between them, all exact paths, and what they need beyond routing (a body limit that stops
// reading at the limit, SSE that notices a client leaving, errors in OpenAI's shape) is a few lines each here,
// so a framework would add a dependency and an adapter without removing code.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UserError } from '../util/errors.ts';

/** An error answered to the client: its status, and the fields of OpenAI's error object. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status === 401 ? 'authentication_error' : status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

export interface Route {
  method: 'GET' | 'POST';
  /** An exact path, or a pattern whose groups the handler reads from `match`. */
  path: string | RegExp;
  /** Routes that need the API key when the server has one. */
  authenticated?: boolean;
  handler: (request: IncomingMessage, response: ServerResponse, match: RegExpMatchArray | null, url: URL) => Promise<void> | void;
}

export interface ListenOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** When set, authenticated routes answer 401 without `Authorization: Bearer <apiKey>`. */
  apiKey?: string | null;
}

export interface RunningServer {
  server: Server;
  /** http://host:port, with the port actually bound. */
  url: string;
  close(): Promise<void>;
}

/** Serves `routes` until close(); a handler that throws answers 500 (or its HttpError) and the server goes on. */
export async function listen(routes: readonly Route[], options: ListenOptions): Promise<RunningServer> {
  const server = createServer((request, response) => {
    void dispatch(routes, options, request, response);
  });
  // Longer than clients keep idle connections (undici: 4 s), so that a client never reuses a connection the
  // server is closing at that moment (node's default of 5 s races with a client polling every 5 s: ECONNRESET).
  server.keepAliveTimeout = 65_000;
  // A request line or headers that do not parse: answer 400 on the socket rather than let node drop it silently.
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(error.code === 'EADDRINUSE' || error.code === 'EACCES'
      ? new UserError(`cannot listen on ${options.host}:${options.port} (${error.code === 'EADDRINUSE' ? 'in use' : 'not allowed'}): choose another port (0: any free one)`)
      : error));
    server.listen(options.port, options.host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${host}:${address.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function dispatch(routes: readonly Route[], options: ListenOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  try {
    const url = new URL(request.url ?? '/', 'http://localhost');
    let allowed: string[] = [];
    for (const route of routes) {
      const match = typeof route.path === 'string' ? (url.pathname === route.path ? null : undefined) : url.pathname.match(route.path) ?? undefined;
      if (match === undefined) continue;
      if (route.method !== request.method) {
        allowed.push(route.method);
        continue;
      }
      allowed = [];
      if (route.authenticated && options.apiKey && request.headers.authorization !== `Bearer ${options.apiKey}`) {
        throw new HttpError(401, request.headers.authorization ? 'Incorrect API key provided.' : 'No API key provided: send "Authorization: Bearer <key>".', 'invalid_request_error', 'invalid_api_key');
      }
      await route.handler(request, response, match, url);
      return;
    }
    if (allowed.length > 0) throw new HttpError(405, `${request.method} is not allowed on ${url.pathname} (use ${allowed.join(' or ')})`, 'invalid_request_error', 'method_not_allowed');
    throw new HttpError(404, `no route ${request.method} ${url.pathname}`, 'invalid_request_error', 'not_found');
  } catch (error) {
    sendError(response, error);
  }
}

/** Answers an error as OpenAI does: {error: {message, type, param, code}}; anything but an HttpError is a 500. */
export function sendError(response: ServerResponse, error: unknown): void {
  const http = error instanceof HttpError ? error : new HttpError(500, `internal error: ${(error as Error)?.message ?? String(error)}`);
  if (!(error instanceof HttpError)) console.error(error);
  if (response.headersSent) {
    // Mid-stream (SSE): the status is gone; the error goes as an event and the stream ends.
    if (!response.writableEnded) response.end(`data: ${JSON.stringify(errorBody(http))}\n\n`);
    return;
  }
  sendJson(response, http.status, errorBody(http));
}

function errorBody(error: HttpError): object {
  return { error: { message: error.message, type: error.type, param: error.param, code: error.code } };
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/**
 * The request's body parsed as JSON. Reading stops at `limitBytes` (413: the rest is not buffered, and the
 * connection is closed after the answer); a body that is not JSON is a 400.
 */
export async function readJson(request: IncomingMessage, response: ServerResponse, limitBytes: number): Promise<unknown> {
  const tooLarge = () => {
    // The rest of the body is not read: the connection closes once the answer is written.
    response.setHeader('connection', 'close');
    return new HttpError(413, `the request body is larger than ${limitBytes} bytes`, 'invalid_request_error', 'request_too_large');
  };
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > limitBytes) throw tooLarge();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `the body is not valid JSON: ${(error as Error).message}`, 'invalid_request_error', 'invalid_json');
  }
}

/** A server-sent event stream: send() writes one `data:` event; closed is true once the client has gone. */
export class EventStream {
  private gone = false;

  constructor(private readonly response: ServerResponse) {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    response.flushHeaders();
    response.on('close', () => {
      if (!response.writableFinished) this.gone = true;
    });
  }

  get closed(): boolean {
    return this.gone || this.response.writableEnded;
  }

  /** One event; a string is sent as is (e.g. "[DONE]"), anything else as JSON. */
  send(data: unknown, event?: string): void {
    if (this.closed) return;
    this.response.write(`${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  }

  /** A comment line: keeps proxies and idle timers from closing a quiet stream. */
  ping(): void {
    if (!this.closed) this.response.write(': ping\n\n');
  }

  end(): void {
    if (!this.closed) this.response.end();
  }
}
