// The training dashboard: a local web page over a folder of runs (every folder below it with a metrics.jsonl:
// pretrain, zero, rl, sft, pipeline stages), with live curves of every metric the runs record, runs side by
// side, the sampled completions of each step with their rewards, and a chat box that talks to a model through
// the same OpenAI routes and engine as `r1 serve`.
//
// Live updates: a RunsWatcher polls each metrics.jsonl's size (every 500 ms; fs.watch misses appends on some
// filesystems and fires twice on others) and reads only the bytes appended since, keeping a partial last line
// for the next read; a file that shrank was rewritten (a resumed run cut its records back) and is read again.
// Pages subscribe to GET /api/events (server-sent events): a snapshot of every run on connect, then the new
// records as they are read, so a page never misses or repeats a record. The page itself (dashboard/) is plain
// HTML and JavaScript with uPlot served from node_modules: no build step, and nothing loaded from the network.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHECKPOINTS_DIR, FINAL_DIR, METRICS_FILE, readJsonl, RUN_FILE, SAMPLES_FILE } from '../io/checkpoint.ts';
import { UserError } from '../util/errors.ts';
import { EventStream, HttpError, listen, sendJson, type Route, type RunningServer } from './http.ts';
import { loadServedModel, openAiRoutes, type ServedModel } from './openai.ts';

export interface RunInfo {
  /** The run's folder relative to the dashboard's folder ('.' for the folder itself). */
  name: string;
  /** run.json's kind (pretrain, grpo, ...), or null for a run that has none. */
  kind: string | null;
  /** run.json's config, or null. */
  config: Record<string, unknown> | null;
  records: Record<string, unknown>[];
}

type WatchEvent = { type: 'run'; run: RunInfo } | { type: 'records'; run: string; records: Record<string, unknown>[] } | { type: 'reset'; run: RunInfo };

interface WatchedRun {
  info: RunInfo;
  dir: string;
  /** Bytes of metrics.jsonl read so far, and the unterminated line after them. */
  offset: number;
  partial: string;
}

/** Folders below `root` (itself included, 3 levels at most) that hold a metrics.jsonl. */
async function findRunDirs(root: string, depth = 3): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string, level: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    if (entries.some((e) => e.isFile() && e.name === METRICS_FILE)) found.push(dir);
    if (level === depth) return;
    // Checkpoint and model folders never hold runs: skip them instead of walking their files.
    await Promise.all(entries.filter((e) => e.isDirectory() && ![CHECKPOINTS_DIR, FINAL_DIR, 'node_modules'].includes(e.name) && !e.name.startsWith('.')).map((e) => visit(join(dir, e.name), level + 1)));
  };
  await visit(root, 0);
  return found.sort();
}

/** Reads the runs under a folder and follows their metrics.jsonl as they grow. */
export class RunsWatcher {
  private readonly runs = new Map<string, WatchedRun>();
  private readonly listeners = new Set<(event: WatchEvent) => void>();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;

  constructor(readonly root: string, private readonly pollMs = 500) {}

