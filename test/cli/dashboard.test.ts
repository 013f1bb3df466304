// `r1 dashboard` as a user runs it: --help, and a child process serving a runs folder at the address it prints.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { r1Args, withServerChild } from './server-child.ts';

const root = mkdtempSync(join(tmpdir(), 'r1ts-cli-dashboard-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('r1 dashboard', () => {
  it('has --help, and the training commands take --dashboard', () => {
    const help = spawnSync(process.execPath, r1Args('dashboard', '--help'), { encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    for (const flag of ['[dir]', '--host', '--port', '--model', '--device']) assert.ok(help.stdout.includes(flag), flag);
    for (const training of ['zero', 'rl', 'pipeline']) {
      const run = spawnSync(process.execPath, r1Args(training, '--help'), { encoding: 'utf8' });
      assert.match(run.stdout, /--dashboard \[port\]/, training);
    }
  });

  it('serves the runs of a folder at the address it prints', async () => {
    mkdirSync(join(root, 'runs', 'a'), { recursive: true });
    writeFileSync(join(root, 'runs', 'a', 'metrics.jsonl'), '{"step":1,"loss":2}\n{"step":2,"loss":1.5}\n');
    await withServerChild(['dashboard', join(root, 'runs'), '--port', '0'], async (url) => {
      const runs = await (await fetch(`${url}/api/runs`)).json() as Array<{ name: string; records: unknown[] }>;
      assert.deepEqual(runs.map((r) => [r.name, r.records.length]), [['a', 2]]);
      const page = await fetch(`${url}/`);
      assert.match(await page.text(), /<script src="\/uplot.js">/);
      assert.equal((await fetch(`${url}/uplot.js`)).status, 200);
    });
  });
});
