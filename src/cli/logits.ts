// `r1 logits`: the logits a model gives a token sequence, written as float32 safetensors (tensor "logits",
// [1, T, V], beside "input_ids" int32 [1, T]), so that r1ts can be compared with another framework on the same
// model folder (e.g. transformers' model(input_ids).logits).
import { Command } from 'commander';
import { writeSafetensors, type NamedArray } from '../io/safetensors.ts';
import { loadModel } from '../models/pretrained.ts';
import { noGrad, tensor, type Device } from '../tensor/index.ts';
import { UserError } from '../util/errors.ts';
import { deviceOptions, selectDevice } from './device.ts';

export interface LogitsCommandOptions {
  model: string;
  ids?: string;
  text?: string;
  out: string;
  /** Where the model computes (default cpu). */
  device?: Device;
}

/** "1,2,3" (commas and/or spaces) -> ids, each checked to be an integer in [0, vocab). */
export function parseTokenIds(text: string, vocab: number): number[] {
  const parts = text.split(/[\s,]+/).filter((p) => p.length > 0);
  if (parts.length === 0) throw new UserError('--ids: no token ids given (expected e.g. --ids 1,2,3)');
  return parts.map((part, i) => {
    if (!/^\d+$/.test(part)) throw new UserError(`--ids: entry ${i} ${JSON.stringify(part)} is not a token id (expected non-negative integers separated by commas)`);
    const id = Number(part);
    if (id >= vocab) throw new UserError(`--ids: entry ${i} is ${part}, outside the model's vocabulary [0, ${vocab})`);
    return id;
  });
}

export async function logitsCommand(opts: LogitsCommandOptions): Promise<{ ids: number[]; shape: number[] }> {
  if ((opts.ids === undefined) === (opts.text === undefined)) throw new UserError('give exactly one of --ids and --text');
  selectDevice(opts.device ?? 'cpu');
  const { model, tokenizer } = await loadModel(opts.model);
  const vocab = model.config.vocabSize;
  const ids = opts.ids !== undefined ? parseTokenIds(opts.ids, vocab) : tokenizer.encode(opts.text!);
  if (ids.length === 0) throw new UserError('--text: the text encodes to no tokens');
  if (ids.length > model.config.maxPositionEmbeddings) {
    throw new UserError(`${ids.length} tokens, more than the model's maxPositionEmbeddings (${model.config.maxPositionEmbeddings})`);
  }
  const logits = noGrad(() => model.forward(tensor(ids, [1, ids.length], 'i32')));
  const values = Float32Array.from(logits.toArray());
  const shape = [1, ids.length, vocab];
  const arrays = new Map<string, NamedArray>([
    ['logits', { dtype: 'F32', shape, data: new Uint8Array(values.buffer) }],
    ['input_ids', { dtype: 'I32', shape: [1, ids.length], data: new Uint8Array(Int32Array.from(ids).buffer) }],
  ]);
  await writeSafetensors(opts.out, arrays, { format: 'pt' });
  return { ids, shape };
}

export function register(program: Command): void {
  const command = program
    .command('logits')
    .description('write the logits [1, T, V] of a token sequence as float32 safetensors (tensor "logits"), to compare with another framework')
    .requiredOption('--model <dir>', 'model folder: config.json, *.safetensors, tokenizer.json')
    .option('--ids <ids>', 'token ids, e.g. 1,2,3')
    .option('--text <text>', 'text to tokenize first (adding what the tokenizer\'s post-processor adds)')
    .requiredOption('--out <file>', 'output .safetensors file');
  deviceOptions(command, { precision: false })
    .action(async (opts: LogitsCommandOptions) => {
      const { ids, shape } = await logitsCommand(opts);
      console.log(`wrote ${opts.out}: logits [${shape.join(', ')}] float32 for ${ids.length} tokens`);
    });
}
