// `r1 serve`: an OpenAI-compatible HTTP API over a model folder (src/serve/openai.ts), on 127.0.0.1 by default.
import type { Command } from 'commander';
import { z } from 'zod';
import { defaultServeConfig, serveModel, type ServeConfig } from '../serve/openai.ts';
import { UserError } from '../util/errors.ts';
import { DEVICE_HELP, selectDevice } from './device.ts';
import { Settings, type Fields } from './settings.ts';

const positiveInt = z.number().int().positive();

const FIELDS: Fields<ServeConfig> = {
  model: { schema: z.string().min(1), flag: '--model <dir>', help: 'Hugging Face model folder: config.json, *.safetensors, tokenizer.json' },
  servedModelName: { schema: z.string().min(1).nullable(), flag: '--served-model-name <name>', help: 'the id clients send as "model" (default: the folder\'s name)' },
  host: { schema: z.string().min(1), flag: '--host <address>', help: 'address to listen on (0.0.0.0 exposes the server to the network)' },
  port: { schema: z.number().int().min(0).max(65535), flag: '--port <n>', help: 'port (0: any free one)' },
  apiKey: { schema: z.string().min(1).nullable(), flag: '--api-key <key>', help: 'require "Authorization: Bearer <key>" (default: R1_API_KEY, else none)' },
  device: { schema: z.enum(['cpu', 'cuda']), flag: '--device <device>', help: DEVICE_HELP },
  maxBatchSize: { schema: positiveInt, flag: '--max-batch-size <n>', help: 'sequences decoded together (the continuous batch)' },
  maxWaiting: { schema: z.number().int().nonnegative(), flag: '--max-waiting <n>', help: 'requests that may wait beyond a full batch; more answer 429' },
  maxBodyBytes: { schema: positiveInt, flag: '--max-body-bytes <n>', help: 'largest request body; larger ones answer 413' },
};

const settings = new Settings('serve', FIELDS, { model: '', ...defaultServeConfig, apiKey: process.env.R1_API_KEY ?? null });

export function register(program: Command): void {
  const command = program
    .command('serve')
    .summary('serve a model with an OpenAI-compatible API (chat and text completions, streaming)')
    .description(
      'Serves POST /v1/chat/completions (the tokenizer\'s chat template; <think> reasoning returned as reasoning_content), ' +
        'POST /v1/completions, GET /v1/models and GET /health. Concurrent requests share one continuous batch. ' +
        'Any OpenAI client works: base URL http://HOST:PORT/v1.',
    );
  settings.addOptions(command);
  command.action(async (flags: Record<string, unknown>) => {
    const config = settings.fromFlags(flags);
    if (config.model === '') throw new UserError('--model <dir> is required');
    selectDevice(config.device);
    const { url, served, close } = await serveModel(config);
    console.log(`serving ${served.name} (${config.model}) at ${url}/v1${config.apiKey ? ' (API key required)' : ''}; Ctrl-C stops`);
    const stop = () => void close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
