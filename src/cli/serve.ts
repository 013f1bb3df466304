// `r1 serve`: an OpenAI-compatible HTTP API over a model folder (src/serve/openai.ts), on 127.0.0.1 by default.
import type { Command } from 'commander';
import { z } from 'zod';
import { defaultServeConfig, serveModel, type ServeConfig } from '../serve/openai.ts';
import { UserError } from '../util/errors.ts';
import { nonNegativeInt, positiveInt, Settings, type Fields } from './settings.ts';
import { SHARED_FIELDS } from './shared-fields.ts';

const FIELDS: Fields<ServeConfig> = {
  model: { schema: z.string().min(1), flag: '--model <dir>', help: 'Hugging Face model folder: config.json, *.safetensors, tokenizer.json' },
  servedModelName: { schema: z.string().min(1).nullable(), flag: '--served-model-name <name>', help: 'the id clients send as "model" (default: the folder\'s name)' },
  host: { schema: z.string().min(1), flag: '--host <address>', help: 'address to listen on (0.0.0.0 exposes the server to the network)' },
  port: { schema: z.number().int().min(0).max(65535), flag: '--port <n>', help: 'port (0: any free one)' },
  apiKey: { schema: z.string().min(1).nullable(), flag: '--api-key <key>', help: 'require "Authorization: Bearer <key>" (default: R1_API_KEY, else none)' },
  device: SHARED_FIELDS.device,
  maxBatchSize: { schema: positiveInt, flag: '--max-batch-size <n>', help: 'sequences decoded together (the continuous batch)' },
  maxWaiting: { schema: nonNegativeInt, flag: '--max-waiting <n>', help: 'requests that may wait beyond a full batch; more answer 429' },
  maxBodyBytes: { schema: positiveInt, flag: '--max-body-bytes <n>', help: 'largest request body; larger ones answer 413' },
};

const settings = new Settings('serve', FIELDS, { model: '', ...defaultServeConfig, apiKey: process.env.R1_API_KEY ?? null });

export function register(program: Command): void {
  settings.register(program, {
    summary: 'serve a model with an OpenAI-compatible API (chat and text completions, streaming)',
    description:
      'Serves POST /v1/chat/completions (the tokenizer\'s chat template; <think> reasoning returned as reasoning_content), ' +
        'POST /v1/completions, GET /v1/models and GET /health. Concurrent requests share one continuous batch. ' +
        'Any OpenAI client works: base URL http://HOST:PORT/v1.',
  }, async (config) => {
    if (config.model === '') throw new UserError('--model <dir> is required');
    const { url, served, close } = await serveModel(config);
    console.log(`serving ${served.name} (${config.model}) at ${url}/v1${config.apiKey ? ' (API key required)' : ''}; Ctrl-C stops`);
    const stop = () => void close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
