// SFT throughput and learning on generated reasoning conversations ("What is a + b?" -> "<think>a + b = c</think>
// The answer is c."), for a dense (5M) and a DeepSeek-V3-mini model, on the CPU or CUDA: one `sft()` run each of
// 2 epochs, with and without packing. Prints a table (first and last update's loss, validation loss, median
// tokens/s, wall time) and writes bench/results/sft.json. The same seeds give the same data and initial weights
// on every device, so the first update's loss of a CPU and a CUDA run must agree (the JSON keeps it to 6 digits).
//   node --import tsx bench/sft.ts                       (cpu; both families)
//   DEVICE=cuda node --import tsx bench/sft.ts dense     (only these families)
//   CONVERSATIONS=2048 node --import tsx bench/sft.ts
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './machine.ts';
import { parameterArrays } from '../src/io/checkpoint.ts';
import { saveHfModel } from '../src/io/hf.ts';
import { DeepSeekModel, deepseekConfig } from '../src/models/deepseek.ts';
import { DenseModel, denseConfig } from '../src/models/dense.ts';
import { Rng, useDevice, type Device } from '../src/tensor/index.ts';
import { trainBpe } from '../src/tokenizer/train.ts';
import { defaultSftConfig, sft } from '../src/train/sft.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const device = (process.env.DEVICE ?? 'cpu') as Device;
const conversations = Number(process.env.CONVERSATIONS ?? 512);
const families = ['dense', 'deepseek'].filter((f) => process.argv.length <= 2 || process.argv.slice(2).includes(f)) as Array<'dense' | 'deepseek'>;

const rng = new Rng(7);
const lines = Array.from({ length: conversations }, () => {
  const a = rng.int(100);
  const b = rng.int(100);
  return { messages: [{ role: 'user', content: `What is ${a} + ${b}?` }, { role: 'assistant', content: `<think>${a} + ${b} = ${a + b}</think> The answer is ${a + b}.` }] };
});
const dir = mkdtempSync(join(tmpdir(), 'r1-bench-sft-'));
const data = join(dir, 'data.jsonl');
writeFileSync(data, lines.map((l) => JSON.stringify(l)).join('\n'));
const bpe = trainBpe(lines.flatMap((l) => l.messages.map((m) => m.content)), { vocabSize: 512 });

interface Row {
  family: string;
  packing: boolean;
  parameters: number;
  steps: number;
  firstLoss: number;
  lastLoss: number;
  validationLoss: number | null;
  medianTokensPerSecond: number;
  seconds: number;
}

useDevice('cpu');
const rows: Row[] = [];
for (const family of families) {
  const vocab = 512;
  const model = family === 'dense' ? new DenseModel(denseConfig('5m', vocab), 0) : new DeepSeekModel(deepseekConfig(vocab), 0);
  const base = join(dir, `${family}-base`);
  await saveHfModel(base, { config: model.config, tensors: parameterArrays(model.namedParameters()) }, { tokenizerJson: bpe.tokenizerJson, tokenizerConfig: bpe.tokenizerConfig });
  for (const packing of [false, true]) {
    const start = performance.now();
    const result = await sft({
      ...defaultSftConfig, model: base, data, out: join(dir, `${family}-${packing ? 'packed' : 'rows'}`), epochs: 2, batchSize: 16, microBatchSize: 16,
      maxLength: 128, packing, lr: 1e-3, evalEvery: 1000, checkpointEvery: 1000, device,
    }, { log: () => {}, progress: false });
    const speeds = result.records.map((r) => r.tokensPerSecond).sort((x, y) => x - y);
    rows.push({
      family, packing, parameters: model.parameterCount(), steps: result.steps, firstLoss: Number(result.records[0].loss.toFixed(6)),
      lastLoss: result.records.at(-1)!.loss, validationLoss: result.validationLoss, medianTokensPerSecond: speeds[Math.floor(speeds.length / 2)],
      seconds: (performance.now() - start) / 1000,
    });
    const r = rows.at(-1)!;
    console.log(`${family.padEnd(8)} ${packing ? 'packed' : 'rows  '} ${(r.parameters / 1e6).toFixed(2)}M  ${r.steps} steps  loss ${r.firstLoss.toFixed(4)} -> ${r.lastLoss.toFixed(4)}  val ${r.validationLoss?.toFixed(4) ?? '-'}  ${Math.round(r.medianTokensPerSecond)} tok/s  ${r.seconds.toFixed(1)} s`);
  }
}
const out = { date: new Date().toISOString(), machine: machine(), device, conversations, rows };
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', `sft-${device}.json`), `${JSON.stringify(out, null, 2)}\n`);
console.log(`device ${device}, ${conversations} conversations; wrote bench/results/sft-${device}.json`);
