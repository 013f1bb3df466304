// `r1 rejection-sample`: flags (and an optional JSON config file) -> RejectionSampleConfig -> rejectionSample().
import type { Command } from 'commander';
import { z } from 'zod';
import { defaultRejectionSampleConfig, rejectionSample, type RejectionSampleConfig } from '../pipeline/rejection-sample.ts';
import { PROMPT_TEMPLATES } from '../rewards/template.ts';
import { FORMAT_RULES } from '../rewards/format.ts';
import { LANGUAGE_SCRIPTS } from '../rewards/language.ts';
import { positiveInt, nonNegativeInt, Settings, type Fields } from './settings.ts';
import { SHARED_FIELDS } from './shared-fields.ts';

export const FIELDS: Fields<RejectionSampleConfig> = {
  model: { schema: z.string(), flag: '--model <dir>', help: 'Hugging Face model folder to sample (e.g. the reasoning-RL checkpoint)' },
  task: { schema: z.string(), flag: '--task <name>', help: 'prompts with references: jsonl:PATH (GSM8K/MATH-style), arithmetic or countdown' },
  level: { schema: positiveInt.nullable(), flag: '--level <n>', help: 'difficulty level of a generated task' },
  prompts: { schema: positiveInt.nullable(), flag: '--prompts <n>', help: 'prompts to sample (default: every training problem of a jsonl task)' },
  minKept: { schema: nonNegativeInt, flag: '--min-kept <n>', help: 'least number of kept samples: while fewer are kept, prompts past --prompts are drawn, up to --max-prompts (0: none)' },
  maxPrompts: { schema: positiveInt.nullable(), flag: '--max-prompts <n>', help: 'the most prompts drawn to reach --min-kept (default: --prompts)' },
  template: { schema: z.enum(Object.keys(PROMPT_TEMPLATES) as [keyof typeof PROMPT_TEMPLATES]), flag: '--template <name>', help: `how a question is shown to the model: ${Object.keys(PROMPT_TEMPLATES).join(', ')}` },
  samplesPerPrompt: { schema: positiveInt, flag: '--samples-per-prompt <k>', help: 'completions sampled per prompt' },
  keepPerPrompt: { schema: positiveInt, flag: '--keep-per-prompt <n>', help: 'kept completions per prompt at most' },
  maxNewTokens: { schema: positiveInt, flag: '--max-new-tokens <n>', help: 'completion length limit (a completion that reaches it is dropped as truncated)' },
  stop: { schema: z.array(z.string().min(1)), flag: null, help: 'strings that end a completion (kept in it), e.g. ["</answer>"]' },
  temperature: { schema: z.number().nonnegative(), flag: '--temperature <t>', help: 'sampling temperature' },
  topP: { schema: z.number().gt(0).max(1), flag: '--top-p <p>', help: 'nucleus mass' },
  seed: { schema: nonNegativeInt, flag: '--seed <n>', help: 'seed of the prompt draws and of every completion' },
  chunkPrompts: { schema: positiveInt, flag: '--chunk-prompts <n>', help: 'prompts sampled together and saved as one chunk' },
  formatRule: { schema: z.enum(['any', 'readable', ...Object.keys(FORMAT_RULES)] as [string, ...string[]]) as z.ZodType<RejectionSampleConfig['formatRule']>, flag: '--format-rule <rule>', help: `required output shape: any, readable (<think>...</think> then a summary), ${Object.keys(FORMAT_RULES).join(', ')}` },
  language: { schema: z.enum(Object.keys(LANGUAGE_SCRIPTS) as [keyof typeof LANGUAGE_SCRIPTS]), flag: '--language <lang>', help: `target language of the language-mixing filter: ${Object.keys(LANGUAGE_SCRIPTS).join(', ')}` },
  minLanguageConsistency: { schema: z.number().min(0).max(1), flag: '--min-language-consistency <f>', help: 'least fraction of words in the target language (1: no mixing at all)' },
  maxParagraphWords: { schema: positiveInt, flag: '--max-paragraph-words <n>', help: 'longest paragraph kept, in words' },
  allowCode: { schema: z.boolean(), flag: '--allow-code', help: 'keep completions with fenced code blocks (a code task)' },
  judge: { schema: z.string().min(1).nullable(), flag: '--judge <url|dir>', help: 'judge for what the rules reject: an OpenAI-compatible endpoint URL (key from OPENAI_API_KEY) or a model folder' },
  judgeModel: { schema: z.string().min(1), flag: '--judge-model <name>', help: 'model name sent to a judge endpoint' },
  judgeAttempts: { schema: positiveInt, flag: '--judge-attempts <n>', help: 'attempts per question before a judge endpoint is given up on' },
  judgeTimeoutMs: { schema: positiveInt, flag: '--judge-timeout-ms <ms>', help: 'time allowed for one judge answer' },
  out: { ...SHARED_FIELDS.out, help: 'output folder: sft.jsonl ({"messages": ...} per line), summary.json (what each filter removed), state.json' },
  resume: { ...SHARED_FIELDS.resume, help: 'continue the run in --out where it stopped' },
  device: SHARED_FIELDS.device,
};

const settings = new Settings('rejection-sample', FIELDS, defaultRejectionSampleConfig, {
  required: { model: 'name the model folder to sample', task: 'name the prompts (e.g. jsonl:problems.jsonl)' },
});

export function rejectionSampleConfigFromFlags(flags: Record<string, unknown>): RejectionSampleConfig {
  return settings.fromFlags(flags);
}

export function register(program: Command): void {
  settings.register(program, {
    summary: 'sample k completions per prompt, keep the correct and readable ones, write SFT data (R1 stage 3)',
    description:
      'Samples --samples-per-prompt completions for each prompt, drops truncated, ill-formatted, language-mixing, long-paragraph and code-block ones, ' +
        'keeps those the task\'s rule checker (or, for what it rejects, --judge) accepts, at most --keep-per-prompt each, and writes OUT/sft.jsonl ' +
        '({"messages": [user, assistant]} per line) and OUT/summary.json (what each filter removed). Resumable with --resume.',
  }, async (config) => {
    const { counts, file } = await rejectionSample(config);
    const removed = Object.entries(counts.removed).filter(([, n]) => n > 0).map(([name, n]) => `${name} ${n}`).join(', ');
    console.log(`kept ${counts.kept} of ${counts.sampled} samples (${counts.promptsWithKept} of ${counts.prompts} prompts); removed: ${removed || 'none'}`);
    if (counts.judged > 0) console.log(`judge: accepted ${counts.judgeAccepted} of ${counts.judged} that the rules rejected`);
    console.log(`SFT data: ${file}`);
  });
}
