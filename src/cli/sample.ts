// `r1 sample`: completions of one prompt from a model folder, through the batched engine (src/generate).
// A single completion streams to stdout as it is generated; --json prints one JSON object per completion
// (text, token ids, log-probabilities, finish reason) for scripts.
import { Command, InvalidArgumentError, Option } from 'commander';
import { generate, type GenerationResult } from '../generate/engine.ts';
import { loadModel } from '../models/pretrained.ts';
import type { Device } from '../tensor/index.ts';
import { deviceOptions, selectDevice } from './device.ts';

export interface SampleCommandOptions {
  model: string;
  prompt: string;
  chat: boolean;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  stop: string[];
  seed: number;
  num: number;
  json: boolean;
  /** Where the model computes (default cpu). */
  device?: Device;
}

const integerAtLeast = (min: number) => (value: string): number => {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
  return n;
};

const numberIn = (min: number, max: number, minOpen = false) => (value: string): number => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n > max || (minOpen ? n <= min : n < min)) {
    throw new InvalidArgumentError(`expected a number in ${minOpen ? '(' : '['}${min}, ${max}]`);
  }
  return n;
};

export async function sampleCommand(opts: SampleCommandOptions): Promise<GenerationResult[]> {
  selectDevice(opts.device ?? 'cpu');
  const { model, tokenizer, eosTokenIds } = await loadModel(opts.model);
  const prompt = opts.chat
    ? tokenizer.encodeChat([{ role: 'user', content: opts.prompt }], { addGenerationPrompt: true })
    : tokenizer.encode(opts.prompt);
  const stream = opts.num === 1 && !opts.json;
  const started = performance.now();
  const results = generate(model, tokenizer, Array.from({ length: opts.num }, () => ({ prompt })), {
    maxNewTokens: opts.maxTokens,
    temperature: opts.temperature,
    topP: opts.topP,
    topK: opts.topK,
    stop: opts.stop,
    stopTokenIds: eosTokenIds,
    seed: opts.seed,
    onToken: stream ? (event) => process.stdout.write(event.text) : undefined,
  });
  const seconds = (performance.now() - started) / 1000;
  const tokens = results.reduce((n, r) => n + r.tokenIds.length, 0);
  if (opts.json) {
    results.forEach((r, i) => console.log(JSON.stringify({ sample: i, seed: opts.seed + i, ...r })));
  } else if (stream) {
    process.stdout.write('\n');
  } else {
    results.forEach((r, i) => {
      console.log(`--- sample ${i} (seed ${opts.seed + i}, ${r.tokenIds.length} tokens, ${describeFinish(r)}) ---`);
      console.log(r.text);
    });
  }
  const finish = stream ? `, ${describeFinish(results[0])}` : '';
  console.error(`[${prompt.length} prompt tokens, ${tokens} generated in ${seconds.toFixed(2)} s (${(tokens / seconds).toFixed(1)} tokens/s)${finish}]`);
  return results;
}

function describeFinish(r: GenerationResult): string {
  if (r.stopString !== null) return `stopped at ${JSON.stringify(r.stopString)}`;
  if (r.stopTokenId !== null) return `stopped at token ${r.stopTokenId}`;
  return 'length limit';
}

export function register(program: Command): void {
  const command = program
    .command('sample')
    .description('sample completions of a prompt from a Hugging Face model folder')
    .requiredOption('--model <dir>', 'model folder: config.json, *.safetensors, tokenizer.json')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--chat', 'wrap the prompt as a user turn with the tokenizer\'s chat template', false)
    .option('--max-tokens <n>', 'tokens to generate at most', integerAtLeast(0), 128)
    .option('--temperature <t>', 'softmax temperature; 0 = greedy', numberIn(0, Number.MAX_VALUE), 0.8)
    .option('--top-p <p>', 'nucleus sampling mass; 1 = off', numberIn(0, 1, true), 0.95)
    .option('--top-k <k>', 'sample among the k most likely tokens; 0 = off', integerAtLeast(0), 0)
    .option('--stop <strings...>', 'stop at any of these strings (not included in the output)', [])
    .option('--seed <n>', 'seed of the first sample; sample i uses seed + i', integerAtLeast(0), 0)
    .option('--num <n>', 'number of samples', integerAtLeast(1), 1)
    .addOption(new Option('--json', 'print one JSON object per sample (text, tokenIds, logprobs, finishReason)').default(false));
  deviceOptions(command, { precision: false })
    .action(async (opts: SampleCommandOptions) => {
      await sampleCommand(opts);
    });
}
