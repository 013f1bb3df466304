// The dashboard in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run) driven by
// playwright-core, against `serveDashboard` over a runs folder written here. The page must draw the recorded
// points, grow a curve when metrics.jsonl grows (a line written in two pieces included), overlay two runs,
// open a sample, show a run's settings, and stream a chat answer; its screenshots must not be blank.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { saveModel } from '../../src/models/pretrained.ts';
import { serveDashboard, type RunningDashboard } from '../../src/serve/dashboard.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';

const CHROMIUM = process.env.R1_CHROMIUM ?? '/usr/bin/chromium';
const root = mkdtempSync(join(tmpdir(), 'r1ts-dashboard-'));
// Screenshots go where R1_SCREENSHOTS says (to keep them), else beside the runs and are removed with them.
const screenshots = process.env.R1_SCREENSHOTS ?? join(root, 'screenshots');

/** A GRPO-like record of step s. */
const grpoRecord = (step: number) => ({
  step, reward: 0.2 + 0.1 * step, rewardParts: { accuracy: 0.05 * step, format: 0.5 + 0.02 * step }, accuracy: 0.05 * step, formatRate: 0.5 + 0.02 * step,
  responseLengthMean: 30 + step, kl: 0.001 * step, entropy: 1.5 - 0.05 * step, loss: 0.1 / step, lr: 2e-4, tokensPerSecond: 900 + step, elapsedSeconds: step * 3,
});
const pretrainRecord = (step: number) => ({ step, loss: 5 / (1 + step), lr: 3e-3, gradNorm: 1, tokensPerSecond: 12000, elapsedSeconds: step });
const jsonl = (records: object[]) => records.map((r) => `${JSON.stringify(r)}\n`).join('');

let dashboard: RunningDashboard;
let browser: Browser;
let page: Page;
const zeroDir = join(root, 'runs', 'zero-a');

