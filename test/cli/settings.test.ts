// A command's settings table as its --help shows it: each option's help ends in its default, a required one says so,
// and one whose default stands for "not given" shows none (it used to read "(default: )").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { z } from 'zod';
import { positiveInt, Settings } from '../../src/cli/settings.ts';

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
