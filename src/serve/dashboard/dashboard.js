// The dashboard page (served by src/serve/dashboard.ts): runs and their metric curves, kept live through the
// /api/events stream; sampled completions per step; a chat box over the server's /v1/chat/completions.
// Plain browser JavaScript and uPlot (a global from /uplot.js): nothing to build, nothing from the network.
'use strict';

const COLORS = ['#3867d6', '#e67e22', '#2e9b57', '#c0392b', '#8e44ad', '#16a085', '#d4a017', '#7f8c8d'];
// Metrics in the order a person reads a reasoning run; anything else a run records follows, by name.
const PREFERRED = ['reward', 'rewardParts', 'accuracy', 'formatRate', 'languageConsistency', 'responseLengthMean', 'responseLengthMax', 'kl', 'entropy',
  'loss', 'validationLoss', 'lr', 'tokensPerSecond', 'gradNorm', 'clipFraction', 'truncatedRate', 'reflectionWords'];
const NOT_CHARTED = new Set(['step', 'elapsedSeconds']);

const state = {
  runs: new Map(), // name -> {name, kind, config, records}
  selected: new Set(),
  colors: new Map(),
  charts: new Map(), // metric -> {plot, element, runs: [names]}
};
window.r1dashboard = state;

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};

/** A record's numeric fields, nested objects flattened one level ("rewardParts.accuracy"). */
function numericFields(record) {
  const out = {};
  for (const [key, value] of Object.entries(record)) {
    if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
    else if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [sub, v] of Object.entries(value)) if (typeof v === 'number' && Number.isFinite(v)) out[`${key}.${sub}`] = v;
    }
  }
  return out;
}

function metricOrder(a, b) {
  const rank = (m) => {
    const base = m.split('.')[0];
    const i = PREFERRED.indexOf(base);
    return i < 0 ? PREFERRED.length : i;
  };
  return rank(a) - rank(b) || a.localeCompare(b);
}

function colorOf(name) {
  if (!state.colors.has(name)) state.colors.set(name, COLORS[state.colors.size % COLORS.length]);
  return state.colors.get(name);
}

// ---------------------------------------------------------------------------------------------------------
// Runs list and settings

function renderRuns() {
  const list = $('runs');
  list.replaceChildren();
  for (const run of [...state.runs.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const box = el('input', { type: 'checkbox', 'data-run': run.name, onchange: (e) => {
      if (e.target.checked) state.selected.add(run.name); else state.selected.delete(run.name);
      rebuildCharts();
      renderSampleRuns();
    } });
    box.checked = state.selected.has(run.name);
    const swatch = el('span', { class: 'swatch' });
    swatch.style.background = colorOf(run.name);
    list.append(el('li', {}, box, swatch,
      el('span', { class: 'name', onclick: () => showSettings(run.name) }, run.name),
      el('span', { class: 'meta', 'data-records': run.name }, `${run.kind ?? 'run'} · ${run.records.length}`)));
  }
}

function showSettings(name) {
  const run = state.runs.get(name);
  $('settings').hidden = false;
  $('settings-title').textContent = `Settings of ${name}`;
  const table = $('settings-table');
  table.replaceChildren();
  const entries = run.config ? Object.entries(run.config) : [];
  if (entries.length === 0) table.append(el('tr', {}, el('td', {}, 'no run.json in this run')));
  for (const [key, value] of entries) table.append(el('tr', {}, el('td', {}, key), el('td', {}, typeof value === 'object' ? JSON.stringify(value) : String(value))));
}

// ---------------------------------------------------------------------------------------------------------
// Charts: one per metric, a series per selected run, x = step

function chartData(metric, runs) {
  const tables = runs.map((name) => {
    const xs = [];
    const ys = [];
    for (const record of state.runs.get(name).records) {
      const value = numericFields(record)[metric];
      if (value === undefined || typeof record.step !== 'number') continue;
      xs.push(record.step);
      ys.push(value);
    }
    return [xs, ys];
  });
  return uPlot.join(tables);
}

function metricsOf(runs) {
  const metrics = new Set();
  for (const name of runs) for (const record of state.runs.get(name).records) for (const key of Object.keys(numericFields(record))) if (!NOT_CHARTED.has(key)) metrics.add(key);
  return [...metrics].sort(metricOrder);
}

function chartWidth() {
  const container = $('charts');
  const columns = Math.max(1, Math.floor((container.clientWidth + 12) / 372));
  return Math.floor((container.clientWidth - 12 * (columns - 1)) / columns) - 18;
}

function rebuildCharts() {
  for (const chart of state.charts.values()) chart.plot.destroy();
  state.charts.clear();
  const container = $('charts');
  container.replaceChildren();
  const runs = [...state.selected].filter((name) => state.runs.has(name));
  const width = chartWidth();
  for (const metric of metricsOf(runs)) {
    const last = el('span', { class: 'last' });
    const element = el('div', { class: 'chart', 'data-metric': metric }, el('h3', {}, `${metric} `, last));
    container.append(element);
    const plot = new uPlot({
      width, height: 180,
      // Runs are told apart by the colours of the run list (a legend under every chart would take its height).
      legend: { show: false },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false } },
      axes: [{ label: 'step', size: 36 }, { size: 60, values: (_plot, ticks) => ticks.map(formatNumber) }],
      // uPlot's own rule for points: drawn where they are sparse, so a run of one step is not an empty chart.
      series: [{ label: 'step' }, ...runs.map((name) => ({ label: name, stroke: colorOf(name), width: 1.5, spanGaps: true }))],
    }, chartData(metric, runs), element);
    state.charts.set(metric, { plot, element, last, runs });
    updateLast(metric);
  }
}

