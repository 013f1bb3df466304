// Reports as self-contained HTML pages (no scripts, no network), curves drawn as inline SVG: the before/after
// report of a GRPO run (R1-Zero, or RL on a mix of prompt sources: each evaluated source's table, the training
// curves, sample completions of the model before and after on the same test questions), and the R1 pipeline's
// report (one row per model, like the paper's tables, the effects each stage exists for, the curves of every stage).
import type { EvalQuestion, EvalReport } from '../eval/evaluate.ts';
import type { GrpoStepRecord } from '../rl/trainer.ts';

/** One prompt source's evaluation before and after training. */
export interface SourceEvaluation {
  source: string;
  /** The task's description. */
  task: string;
  before: EvalReport;
  after: EvalReport;
}

export interface ReportInput {
  /** The page's heading (e.g. "R1-Zero on the CPU"). */
  title: string;
  config: object;
  evaluations: readonly SourceEvaluation[];
  records: readonly GrpoStepRecord[];
  seconds: Record<string, number>;
  /** Completions drawn at a few training steps (samples.jsonl's lines: e.g. the first and the last), shown side by side. */
  stepSamples?: readonly StepSamples[];
}

/** A line of samples.jsonl: completions the policy drew at one step. */
export interface StepSamples {
  step: number;
  samples: ReadonlyArray<{ group: number; question: string; completion: string; reward: number; correct: boolean }>;
}

/** The rows of the before/after table: [label, base, trained, format]. */
export function comparisonRows(before: EvalReport, after: EvalReport): Array<[string, number, number, 'percent' | 'tokens']> {
  return [
    ['pass@1', before.passAt1, after.passAt1, 'percent'],
    // With one sample a question, pass@k is pass@1: one row, not two of the same name.
    ...(before.k === 1 ? [] : [[`pass@${before.k}`, before.passAtK, after.passAtK, 'percent'] as [string, number, number, 'percent']]),
    [`cons@${before.k}`, before.consAtK, after.consAtK, 'percent'],
    ['format rate', before.formatRate, after.formatRate, 'percent'],
    ['mean response length (tokens)', before.meanLength, after.meanLength, 'tokens'],
  ];
}

