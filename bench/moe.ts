// DeepSeekMoE learning benchmark (issue 5): on one fixed synthetic corpus, four small DeepSeek-V3-shaped models
// train on the same batches (same token count, same order):
//   moe            MLA + DeepSeekMoE (first layer dense), auxiliary-loss-free bias balancing on (gamma 0.001)
//   moe-gamma0.01  the same with gamma 0.01 (V3's gamma/lr ratio at our 14x larger learning rate)
//   moe-frozen     the same model and seed with gamma 0 (no balancing), for contrast
//   dense          the same MLA model with a dense SwiGLU FFN in every layer, as wide as the MoE's ACTIVE FFN
//                  (shared + K routed experts + the router), so both spend the same parameters per token
// No auxiliary loss (alpha 0) and no MTP, so the loss is next-token cross-entropy alone. Prints a table and
// writes bench/results/moe.json (loss and load curves) and bench/results/moe.svg (plots).
//   node --import tsx bench/moe.ts                 (STEPS=300, 16 x 128 tokens a step)
//   STEPS=50 node --import tsx bench/moe.ts        (a quick look)
//   node --import tsx bench/moe.ts moe dense       (only the named runs)
//   FROM=bench/results/moe.json node --import tsx bench/moe.ts   (summary and plot of stored curves again)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './machine.ts';
import { DeepSeekModel, deepseekConfig, validateDeepSeekConfig, type DeepSeekConfig } from '../src/models/deepseek.ts';
import { cpuBackend } from '../src/tensor/index.ts';
import { Tokenizer } from '../src/tokenizer/tokenizer.ts';
import { trainBpe } from '../src/tokenizer/train.ts';
import { END_OF_TEXT } from '../src/tokenizer/chat.ts';
import { syntheticCorpus } from '../src/train/corpus.ts';
import { RandomWindowBatcher, splitTokens, tokenizeDocuments } from '../src/train/data.ts';
import { AdamW, clipGradNorm } from '../src/train/optimizer.ts';
import { evaluate } from '../src/train/pretrain.ts';
import { learningRate } from '../src/train/schedule.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const STEPS = Number(process.env.STEPS ?? 300);
const BATCH = 16;
const SEQ = 128;
const VOCAB = 1024;
const DOCUMENTS = 8000;
const SEED = 1;
const LR = 3e-3;
const EVAL_EVERY = Math.max(1, Math.round(STEPS / 10));

// MoE shape: 16 routed experts of width 64, 2 per token, 1 shared; hidden 128, 4 layers, the first dense.
const moeShape: Partial<DeepSeekConfig> = {
  numLayers: 4, hiddenSize: 128, numRoutedExperts: 16, numExpertsPerToken: 2, numSharedExperts: 1, moeIntermediateSize: 64,
  firstKDenseReplace: 1, numGroups: 1, topkGroup: 1, routedScalingFactor: 2.5, seqBalanceWeight: 0, mtpDepth: 0,
};
// A dense FFN with the MoE layer's active parameters: 3 C (n_shared + K) I_moe for the experts plus E C for the
// router, i.e. width (n_shared + K) I_moe + E / 3.
const activeWidth = (1 + 2) * 64 + Math.round(16 / 3);

interface Curve {
  name: string;
  parameters: number;
  activeParameters: number;
  steps: number[];
  loss: number[];
  validationSteps: number[];
  validationLoss: number[];
  /** Per step, max/mean expert load of each MoE layer. */
  maxLoadRatio: number[][];
  seconds: number;
}


/** Parameters a token passes through: all, less the routed experts it does not use. */
function activeParameters(model: DeepSeekModel): number {
  const c = model.config;
  const perExpert = 3 * c.hiddenSize * c.moeIntermediateSize;
  const moeLayers = model.layers.filter((_, i) => i >= c.firstKDenseReplace).length;
  return model.parameterCount() - moeLayers * (c.numRoutedExperts - c.numExpertsPerToken) * perExpert;
}