  /** Reads every run once, then polls until stop(). */
  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => {
      this.polling ??= this.poll().finally(() => (this.polling = null));
    }, this.pollMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.polling;
  }

  list(): RunInfo[] {
    return [...this.runs.values()].map((run) => run.info);
  }

  /** The run folder of `name`, refusing names that leave the dashboard's folder. */
  runDir(name: string): string {
    const run = this.runs.get(name);
    if (!run) throw new HttpError(404, `no run ${JSON.stringify(name)} under ${this.root}`, 'invalid_request_error', 'not_found', 'run');
    return run.dir;
  }

  subscribe(listener: (event: WatchEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** One pass: new runs, and new records of known ones. */
  async poll(): Promise<void> {
    for (const dir of await findRunDirs(this.root)) {
      const name = relative(this.root, dir) || '.';
      const known = this.runs.get(name);
      if (!known) {
        const run: WatchedRun = { info: { name, ...await readRunFile(dir), records: [] }, dir, offset: 0, partial: '' };
        await this.readNew(run);
        this.runs.set(name, run);
        this.emit({ type: 'run', run: run.info });
        continue;
      }
      const size = (await stat(join(dir, METRICS_FILE)).catch(() => null))?.size ?? 0;
      if (size < known.offset) {
        // Rewritten (a resumed run drops the records after its checkpoint): read it whole again.
        Object.assign(known, { offset: 0, partial: '' });
        known.info = { ...known.info, ...await readRunFile(dir), records: [] };
        await this.readNew(known);
        this.emit({ type: 'reset', run: known.info });
      } else if (size > known.offset) {
        const records = await this.readNew(known);
        if (records.length > 0) this.emit({ type: 'records', run: name, records });
      }
    }
  }

  /** Reads metrics.jsonl from the run's offset; complete lines become records (a bad one is skipped). */
  private async readNew(run: WatchedRun): Promise<Record<string, unknown>[]> {
    const handle = await open(join(run.dir, METRICS_FILE), 'r').catch(() => null);
    if (!handle) return [];
    try {
      const { size } = await handle.stat();
      const bytes = Buffer.alloc(size - run.offset);
      const { bytesRead } = await handle.read(bytes, 0, bytes.byteLength, run.offset);
      run.offset += bytesRead;
      const lines = (run.partial + bytes.subarray(0, bytesRead).toString('utf8')).split('\n');
      run.partial = lines.pop()!;
      const records = lines.flatMap((line) => {
        try {
          const record = JSON.parse(line) as unknown;
          return typeof record === 'object' && record !== null && !Array.isArray(record) ? [record as Record<string, unknown>] : [];
        } catch {
          return [];
        }
      });
      run.info.records.push(...records);
      return records;
    } finally {
      await handle.close();
    }
  }

  private emit(event: WatchEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}

async function readRunFile(dir: string): Promise<{ kind: string | null; config: Record<string, unknown> | null }> {
  try {
    const run = JSON.parse(await readFile(join(dir, RUN_FILE), 'utf8')) as { kind?: unknown; config?: unknown };
    return { kind: typeof run.kind === 'string' ? run.kind : null, config: typeof run.config === 'object' && run.config !== null ? run.config as Record<string, unknown> : null };
  } catch {
    return { kind: null, config: null };
  }
}

// ---------------------------------------------------------------------------------------------------------
// The server

export interface DashboardConfig {
  /** The folder of runs. */
  dir: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** A model folder for the chat box; null: no chat box. */
  model: string | null;
  pollMs: number;
}

export const defaultDashboardConfig: Omit<DashboardConfig, 'dir'> = { host: '127.0.0.1', port: 8001, model: null, pollMs: 500 };

// From src/serve/ and from dist/serve/ alike: the page ships as source.
const PAGE_DIR = fileURLToPath(new URL('../../src/serve/dashboard/', import.meta.url));
const requireFromHere = createRequire(import.meta.url);
const STATIC_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: join(PAGE_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/dashboard.js': { file: join(PAGE_DIR, 'dashboard.js'), type: 'text/javascript; charset=utf-8' },
  '/dashboard.css': { file: join(PAGE_DIR, 'dashboard.css'), type: 'text/css; charset=utf-8' },
  '/uplot.js': { file: requireFromHere.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/uplot.css': { file: requireFromHere.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

export interface RunningDashboard extends RunningServer {
  watcher: RunsWatcher;
  served: ServedModel | null;
}

/** Serves the dashboard over config.dir until close(); with config.model, the chat box and /v1 talk to it. */
export async function serveDashboard(config: DashboardConfig): Promise<RunningDashboard> {
  if (!existsSync(config.dir)) throw new UserError(`${config.dir}: no such folder (the runs folder to show)`);
  const watcher = new RunsWatcher(resolve(config.dir), config.pollMs);
  await watcher.start();
  const served = config.model === null ? null : await loadServedModel(config.model);
  const routes: Route[] = [
    ...Object.entries(STATIC_FILES).map(([path, { file, type }]): Route => ({
      method: 'GET', path, handler: async (_request, response) => sendFile(response, file, type),
    })),
    { method: 'GET', path: '/api/info', handler: (_request, response) => sendJson(response, 200, { dir: resolve(config.dir), model: served?.name ?? null }) },
    { method: 'GET', path: '/api/runs', handler: (_request, response) => sendJson(response, 200, watcher.list()) },
    {
      method: 'GET', path: '/api/samples', handler: async (_request, response, _match, url) => {
        const dir = watcher.runDir(url.searchParams.get('run') ?? '');
        const file = join(dir, SAMPLES_FILE);
        const lines = existsSync(file) ? await readJsonl<{ step: number; samples: unknown[] }>(file, () => undefined) : [];
        // Steps with samples, and those of the one asked for (the last line of a step wins: a resumed run redoes steps).
        const steps = [...new Set(lines.map((l) => l.step))].sort((a, b) => a - b);
        const asked = Number(url.searchParams.get('step') ?? steps.at(-1));
        sendJson(response, 200, { steps, step: asked, samples: lines.filter((l) => l.step === asked).at(-1)?.samples ?? [] });
      },
    },
    {
      method: 'GET', path: '/api/events', handler: (request, response) => {
        const stream = new EventStream(response);
        stream.send({ runs: watcher.list() }, 'snapshot');
        const unsubscribe = watcher.subscribe((event) => stream.send(event, event.type));
        const keepAlive = setInterval(() => stream.ping(), 15_000);
        request.socket.setTimeout(0);
        response.on('close', () => {
          unsubscribe();
          clearInterval(keepAlive);
        });
      },
    },
    ...(served ? openAiRoutes(served) : []),
  ];
  const server = await listen(routes, { host: config.host, port: config.port });
  return {
    ...server, watcher, served,
    close: async () => {
      await watcher.stop();
      await server.close();
    },
  };
}

async function sendFile(response: ServerResponse, file: string, type: string): Promise<void> {
  const body = await readFile(file);
  response.writeHead(200, { 'content-type': type, 'content-length': body.byteLength, 'cache-control': 'no-cache' });
  response.end(body);
}