const chromiumMissing = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set R1_CHROMIUM)`;

describe('r1 dashboard in Chromium', { skip: chromiumMissing }, () => {
  before(async () => {
    mkdirSync(zeroDir, { recursive: true });
    mkdirSync(join(root, 'runs', 'base'), { recursive: true });
    await writeFile(join(zeroDir, 'run.json'), JSON.stringify({ kind: 'grpo', config: { lr: 2e-4, groupSize: 8, lossType: 'dr_grpo' } }));
    await writeFile(join(zeroDir, 'metrics.jsonl'), jsonl([1, 2, 3, 4, 5].map(grpoRecord)));
    await writeFile(join(zeroDir, 'samples.jsonl'), jsonl([4, 5].map((step) => ({
      step, samples: [0, 1, 2].map((i) => ({ group: 0, question: `What is ${step} + ${i}?`, completion: `<think>${step} plus ${i} is ${step + i}</think> <answer>${step + i}</answer> sample ${step}.${i}`, reward: i === 2 ? 0 : 1.5, parts: { accuracy: i === 2 ? 0 : 1 }, correct: i !== 2, formatted: true, truncated: false })),
    }))));
    await writeFile(join(root, 'runs', 'base', 'metrics.jsonl'), jsonl([1, 2, 3, 4, 5, 6].map(pretrainRecord)));
    await saveTrainedBpe(join(root, 'tok'), tinyBpe());
    await saveModel(tinyModel(7, { eosTokenId: 295 }), Tokenizer.fromFile(join(root, 'tok')), join(root, 'model'));
    dashboard = await serveDashboard({ dir: join(root, 'runs'), host: '127.0.0.1', port: 0, model: join(root, 'model'), pollMs: 100 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(`${dashboard.url}/`);
    mkdirSync(screenshots, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await dashboard?.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** x and first y series of a metric's chart, as the page holds them. */
  const chartSeries = (metric: string) => page.evaluate((m) => {
    const chart = (window as any).r1dashboard.charts.get(m);
    return chart ? { xs: [...chart.plot.data[0]], ys: [...chart.plot.data[1]], series: chart.plot.series.length } : null;
  }, metric);

  /** Distinct colours and the share of non-white pixels of a PNG, decoded by the browser. */
  const pixelStats = (png: Buffer) => page.evaluate(async (base64) => {
    const image = new Image();
    image.src = `data:image/png;base64,${base64}`;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext('2d')!;
    context.drawImage(image, 0, 0);
    const { data } = context.getImageData(0, 0, image.width, image.height);
    const colours = new Set<number>();
    let inked = 0;
    for (let i = 0; i < data.length; i += 4) {
      colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
      if (data[i] < 235 || data[i + 1] < 235 || data[i + 2] < 235) inked++;
    }
    return { colours: colours.size, inked: inked / (data.length / 4) };
  }, png.toString('base64'));

  it('draws every recorded point of the latest run, one chart per metric', async () => {
    await page.waitForFunction(() => (window as any).r1dashboard.charts.has('reward'));
    const reward = await chartSeries('reward');
    assert.deepEqual(reward!.xs, [1, 2, 3, 4, 5]);
    reward!.ys.forEach((y, i) => assert.ok(Math.abs(y - grpoRecord(i + 1).reward) < 1e-12));
    const metrics: string[] = await page.evaluate(() => [...(window as any).r1dashboard.charts.keys()]);
    for (const metric of ['reward', 'rewardParts.accuracy', 'rewardParts.format', 'accuracy', 'formatRate', 'responseLengthMean', 'kl', 'entropy', 'loss', 'lr', 'tokensPerSecond']) {
      assert.ok(metrics.includes(metric), `a chart of ${metric}`);
    }
    assert.equal(metrics.indexOf('reward'), 0, 'reward first');
    const png = await page.locator('.chart[data-metric="reward"]').screenshot({ path: join(screenshots, 'reward-chart.png') });
    const stats = await pixelStats(png);
    assert.ok(stats.colours > 20 && stats.inked > 0.02, `the reward chart is drawn: ${JSON.stringify(stats)}`);
  });

  it('grows a curve as metrics.jsonl grows, a line written in two pieces included', async () => {
    const metricsFile = join(zeroDir, 'metrics.jsonl');
    await appendFile(metricsFile, jsonl([6, 7].map(grpoRecord)));
    const line = jsonl([grpoRecord(8)]);
    await appendFile(metricsFile, line.slice(0, 20));
    await page.waitForFunction(() => (window as any).r1dashboard.charts.get('reward').plot.data[0].length === 7);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await chartSeries('reward'))!.xs.length, 7, 'half a line is not a record');
    await appendFile(metricsFile, line.slice(20));
    await page.waitForFunction(() => (window as any).r1dashboard.charts.get('reward').plot.data[0].length === 8);
    assert.deepEqual((await chartSeries('entropy'))!.xs, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.match(await page.locator('[data-records="zero-a"]').textContent() ?? '', /grpo · 8/);
  });

  it('draws two runs side by side on one chart, and shows a run\'s settings', async () => {
    await page.locator('input[data-run="base"]').check();
    await page.waitForFunction(() => (window as any).r1dashboard.charts.get('loss')?.plot.series.length === 3);
    const loss = await page.evaluate(() => (window as any).r1dashboard.charts.get('loss').plot.data.map((s: Iterable<number | null>) => [...s]));
    // x: the union of both runs' steps; one series per run, null where a run has no record.
    assert.deepEqual(loss[0], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(loss.filter((s: unknown[]) => s.length === 8).length, 3);
    await page.locator('#runs .name', { hasText: 'zero-a' }).click();
    const settings = await page.locator('#settings-table').textContent();
    assert.match(settings ?? '', /lossType\s*dr_grpo/);
  });

  it('marks the point of a run that has one step so far (a line needs two)', async () => {
    mkdirSync(join(root, 'runs', 'one-step'));
    await writeFile(join(root, 'runs', 'one-step', 'metrics.jsonl'), jsonl([pretrainRecord(1)]));
    await page.waitForSelector('input[data-run="one-step"]');
    await page.locator('input[data-run="one-step"]').check();
    for (const other of ['base', 'zero-a']) await page.locator(`input[data-run="${other}"]`).uncheck();
    await page.waitForFunction(() => (window as any).r1dashboard.charts.get('gradNorm')?.plot.data[0].length === 1);
    const stroke: string = await page.evaluate(() => {
      const { plot } = (window as any).r1dashboard.charts.get('gradNorm');
      const s = plot.series[1].stroke;
      return typeof s === 'function' ? s(plot, 1) : s;
    });
    const png = await page.locator('.chart[data-metric="gradNorm"]').screenshot();
    const runPixels = await page.evaluate(async ([base64, colour]) => {
      const image = new Image();
      image.src = `data:image/png;base64,${base64}`;
      await image.decode();
      const canvas = Object.assign(document.createElement('canvas'), { width: image.width, height: image.height });
      const context = canvas.getContext('2d')!;
      context.drawImage(image, 0, 0);
      context.fillStyle = colour;
      context.fillRect(0, 0, 1, 1);
      const [r, g, b] = context.getImageData(0, 0, 1, 1).data;
      const { data } = context.getImageData(0, 0, image.width, image.height);
      let count = 0;
      for (let i = 4; i < data.length; i += 4) if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60) count++;
      return count;
    }, [png.toString('base64'), stroke] as const);
    assert.ok(runPixels >= 10, `${runPixels} pixels of the run's colour ${stroke}`);
    for (const other of ['base', 'zero-a']) await page.locator(`input[data-run="${other}"]`).check();
    await page.locator('input[data-run="one-step"]').uncheck();
  });

  it('lists a step\'s samples with their rewards and opens one', async () => {
    await page.selectOption('#samples-run', 'zero-a');
    await page.waitForFunction(() => document.querySelectorAll('#samples tr.sample').length === 3);
    assert.equal(await page.locator('#samples-step').inputValue(), '5');
    const first = page.locator('#samples tr.sample').first();
    assert.match(await first.textContent() ?? '', /1\.50/);
    await first.click();
    assert.equal(await first.getAttribute('class'), 'sample open');
    const completion = first.locator('td.completion');
    assert.equal(await completion.evaluate((td) => getComputedStyle(td).whiteSpace), 'pre-wrap');
    assert.equal(await completion.textContent(), '<think>5 plus 0 is 5</think> <answer>5</answer> sample 5.0');
    await page.selectOption('#samples-step', '4');
    await page.waitForFunction(() => document.querySelector('#samples tr.sample td.completion')?.textContent?.endsWith('sample 4.0'));
  });

  it('streams a chat answer from the model', async () => {
    await page.fill('#chat-input', 'the cat');
    await page.fill('#chat-max-tokens', '24');
    // Greedy: a draw at the page's default temperature could end the tiny model's answer at its first token.
    await page.fill('#chat-temperature', '0');
    await page.click('#chat-form button');
    await page.waitForFunction(() => document.querySelector('.turn.assistant')?.getAttribute('data-done') === 'true', undefined, { timeout: 30_000 });
    const turn = page.locator('.turn.assistant').first();
    assert.equal(await turn.getAttribute('class'), 'turn assistant', 'no error');
    assert.ok(Number(await turn.getAttribute('data-deltas')) > 1, 'the answer arrived in pieces');
    assert.ok(((await turn.locator('.answer').textContent()) ?? '').length > 0);
  });

  it('takes a screenshot of the whole page that is not blank', async () => {
    const file = join(screenshots, 'dashboard.png');
    await page.screenshot({ path: file, fullPage: true });
    const stats = await pixelStats(await readFile(file));
    assert.ok(stats.colours > 100 && stats.inked > 0.05, JSON.stringify(stats));
  });
});