function train(name: string, config: DeepSeekConfig, train: Int32Array, validation: Int32Array): Curve {
  validateDeepSeekConfig(config, name);
  const model = new DeepSeekModel(config, SEED);
  const optimizer = new AdamW(model.namedParameters(), { weightDecay: 0.1 });
  const params = model.parameters();
  const batcher = new RandomWindowBatcher(train, BATCH, SEQ, SEED);
  const schedule = { shape: 'cosine' as const, peakLr: LR, warmupSteps: Math.round(STEPS / 10), totalSteps: STEPS, minLrRatio: 0.1 };
  const curve: Curve = { name, parameters: model.parameterCount(), activeParameters: activeParameters(model), steps: [], loss: [], validationSteps: [], validationLoss: [], maxLoadRatio: [], seconds: 0 };
  const start = performance.now();
  for (let step = 1; step <= STEPS; step++) {
    const { inputs, targets } = batcher.next();
    const loss = model.loss(inputs, targets);
    curve.steps.push(step);
    curve.loss.push(loss.item());
    loss.backward();
    clipGradNorm(params, 1);
    optimizer.update(learningRate(step - 1, schedule));
    const loads = model.afterStep();
    curve.maxLoadRatio.push(loads.map((s) => s.maxLoadRatio));
    model.zeroGrad();
    if (step % EVAL_EVERY === 0 || step === STEPS) {
      curve.validationSteps.push(step);
      curve.validationLoss.push(evaluate(model, validation, BATCH, SEQ, 8));
      const ratios = loads.map((s) => s.maxLoadRatio.toFixed(2)).join(' ');
      process.stderr.write(`${name} step ${step}/${STEPS} loss ${curve.loss.at(-1)!.toFixed(3)} val ${curve.validationLoss.at(-1)!.toFixed(3)}${ratios ? ` max/mean load ${ratios}` : ''} ${((performance.now() - start) / 1000).toFixed(0)}s\n`);
    }
  }
  curve.seconds = (performance.now() - start) / 1000;
  return curve;
}

// ---------------------------------------------------------------------------------------------------------
// Plot: training loss (smoothed) and validation loss of every run; max/mean load of the MoE runs.

