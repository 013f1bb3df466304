// Rejection sampling into SFT data (R1 sec. 2.3.3; SPEC.md 4, stage 3): sample k completions per prompt from a
// checkpoint, keep only correct ones (the task's rule checker, or, for what the rules reject, a generative judge
// comparing with the reference), drop those that are not readable (R1: "we have filtered out chain-of-thought
// with mixed languages, long paragraphs, and code blocks"), keep one or a few per prompt, and write them as SFT
// conversations: {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}, one per line.
//
// Every sample is counted under the first filter that removes it, in the order of SAMPLE_FILTERS (cheap checks
// first, so that the judge is only asked about readable samples), then `incorrect`, then `duplicate` and
// `surplus` (beyond keepPerPrompt). An empty result is an error that lists those counts.
//
// The run is resumable and loses nothing: prompts are processed in chunks; after each chunk its kept examples
// are appended to OUT/sft.jsonl and OUT/state.json records how many prompts and lines are done, so a run
// killed (or stopped by a judge that went down) continues with --resume where it stopped. Each completion's
// seed comes from (seed, prompt index, sample index), so a resumed run draws what the uninterrupted one would.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from '../generate/engine.ts';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { readJsonFile } from '../io/json-file.ts';
import { loadModel, type CausalLM } from '../models/pretrained.ts';
import { completionWithPrefill, FORMAT_RULES, isReadableFormat, type FormatRule } from '../rewards/format.ts';
import { endpointJudge, modelJudge, type Judge } from '../rewards/judge.ts';
import { countedWords, LANGUAGE_SCRIPTS, type LanguageTarget } from '../rewards/language.ts';
import { PROMPT_TEMPLATES, type PromptTemplate } from '../rewards/template.ts';
import { taskByName } from '../tasks/registry.ts';
import { hash32 } from '../tasks/split.ts';
import type { Example, Task } from '../tasks/task.ts';
import { Rng, useDevice, type Device } from '../tensor/index.ts';
import type { ChatMessage } from '../tokenizer/chat.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { logToStderr } from '../util/log.ts';
import { progressBar } from '../util/progress.ts';

// ---------------------------------------------------------------------------------------------------------
// Readability filters: each keeps (true) or removes (false) one sample.

/** A sampled completion as the filters see it. */
export interface Candidate {
  /** The completion, with a `<think>` that the prompt prefilled restored. */
  response: string;
  /** It hit maxNewTokens without finishing. */
  truncated: boolean;
}

export interface FilterOptions {
  /** 'any', 'readable' (`<think>…</think>` then a summary), or one of FORMAT_RULES. */
  formatRule: 'any' | 'readable' | FormatRule;
  language: LanguageTarget;
  /** Least fraction of the response's words in the target language (language.ts's measure); 1 allows no other script. */
  minLanguageConsistency: number;
  /** Most words in one paragraph (text between blank lines). */
  maxParagraphWords: number;
  /** Whether fenced code blocks may appear (a code task); R1 drops them from non-code answers. */
  allowCode: boolean;
}

const TAGS = /<\/?(?:think|answer)>/g;

