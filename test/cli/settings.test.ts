// A command's settings table as its --help shows it: each option's help ends in its default, a required one says so,
// and one whose default stands for "not given" shows none (it used to read "(default: )"); a resume needs only --out.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { z } from 'zod';
import { positiveInt, Settings } from '../../src/cli/settings.ts';
import { writeRunFile } from '../../src/io/checkpoint.ts';

test("--help shows each option's default, 'required' for a required one, and nothing for an empty default", () => {
  interface Demo { model: string; teacher: string; steps: number; note: string | null }
  const settings = new Settings<Demo>('demo', {
    model: { schema: z.string(), flag: '--model <dir>', help: 'model folder' },
    teacher: { schema: z.string(), flag: '--teacher <dir>', help: 'teacher folder' },
    steps: { schema: positiveInt, flag: '--steps <n>', help: 'updates' },
    note: { schema: z.string().nullable(), flag: '--note <text>', help: 'a note' },
  }, { model: '', teacher: '', steps: 100, note: null }, { required: { teacher: 'give the teacher model folder' } });
  const command = new Command('demo');
  settings.addOptions(command);
  const help = command.helpInformation();
  assert.match(help, /--model <dir> +model folder\n/);
  assert.match(help, /--teacher <dir> +teacher folder \(required\)\n/);
  assert.match(help, /--steps <n> +updates \(default: 100\)\n/);
  assert.match(help, /--note <text> +a note\n/);
  assert.doesNotMatch(help, /\(default: \)/);
});

test('a resume given only --out takes the required settings from its run; without a run they are still asked for', async () => {
  interface Demo { data: string; out: string; resume: boolean; steps: number }
  const settings = new Settings<Demo>('demo', {
    data: { schema: z.string(), flag: '--data <file>', help: 'data file' },
    out: { schema: z.string(), flag: '--out <dir>', help: 'run folder' },
    resume: { schema: z.boolean(), flag: '--resume', help: 'continue the run' },
    steps: { schema: positiveInt, flag: '--steps <n>', help: 'updates' },
  }, { data: '', out: 'runs/demo', resume: false, steps: 100 }, { required: { data: 'name the data file' } });
  const out = mkdtempSync(join(tmpdir(), 'r1-settings-'));
  try {
    assert.throws(() => settings.fromFlags({ out, resume: true }), /--data: name the data file/);
    await writeRunFile(out, 'demo', { data: '/abs/train.jsonl', steps: 7 });
    const resumed = settings.fromFlags({ out, resume: true });
    assert.equal(resumed.data, '/abs/train.jsonl');
    assert.equal(resumed.steps, 100, "only required settings come from the run; the others are the command's");
    assert.equal(settings.fromFlags({ out, resume: true, data: 'other.jsonl' }).data, 'other.jsonl', 'a given flag wins');
    assert.throws(() => settings.fromFlags({ out }), /--data: name the data file/, 'a new run in the same folder still needs it');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