function svgPlot(curves: Curve[], steps: number): string {
  const W = 900;
  const H = 300;
  const pad = { l: 60, r: 210, t: 30, b: 40 };
  const colours: Record<string, string> = { moe: '#1f77b4', 'moe-gamma0.01': '#9467bd', 'moe-frozen': '#ff7f0e', dense: '#2ca02c' };
  const smooth = (ys: number[], k = 10) => ys.map((_, i) => {
    const window = ys.slice(Math.max(0, i - k + 1), i + 1);
    return window.reduce((a, b) => a + b, 0) / window.length;
  });
  // The y range covers the points from step `rangeFrom` on; earlier ones (the first, steep losses) are clipped.
  const panel = (top: number, title: string, series: Array<{ name: string; xs: number[]; ys: number[]; dashed?: boolean }>, yLabel: string, rangeFrom: number, refLine?: number) => {
    const all = series.flatMap((s) => s.ys.filter((_, j) => s.xs[j] >= rangeFrom));
    let lo = Math.min(...all, refLine ?? Infinity);
    let hi = Math.max(...all, refLine ?? -Infinity);
    const span = hi - lo || 1;
    lo -= span * 0.05;
    hi += span * 0.05;
    const x = (v: number) => pad.l + ((v - 1) / Math.max(1, steps - 1)) * (W - pad.l - pad.r);
    const y = (v: number) => top + pad.t + (1 - (Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * (H - pad.t - pad.b);
    const parts = [`<text x="${pad.l}" y="${top + 18}" font-size="14" font-weight="bold">${title}</text>`,
      `<rect x="${pad.l}" y="${top + pad.t}" width="${W - pad.l - pad.r}" height="${H - pad.t - pad.b}" fill="none" stroke="#999"/>`,
      `<text x="${pad.l - 8}" y="${y(hi - (hi - lo) * 0.05) + 4}" font-size="11" text-anchor="end">${(hi - (hi - lo) * 0.05).toFixed(2)}</text>`,
      `<text x="${pad.l - 8}" y="${y(lo + (hi - lo) * 0.05) + 4}" font-size="11" text-anchor="end">${(lo + (hi - lo) * 0.05).toFixed(2)}</text>`,
      `<text x="${pad.l}" y="${top + H - 12}" font-size="11">step 1</text>`,
      `<text x="${W - pad.r}" y="${top + H - 12}" font-size="11" text-anchor="end">step ${steps}</text>`,
      `<text x="${(pad.l + W - pad.r) / 2}" y="${top + H - 12}" font-size="11" text-anchor="middle">${yLabel}</text>`];
    if (refLine !== undefined) parts.push(`<line x1="${pad.l}" x2="${W - pad.r}" y1="${y(refLine)}" y2="${y(refLine)}" stroke="#d62728" stroke-dasharray="2 3"/><text x="${W - pad.r + 4}" y="${y(refLine) + 4}" font-size="11" fill="#d62728">${refLine}</text>`);
    series.forEach((s, i) => {
      const colour = colours[s.name.split(' ')[0]] ?? '#333';
      const points = s.xs.map((v, j) => `${x(v).toFixed(1)},${y(s.ys[j]).toFixed(1)}`).join(' ');
      parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.5"${s.dashed ? ' stroke-dasharray="5 3"' : ''} points="${points}"/>`);
      parts.push(`<text x="${W - pad.r + 8}" y="${top + pad.t + 14 + i * 16}" font-size="12" fill="${colour}">${s.name}</text>`);
    });
    return parts.join('\n');
  };
  const lossSeries = curves.flatMap((c) => [
    { name: `${c.name} train`, xs: c.steps, ys: smooth(c.loss) },
    { name: `${c.name} val`, xs: c.validationSteps, ys: c.validationLoss, dashed: true },
  ]);
  const loadSeries = curves.filter((c) => c.maxLoadRatio[0]?.length).map((c) => ({
    name: `${c.name} (worst layer)`, xs: c.steps, ys: smooth(c.maxLoadRatio.map((r) => Math.max(...r)), 5),
  }));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${panel(0, `Loss, y range from step ${Math.round(steps / 3)} (train: 10-step mean; val: dashed)`, lossSeries, 'cross-entropy (nats)', Math.round(steps / 3))}
${panel(H, 'Max / mean expert load, worst MoE layer (5-step mean)', loadSeries, 'max / mean load', 1, 1.3)}
</svg>
`;
}

// ---------------------------------------------------------------------------------------------------------

interface Summary {
  name: string;
  parameters: number;
  activeParameters: number;
  /** Mean training loss of the last 10% of steps. */
  finalTrainLoss: number;
  finalValidationLoss: number;
  /** Worst MoE layer's max/mean load per step: over the steps after the warmup (the first 10%) and the last 10%. */
  load: { meanAfterWarmup: number; maxAfterWarmup: number; shareAtMost1_3AfterWarmup: number; meanLast: number } | null;
  seconds: number;
}

function summarize(curves: Curve[], steps: number): Summary[] {
  const tenth = Math.max(1, Math.round(steps / 10));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return curves.map((c) => {
    const worst = c.maxLoadRatio.map((r) => Math.max(...r));
    const after = worst.slice(tenth);
    return {
      name: c.name, parameters: c.parameters, activeParameters: c.activeParameters,
      finalTrainLoss: mean(c.loss.slice(-tenth)), finalValidationLoss: c.validationLoss.at(-1)!,
      load: c.maxLoadRatio[0]?.length ? {
        meanAfterWarmup: mean(after), maxAfterWarmup: Math.max(...after),
        shareAtMost1_3AfterWarmup: after.filter((r) => r <= 1.3).length / after.length, meanLast: mean(worst.slice(-tenth)),
      } : null,
      seconds: c.seconds,
    };
  });
}

// FROM=bench/results/moe.json summarises and plots stored curves again without training.
let results: { steps: number; curves: Curve[] } & Record<string, unknown>;
if (process.env.FROM) {
  results = JSON.parse(readFileSync(process.env.FROM, 'utf8'));
} else {
  const docs = syntheticCorpus(SEED, DOCUMENTS);
  const trained = trainBpe(docs, { vocabSize: VOCAB });
  const tokenizer = Tokenizer.fromJson(trained.tokenizerJson, trained.tokenizerConfig);
  const endOfText = tokenizer.tokenToId(END_OF_TEXT)!;
  const tokens = tokenizeDocuments(docs, (text) => tokenizer.encode(text, { addSpecialTokens: false }), endOfText);
  const { train: trainTokens, validation } = splitTokens(tokens, 0.02, SEQ, 'the synthetic corpus');
  process.stderr.write(`corpus: ${docs.length} documents, ${tokens.length} tokens, vocabulary ${tokenizer.vocabSize}; ${STEPS} steps of ${BATCH} x ${SEQ} tokens\n`);

  const moeConfig = deepseekConfig(tokenizer.vocabSize, { ...moeShape, intermediateSize: activeWidth, biasUpdateSpeed: 0.001 });
  const runs: Array<[string, DeepSeekConfig]> = [
    ['moe', moeConfig],
    // gamma scaled with the learning rate: V3 paired gamma 0.001 with a peak lr of 2.2e-4; ours is 3e-3
    ['moe-gamma0.01', { ...moeConfig, biasUpdateSpeed: 0.01 }],
    ['moe-frozen', { ...moeConfig, biasUpdateSpeed: 0 }],
    ['dense', { ...moeConfig, firstKDenseReplace: moeConfig.numLayers }],
  ];
  const only = process.argv.slice(2);
  const curves = runs.filter(([name]) => only.length === 0 || only.includes(name)).map(([name, config]) => train(name, config, trainTokens, validation));
  results = {
    date: new Date().toISOString(), machine: machine(), backend: cpuBackend().name,
    corpus: { documents: DOCUMENTS, tokens: tokens.length, vocab: tokenizer.vocabSize }, steps: STEPS, batch: BATCH, seqLen: SEQ, lr: LR,
    config: moeConfig, denseIntermediateSize: activeWidth, curves,
  };
}

const summary = summarize(results.curves, results.steps);
console.log('run             params   active  train loss  val loss  worst layer max/mean load after warmup: mean / max / share <= 1.3; last 10%  seconds');
for (const s of summary) {
  const load = s.load ? `${s.load.meanAfterWarmup.toFixed(2)} / ${s.load.maxAfterWarmup.toFixed(2)} / ${(100 * s.load.shareAtMost1_3AfterWarmup).toFixed(0)}%; ${s.load.meanLast.toFixed(2)}` : '-';
  console.log(`${s.name.padEnd(14)} ${String(s.parameters).padStart(8)} ${String(s.activeParameters).padStart(8)}  ${s.finalTrainLoss.toFixed(4).padStart(10)}  ${s.finalValidationLoss.toFixed(4).padStart(8)}  ${load.padEnd(78)}  ${s.seconds.toFixed(0).padStart(7)}`);
}

const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
if (!process.env.FROM) writeFileSync(join(outDir, 'moe.json'), `${JSON.stringify({ ...results, summary }, null, 1)}\n`);
writeFileSync(join(outDir, 'moe.svg'), svgPlot(results.curves, results.steps));
console.log(`wrote ${process.env.FROM ? '' : `${join('bench', 'results', 'moe.json')} and `}${join('bench', 'results', 'moe.svg')}`);