export const SAMPLE_FILTERS = {
  /** A completion cut off at the token limit is unfinished. */
  truncated: (c: Candidate) => !c.truncated,
  /** The output shape the SFT data should teach. */
  format: (c: Candidate, o: FilterOptions) => o.formatRule === 'any' || (o.formatRule === 'readable' ? isReadableFormat(c.response) : FORMAT_RULES[o.formatRule](c.response)),
  /** No language mixing: enough of the words (tags aside) in the target language; a response without words mixes nothing. */
  languageMixing: (c: Candidate, o: FilterOptions) => {
    const words = countedWords(c.response.replace(TAGS, ' '));
    return words.length === 0 || words.filter((w) => LANGUAGE_SCRIPTS[o.language].test(w)).length / words.length >= o.minLanguageConsistency;
  },
  /** No overlong paragraphs (words by whitespace, or by language.ts's count where scripts do not space words; tags aside). */
  longParagraph: (c: Candidate, o: FilterOptions) => c.response.replace(TAGS, ' ').split(/\n\s*\n/).every((p) => Math.max(p.trim().split(/\s+/).length, countedWords(p).length) <= o.maxParagraphWords),
  /** No code blocks in a non-code answer. */
  codeBlock: (c: Candidate, o: FilterOptions) => o.allowCode || !/(^|\n)\s*(```|~~~)/.test(c.response),
} satisfies Record<string, (candidate: Candidate, options: FilterOptions) => boolean>;

export type SampleFilter = keyof typeof SAMPLE_FILTERS;

/** The first filter that removes the candidate, or null when all keep it. */
export function firstFailingFilter(candidate: Candidate, options: FilterOptions): SampleFilter | null {
  for (const [name, keeps] of Object.entries(SAMPLE_FILTERS) as Array<[SampleFilter, (c: Candidate, o: FilterOptions) => boolean]>) {
    if (!keeps(candidate, options)) return name;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// The run

/** Everything `r1 rejection-sample` does, as one flat object (each field is a flag of the CLI). */
export interface RejectionSampleConfig extends FilterOptions {
  /** The Hugging Face model folder to sample (e.g. the reasoning-RL checkpoint). */
  model: string;
  /** Prompts with references: a task name (taskByName: jsonl:PATH, arithmetic, countdown). */
  task: string;
  level: number | null;
  /** Prompts to sample; null: every training problem of a jsonl task (generated tasks need a number). */
  prompts: number | null;
  /**
   * Least number of kept samples: while fewer are kept, prompts past `prompts` are drawn (in chunks) up to
   * `maxPrompts`. A weak model keeps few of its samples; this makes a set of a usable size from it where more
   * prompts can (0: exactly `prompts`). The first `prompts` are the same either way, so a model that reaches the
   * minimum gives the same data as without it.
   */
  minKept: number;
  /** The most prompts drawn to reach minKept (null: `prompts`, no more). */
  maxPrompts: number | null;
  template: PromptTemplate;
  /** Completions sampled per prompt (k). */
  samplesPerPrompt: number;
  /** Kept completions per prompt at most. */
  keepPerPrompt: number;
  maxNewTokens: number;
  /** Strings that end a completion (kept in it), e.g. "</answer>" for the R1-Zero template; besides the EOS tokens. */
  stop: string[];
  temperature: number;
  topP: number;
  seed: number;
  /** Prompts per chunk: sampled in one batch, then filtered, judged and saved. */
  chunkPrompts: number;
  /** A judge for what the rules reject: an http(s) URL of an OpenAI-compatible endpoint, or a model folder; null: rules only. */
  judge: string | null;
  /** Model name sent to a judge endpoint. */
  judgeModel: string;
  judgeAttempts: number;
  judgeTimeoutMs: number;
  /** Output folder: sft.jsonl, summary.json, state.json. */
  out: string;
  resume: boolean;
  device: Device;
}

/** R1 samples at temperature 0.7-1.0 and keeps correct, readable samples; these are sizes for a small model. */
export const defaultRejectionSampleConfig: RejectionSampleConfig = {
  model: '',
  task: '',
  level: null,
  prompts: null,
  minKept: 0,
  maxPrompts: null,
  template: 'r1-zero',
  samplesPerPrompt: 8,
  keepPerPrompt: 1,
  maxNewTokens: 128,
  stop: [],
  temperature: 1,
  topP: 1,
  seed: 1,
  chunkPrompts: 16,
  formatRule: 'any',
  language: 'en',
  minLanguageConsistency: 1,
  maxParagraphWords: 200,
  allowCode: false,
  judge: null,
  judgeModel: 'judge',
  judgeAttempts: 4,
  judgeTimeoutMs: 60_000,
  out: 'runs/rejection-sample',
  resume: false,
  device: 'cpu',
};

/** What each stage removed, and what was kept. */
export interface RejectionCounts {
  prompts: number;
  sampled: number;
  /** Samples removed by each filter (a sample counts under the first one that removes it). */
  removed: Record<SampleFilter | 'incorrect' | 'duplicate' | 'surplus', number>;
  /** Samples the rules rejected that the judge was asked about, and those it accepted. */
  judged: number;
  judgeAccepted: number;
  kept: number;
  promptsWithKept: number;
}

export interface RejectionSampleResult {
  out: string;
  /** OUT/sft.jsonl */
  file: string;
  counts: RejectionCounts;
}

export interface RejectionSampleHooks {
  log?: (line: string) => void;
  progress?: boolean;
  /** Called after each saved chunk (tests use it to stop a run). */
  onChunk?: (promptsDone: number, counts: RejectionCounts) => void;
}

interface State {
  config: RejectionSampleConfig;
  promptsDone: number;
  /** Lines of sft.jsonl that belong to the chunks done. */
  lines: number;
  counts: RejectionCounts;
}

export const SFT_FILE = 'sft.jsonl';
const STATE_FILE = 'state.json';
const SUMMARY_FILE = 'summary.json';

/** Samples, filters, judges and writes OUT/sft.jsonl (see the file comment); resumable. */
export async function rejectionSample(given: RejectionSampleConfig, hooks: RejectionSampleHooks = {}): Promise<RejectionSampleResult> {
  const log = hooks.log ?? logToStderr;
  const stateFile = join(given.out, STATE_FILE);
  const file = join(given.out, SFT_FILE);
  let state: State | null = null;
  if (given.resume && existsSync(stateFile)) {
    state = readJsonFile(stateFile) as State;
    log(`resuming ${given.out}: ${state.promptsDone} prompts done, ${state.lines} examples kept`);
  } else if (!given.resume && existsSync(stateFile)) {
    throw new UserError(`${given.out} already holds a rejection-sampling run; pass --resume to continue it, or choose another --out`);
  }
  // A resumed run is the same run (its judge may be given anew: the endpoint may have moved).
  const config = state ? { ...state.config, judge: given.judge, judgeAttempts: given.judgeAttempts, judgeTimeoutMs: given.judgeTimeoutMs } : given;
  const task = taskByName(config.task, config.level === null ? {} : { level: config.level });
  const examples = promptExamples(task, config);
  // The prompts planned; more of `examples` are drawn only while fewer than minKept are kept.
  const planned = Math.min(config.prompts ?? examples.length, examples.length);
  useDevice(config.device);
  const { model, tokenizer } = await loadModel(config.model);
  const judge = config.judge === null ? null : await openJudge(config);
  await mkdir(config.out, { recursive: true });

  const counts = state?.counts ?? emptyCounts();
  let lines = state?.lines ?? 0;
  let done = state?.promptsDone ?? 0;
  // Lines past the recorded count belong to a chunk that was not finished: they are redone.
  const existing = existsSync(file) ? (await readFile(file, 'utf8')).split('\n').filter((l) => l.length > 0) : [];
  await writeFileAtomic(file, existing.slice(0, lines).map((l) => `${l}\n`).join(''));

  const bar = progressBar('rejection sampling {bar} {value}/{total} prompts | kept {kept} | {rate} prompts/s | ETA {eta_formatted}', hooks.progress !== false, { etaBuffer: 8 });
  bar?.start(planned, done, { kept: lines, rate: '-' });
  const startMs = performance.now();
  let extending = false;
  try {
    while (done < examples.length && (done < planned || lines < config.minKept)) {
      if (done >= planned && !extending) {
        extending = true;
        log(`kept ${lines} of the ${config.minKept} wanted after ${done} prompts: drawing more prompts, up to ${examples.length}`);
        bar?.setTotal(examples.length);
      }
      // A chunk ends at the planned prompts, so that a run that reaches minKept draws exactly them.
      const chunk = examples.slice(done, Math.min(done + config.chunkPrompts, done < planned ? planned : examples.length));
      const kept = await processChunk(model, tokenizer, task, chunk, done, config, judge, counts);
      await appendFile(file, kept.map((messages) => `${JSON.stringify({ messages })}\n`).join(''));
      done += chunk.length;
      lines += kept.length;
      await writeJsonAtomic(stateFile, { config, promptsDone: done, lines, counts } satisfies State);
      hooks.onChunk?.(done, counts);
      const rate = (done - (state?.promptsDone ?? 0)) / ((performance.now() - startMs) / 1000);
      if (bar) bar.update(done, { kept: lines, rate: rate.toFixed(2) });
      else log(`${done}/${extending ? examples.length : planned} prompts, ${lines} kept (${rate.toFixed(2)} prompts/s)`);
    }
  } finally {
    bar?.stop();
  }
  if (lines < config.minKept) log(`kept ${lines} of the ${config.minKept} wanted after every one of ${done} prompts: continuing with what was kept`);
  await writeJsonAtomic(join(config.out, SUMMARY_FILE), counts);
  if (counts.kept === 0) {
    const removed = Object.entries(counts.removed).filter(([, n]) => n > 0).map(([name, n]) => `${name} removed ${n}`).join(', ');
    throw new UserError(`rejection sampling kept nothing: of ${counts.sampled} samples of ${counts.prompts} prompts, ${removed || 'no filter removed any'}${counts.judged > 0 ? ` (the judge accepted ${counts.judgeAccepted} of ${counts.judged})` : ''}; counts in ${join(config.out, SUMMARY_FILE)}`);
  }
  return { out: config.out, file, counts };
}

/** Samples k completions for each prompt of the chunk, filters and judges them; updates `counts` in place. */
async function processChunk(model: CausalLM, tokenizer: Tokenizer, task: Task, chunk: readonly Example[], firstIndex: number, config: RejectionSampleConfig, judge: Judge | null, counts: RejectionCounts): Promise<ChatMessage[][]> {
  const k = config.samplesPerPrompt;
  const prompts = chunk.map((example) => PROMPT_TEMPLATES[config.template](example.question, tokenizer));
  const requests = chunk.flatMap((_, e) => Array.from({ length: k }, (_, j) => ({ prompt: prompts[e], seed: hash32(`${config.seed}:${firstIndex + e}:${j}`) })));
  const results = generate(model, tokenizer, requests, { maxNewTokens: config.maxNewTokens, temperature: config.temperature, topP: config.topP, stop: config.stop });
  const kept: ChatMessage[][] = [];
  for (const [e, example] of chunk.entries()) {
    counts.prompts++;
    const accepted: string[] = [];
    for (let j = 0; j < k; j++) {
      const result = results[e * k + j];
      counts.sampled++;
      const response = completionWithPrefill({ prompt: prompts[e], completion: result.text + (result.stopString ?? '') }).trim();
      const failing = firstFailingFilter({ response, truncated: result.finishReason === 'length' }, config);
      if (failing !== null) {
        counts.removed[failing]++;
        continue;
      }
      if (!(await isCorrect(task, example, response, judge, counts))) {
        counts.removed.incorrect++;
        continue;
      }
      if (accepted.includes(response)) counts.removed.duplicate++;
      else if (accepted.length >= config.keepPerPrompt) counts.removed.surplus++;
      else accepted.push(response);
    }
    if (accepted.length > 0) counts.promptsWithKept++;
    counts.kept += accepted.length;
    for (const response of accepted) kept.push([{ role: 'user', content: example.question }, { role: 'assistant', content: response }]);
  }
  return kept;
}

/** The rule checker's verdict; what it rejects goes to the judge when there is one (and the reference is text). */
async function isCorrect(task: Task, example: Example, response: string, judge: Judge | null, counts: RejectionCounts): Promise<boolean> {
  let verdict: { answer: string | null; correct: boolean };
  try {
    verdict = task.verify(response, example);
  } catch {
    verdict = { answer: null, correct: false };
  }
  if (verdict.correct) return true;
  if (judge === null || typeof example.reference !== 'string') return false;
  counts.judged++;
  const accepted = await judge.judge({ question: example.question, reference: example.reference, answer: verdict.answer ?? response });
  if (accepted) counts.judgeAccepted++;
  return accepted;
}

/**
 * The prompts the run may use, in a fixed order: a jsonl task's training problems, or problems drawn from a
 * generated task; `prompts` of them, or `maxPrompts` when that is more (the first `prompts` are the same).
 */
function promptExamples(task: Task, config: RejectionSampleConfig): Example[] {
  const count = config.prompts === null ? null : Math.max(config.prompts, config.maxPrompts ?? 0);
  if ('train' in task && Array.isArray(task.train)) {
    const all = task.train as Example[];
    return count === null ? [...all] : all.slice(0, count);
  }
  if (count === null) throw new UserError(`task ${task.name} generates its problems: give the number of prompts (--prompts N)`);
  return task.sample(new Rng(config.seed), count);
}

async function openJudge(config: RejectionSampleConfig): Promise<Judge> {
  const target = config.judge!;
  if (/^https?:\/\//.test(target)) {
    return endpointJudge(target, { model: config.judgeModel, attempts: config.judgeAttempts, timeoutMs: config.judgeTimeoutMs, apiKey: process.env.OPENAI_API_KEY ?? null });
  }
  const { model, tokenizer } = await loadModel(target);
  return modelJudge(target, model, tokenizer);
}

function emptyCounts(): RejectionCounts {
  const removed = Object.fromEntries([...Object.keys(SAMPLE_FILTERS), 'incorrect', 'duplicate', 'surplus'].map((name) => [name, 0])) as RejectionCounts['removed'];
  return { prompts: 0, sampled: 0, removed, judged: 0, judgeAccepted: 0, kept: 0, promptsWithKept: 0 };
}