/** The before/after table as plain text, for the terminal. */
export function comparisonTable(before: EvalReport, after: EvalReport): string {
  const rows = comparisonRows(before, after).map(([label, a, b, kind]) => {
    const show = (x: number) => (kind === 'percent' ? `${(100 * x).toFixed(1)}%` : x.toFixed(1));
    const delta = kind === 'percent' ? `${b >= a ? '+' : ''}${(100 * (b - a)).toFixed(1)} pts` : `${b >= a ? '+' : ''}${(b - a).toFixed(1)}`;
    return [label, show(a), show(b), delta];
  });
  const header = ['', 'base', 'after GRPO', 'change'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function renderReport(input: ReportInput): string {
  const { records } = input;
  const steps = records.map((r) => r.step);
  const charts = [
    chart('Mean reward', steps, [{ name: 'reward', values: records.map((r) => r.reward) }]),
    chart('Accuracy and format rate (training samples)', steps, [
      { name: 'accuracy', values: records.map((r) => r.accuracy) },
      { name: 'format', values: records.map((r) => r.formatRate) },
    ], { min: 0, max: 1 }),
    chart('Mean response length (tokens)', steps, [{ name: 'length', values: records.map((r) => r.responseLengthMean) }]),
    chart('Reflection words per response (wait, check, verify, mistake, ...)', steps, [{ name: 'reflection words', values: records.map((r) => r.reflectionWords) }], { min: 0 }),
    records.some((r) => r.kl !== null)
      ? chart('KL to the reference (k3, mean per token)', steps, [{ name: 'KL', values: records.map((r) => r.kl ?? 0) }])
      : '<figure class="chart"><figcaption>KL to the reference</figcaption><p>Not computed: beta = 0 runs without a reference model.</p></figure>',
    chart('Policy entropy (nats per token)', steps, [{ name: 'entropy', values: records.map((r) => r.entropy) }]),
  ].join('\n');
  const tables = input.evaluations.map(({ source, task, before, after }) => {
    const rows = comparisonRows(before, after).map(([label, a, b, kind]) => {
      const show = (x: number) => (kind === 'percent' ? `${(100 * x).toFixed(1)}%` : x.toFixed(1));
      return `<tr><td>${escape(label)}</td><td>${show(a)}</td><td>${show(b)}</td></tr>`;
    }).join('');
    const heading = input.evaluations.length > 1 ? `<h3>${escape(source)}</h3>` : '';
    return `${heading}<p>Task: ${escape(task)}. Evaluation: ${before.questions} held-out questions, k = ${before.k} samples each at temperature ${before.temperature}, top-p ${before.topP}.</p>
<table><thead><tr><th></th><th>base model</th><th>after GRPO</th></tr></thead><tbody>${rows}</tbody></table>`;
  }).join('\n');
  const samples = input.evaluations.map(({ before, after }) => before.details.slice(0, 4).map((q, i) => sampleBlock(q, after.details[i])).join('\n')).join('\n');
  const timing = Object.entries(input.seconds).map(([name, s]) => `${escape(name)} ${s.toFixed(0)} s`).join(', ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>r1ts: ${escape(input.title)}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 12px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 1em; }
.chart { margin: 0; } .chart figcaption { font-weight: 600; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 6px 8px; margin: 4px 0; font-size: 13px; }
.side { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 1em; }
.ok { color: #18794e; } .bad { color: #b42318; } .muted { color: #666; font-size: 13px; }
</style></head><body>
<h1>${escape(input.title)}</h1>
<p>${records.length} GRPO steps.</p>
<h2>Before and after</h2>
${tables || '<p>Not evaluated.</p>'}
<p class="muted">Time: ${timing}.</p>
<h2>Training curves</h2>
<div class="charts">${charts}</div>
<h2>Sample completions</h2>
${samples}
${stepSamplesSection(input.stepSamples ?? [])}
<h2>Settings</h2>
<pre>${escape(JSON.stringify(input.config, null, 2))}</pre>
</body></html>
`;
}

// ---------------------------------------------------------------------------------------------------------
// The R1 pipeline's report

/** One model's row: its stage, what it is, and its figures (the numbers of src/pipeline/r1.ts's ModelScores). */
export interface PipelineRow {
  label: string;
  stage: string;
  /** Wall time of the stage that made it. */
  seconds: number;
  passAt1: number;
  consAtK: number;
  formatRate: number;
  readableRate: number;
  languageConsistency: number;
  /** Fraction of chains of thought entirely in the target language. */
  consistentRate: number;
  generalScore: number;
  meanLength: number;
}

export interface PipelineCurves {
  title: string;
  steps: readonly number[];
  series: ReadonlyArray<{ name: string; values: readonly number[] }>;
  range?: { min?: number; max?: number };
}

export interface PipelineReportInput {
  /** The reasoning task and the evaluation settings, in words. */
  setup: string;
  rows: readonly PipelineRow[];
  /** The paper's findings, each with what this run measured (one sentence each, plain text). */
  effects: ReadonlyArray<{ finding: string; measured: string }>;
  curves: readonly PipelineCurves[];
  config: object;
}

/** The model table as plain text (for the terminal and docs/BENCHMARKS.md: Markdown table syntax). */
export function pipelineTable(rows: readonly PipelineRow[]): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const header = ['model', 'stage', 'pass@1', 'cons@k', 'format', 'readable', 'language consistency', 'one-language chains', 'general', 'length', 'stage time'];
  const body = rows.map((r) => [r.label, r.stage, pct(r.passAt1), pct(r.consAtK), pct(r.formatRate), pct(r.readableRate), pct(r.languageConsistency), pct(r.consistentRate), pct(r.generalScore), r.meanLength.toFixed(1), `${r.seconds.toFixed(0)} s`]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i < 2 ? '---' : '--:'))), ...body.map(line)].join('\n');
}

export function renderPipelineReport(input: PipelineReportInput): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rows = input.rows.map((r) => `<tr><td>${escape(r.label)}</td><td>${escape(r.stage)}</td><td>${pct(r.passAt1)}</td><td>${pct(r.consAtK)}</td><td>${pct(r.formatRate)}</td>` +
    `<td>${pct(r.readableRate)}</td><td>${pct(r.languageConsistency)}</td><td>${pct(r.consistentRate)}</td><td>${pct(r.generalScore)}</td><td>${r.meanLength.toFixed(1)}</td><td>${r.seconds.toFixed(0)} s</td></tr>`).join('');
  const effects = input.effects.map((e) => `<li><b>${escape(e.finding)}</b> ${escape(e.measured)}</li>`).join('');
  const charts = input.curves.map((c) => chart(c.title, c.steps, c.series, c.range)).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>r1ts R1 pipeline report</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
td:first-child, th:first-child, td:nth-child(2), th:nth-child(2) { text-align: left; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 1em; }
.chart { margin: 0; } .chart figcaption { font-weight: 600; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 6px 8px; font-size: 13px; }
.muted { color: #666; font-size: 13px; }
</style></head><body>
<h1>DeepSeek-R1's recipe on a laptop</h1>
<p>${escape(input.setup)}</p>
<h2>Every model</h2>
<table><thead><tr><th>model</th><th>stage</th><th>pass@1</th><th>cons@k</th><th>format</th><th>readable</th><th>language consistency</th><th>one-language chains</th><th>general</th><th>length</th><th>stage time</th></tr></thead><tbody>${rows}</tbody></table>
<p class="muted">pass@1, cons@k, format and length on the held-out reasoning questions; readable: R1's format with a chain of thought
entirely in the target language; language consistency: mean fraction of chain-of-thought words in the target language;
one-language chains: fraction of chains of thought entirely in the target language; general: pass@1 on
instruction-following requests about words no training request names. R1-Zero-style models are asked with R1-Zero's template and
read from their answer tags; the others in a chat turn, read from the summary.</p>
<h2>The paper's findings, measured here</h2>
<ul>${effects}</ul>
<h2>Curves of every stage</h2>
<div class="charts">${charts}</div>
<h2>Settings</h2>
<pre>${escape(JSON.stringify(input.config, null, 2))}</pre>
</body></html>
`;
}

function sampleBlock(before: EvalQuestion, after: EvalQuestion | undefined): string {
  const response = (label: string, q: EvalQuestion | undefined) => {
    const r = q?.responses[0];
    if (!r) return '';
    const verdict = r.correct ? '<span class="ok">correct</span>' : '<span class="bad">wrong</span>';
    return `<p class="muted">${label}: ${verdict}, ${r.formatted ? 'in format' : 'not in format'}, ${r.lengthTokens} tokens</p><pre>${escape(r.text)}</pre>`;
  };
  return `<h3>${escape(before.question)}</h3><p class="muted">reference: ${escape(String(before.reference))}</p>${response('base model', before)}${response('after GRPO', after)}`;
}

/** Completions of a few training steps side by side: the first of each of the first groups, one column a step. */
function stepSamplesSection(steps: readonly StepSamples[], perStep = 3): string {
  if (steps.length === 0) return '';
  const column = ({ step, samples }: StepSamples) => {
    const firsts = samples.filter((s, i) => i === 0 || samples[i - 1].group !== s.group).slice(0, perStep);
    const blocks = firsts.map((s) => `<p class="muted">${escape(s.question)}<br>${s.correct ? '<span class="ok">correct</span>' : '<span class="bad">wrong</span>'}, reward ${s.reward.toFixed(2)}</p><pre>${escape(s.completion)}</pre>`);
    return `<div><h3>Step ${step}</h3>${blocks.join('')}</div>`;
  };
  return `<h2>Completions during training</h2>\n<div class="side">${steps.map(column).join('')}</div>`;
}

interface Series {
  name: string;
  values: readonly number[];
}

const COLOURS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea'];

/** A line chart as inline SVG: axes with min/max labels, one polyline per series, a legend. */
export function chart(title: string, xs: readonly number[], series: readonly Series[], range: { min?: number; max?: number } = {}): string {
  const width = 460;
  const height = 220;
  const left = 48;
  const right = 12;
  const top = 12;
  const bottom = 28;
  const all = series.flatMap((s) => s.values.filter(Number.isFinite));
  if (xs.length === 0 || all.length === 0) return `<figure class="chart"><figcaption>${escape(title)}</figcaption><p>No data.</p></figure>`;
  let lo = range.min ?? Math.min(...all);
  let hi = range.max ?? Math.max(...all);
  if (hi === lo) {
    hi += Math.abs(hi) * 0.1 || 1;
    lo -= range.min === undefined ? Math.abs(lo) * 0.1 || 1 : 0;
  }
  const x0 = xs[0];
  const x1 = xs[xs.length - 1] === x0 ? x0 + 1 : xs[xs.length - 1];
  const px = (x: number) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const py = (y: number) => top + (1 - (y - lo) / (hi - lo)) * (height - top - bottom);
  const label = (v: number) => (Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : Math.abs(v) >= 0.01 ? v.toPrecision(3) : v.toExponential(1));
  const lines = series.map((s, i) => {
    const points = s.values.map((v, j) => (Number.isFinite(v) ? `${px(xs[j]).toFixed(1)},${py(v).toFixed(1)}` : null)).filter(Boolean).join(' ');
    return `<polyline fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="1.8" points="${points}"/>`;
  }).join('');
  // The legend sits below the plot, between the step labels: inside it, curves near the top ran through it.
  const names = series.map((s, i) => `<tspan fill="${COLOURS[i % COLOURS.length]}"${i > 0 ? ' dx="12"' : ''}>${escape(s.name)}</tspan>`).join('');
  const legend = `<text x="${(left + width - right) / 2}" y="${height - 8}" text-anchor="middle" font-size="12">${names}</text>`;
  return `<figure class="chart"><figcaption>${escape(title)}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escape(title)}">
<rect x="${left}" y="${top}" width="${width - left - right}" height="${height - top - bottom}" fill="#fafafa" stroke="#ccc"/>
<text x="${left - 4}" y="${top + 4}" text-anchor="end" font-size="11">${label(hi)}</text>
<text x="${left - 4}" y="${height - bottom}" text-anchor="end" font-size="11">${label(lo)}</text>
<text x="${left}" y="${height - 8}" font-size="11">step ${x0}</text>
<text x="${width - right}" y="${height - 8}" text-anchor="end" font-size="11">step ${xs[xs.length - 1]}</text>
${lines}${legend}</svg></figure>`;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