function updateLast(metric) {
  const chart = state.charts.get(metric);
  const ys = chart.plot.data[1] ?? [];
  let value;
  for (let i = ys.length - 1; i >= 0 && value === undefined; i--) if (ys[i] != null) value = ys[i];
  chart.last.textContent = value === undefined ? '' : formatNumber(value);
}

/** Four significant digits; exponents for the very small (learning rates) and very large. */
function formatNumber(value) {
  if (value === 0) return '0';
  return Math.abs(value) >= 1e5 || Math.abs(value) < 1e-3 ? value.toExponential(2) : String(+value.toPrecision(4));
}

/** New records of a run: the charts that show it take the new points, or are rebuilt if a new metric appeared. */
function recordsArrived(name) {
  const runs = [...state.selected].filter((n) => state.runs.has(n));
  if (!state.selected.has(name)) return;
  const metrics = metricsOf(runs);
  if (metrics.some((m) => !state.charts.has(m))) {
    rebuildCharts();
    return;
  }
  for (const [metric, chart] of state.charts) {
    chart.plot.setData(chartData(metric, chart.runs));
    updateLast(metric);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Samples

function renderSampleRuns() {
  const select = $('samples-run');
  const current = select.value;
  select.replaceChildren(...[...state.runs.keys()].sort().map((name) => el('option', { value: name }, name)));
  const preferred = [...state.selected].find((n) => state.runs.has(n));
  select.value = state.runs.has(current) ? current : preferred ?? select.options[0]?.value ?? '';
}

async function loadSamples(step) {
  const run = $('samples-run').value;
  if (!run) return;
  const query = new URLSearchParams({ run, ...(step === undefined ? {} : { step: String(step) }) });
  const answer = await (await fetch(`/api/samples?${query}`)).json();
  const stepSelect = $('samples-step');
  stepSelect.replaceChildren(...answer.steps.map((s) => el('option', { value: String(s) }, String(s))));
  stepSelect.value = String(answer.step);
  const body = $('samples').tBodies[0];
  body.replaceChildren();
  $('samples-empty').hidden = answer.samples.length > 0;
  for (const sample of answer.samples) {
    const yesNo = (v) => el('span', { class: v ? 'yes' : 'no' }, v ? '✓' : '✗');
    const row = el('tr', { class: 'sample', onclick: () => row.classList.toggle('open') },
      el('td', {}, String(sample.group ?? '')),
      el('td', {}, typeof sample.reward === 'number' ? sample.reward.toFixed(2) : ''),
      el('td', {}, yesNo(sample.correct)),
      el('td', {}, yesNo(sample.formatted)),
      el('td', { class: 'text' }, sample.question ?? ''),
      el('td', { class: 'text completion' }, sample.completion ?? ''));
    row.title = Object.entries(sample.parts ?? {}).map(([k, v]) => `${k}: ${v}`).join(', ');
    body.append(row);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Chat

const conversation = [];

async function sendChat(event) {
  event.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  conversation.push({ role: 'user', content: text });
  $('chat-log').append(el('div', { class: 'turn user' }, text));
  const reasoning = el('div', { class: 'reasoning' });
  const answer = el('div', { class: 'answer' });
  const turn = el('div', { class: 'turn assistant', 'data-deltas': '0', 'data-done': 'false' }, reasoning, answer);
  $('chat-log').append(turn);
  try {
    const response = await fetch('/v1/chat/completions', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: $('chat-model').textContent, messages: conversation, stream: true, temperature: Number($('chat-temperature').value), max_tokens: Number($('chat-max-tokens').value) }),
    });
    if (!response.ok) throw new Error((await response.json()).error?.message ?? `status ${response.status}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const data = buffer.slice(0, end).replace(/^data: /, '');
        buffer = buffer.slice(end + 2);
        if (data === '[DONE]') continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices[0]?.delta ?? {};
        if (delta.reasoning_content) reasoning.textContent += delta.reasoning_content;
        if (delta.content) answer.textContent += delta.content;
        if (delta.reasoning_content || delta.content) turn.dataset.deltas = String(Number(turn.dataset.deltas) + 1);
        $('chat-log').scrollTop = $('chat-log').scrollHeight;
      }
    }
    conversation.push({ role: 'assistant', content: answer.textContent });
  } catch (error) {
    turn.classList.add('error');
    answer.textContent += `\n[${error.message}]`;
  }
  turn.dataset.done = 'true';
}

// ---------------------------------------------------------------------------------------------------------
// Live updates

// What is drawn at first: the last run by name (runs/zero-<date>-<time> sort by time), and any run that appears
// while the page is open (the one just started); the others are a tick away in the list.
function addRun(run, live) {
  state.runs.set(run.name, run);
  if (live) state.selected.add(run.name);
}

function connect() {
  const events = new EventSource('/api/events');
  const live = $('live');
  events.addEventListener('open', () => { live.textContent = 'live'; live.classList.add('on'); });
  events.addEventListener('error', () => { live.textContent = 'reconnecting'; live.classList.remove('on'); });
  events.addEventListener('snapshot', (e) => {
    state.runs.clear();
    const runs = JSON.parse(e.data).runs;
    for (const run of runs) addRun(run, false);
    if (state.selected.size === 0 && runs.length > 0) state.selected.add(runs.map((r) => r.name).sort().at(-1));
    renderRuns();
    rebuildCharts();
    renderSampleRuns();
    void loadSamples();
  });
  events.addEventListener('run', (e) => {
    addRun(JSON.parse(e.data).run, true);
    renderRuns();
    rebuildCharts();
    renderSampleRuns();
  });
  events.addEventListener('reset', (e) => {
    const { run } = JSON.parse(e.data);
    state.runs.set(run.name, run);
    renderRuns();
    rebuildCharts();
  });
  events.addEventListener('records', (e) => {
    const { run, records } = JSON.parse(e.data);
    const known = state.runs.get(run);
    if (!known) return;
    known.records.push(...records);
    const meta = document.querySelector(`[data-records="${CSS.escape(run)}"]`);
    if (meta) meta.textContent = `${known.kind ?? 'run'} · ${known.records.length}`;
    recordsArrived(run);
    if (run === $('samples-run').value && $('samples-follow').checked) void loadSamples();
  });
}

async function start() {
  const info = await (await fetch('/api/info')).json();
  $('folder').textContent = info.dir;
  if (info.model) {
    $('chat-panel').hidden = false;
    $('chat-model').textContent = info.model;
    $('chat-form').addEventListener('submit', sendChat);
    $('chat-input').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) sendChat(e);
    });
  }
  $('samples-run').addEventListener('change', () => loadSamples());
  $('samples-step').addEventListener('change', (e) => {
    $('samples-follow').checked = false;
    void loadSamples(Number(e.target.value));
  });
  let resizeTimer;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      const width = chartWidth();
      for (const chart of state.charts.values()) chart.plot.setSize({ width, height: 180 });
    }, 100);
  });
  connect();
}

void start();
