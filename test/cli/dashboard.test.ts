// `r1 dashboard` as a user runs it: --help, and a child process serving a runs folder at the address it prints.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const mainModule = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const r1Args = (...args: string[]) => ['--import', 'tsx', '-e', `import(${JSON.stringify(mainModule)}).then((m) => m.main(process.argv))`, 'r1', ...args];
const root = mkdtempSync(join(tmpdir(), 'r1ts-cli-dashboard-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('r1 dashboard', () => {
  it('has --help, and the training commands take --dashboard', () => {
    const help = spawnSync(process.execPath, r1Args('dashboard', '--help'), { encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    for (const flag of ['[dir]', '--host', '--port', '--model', '--device']) assert.ok(help.stdout.includes(flag), flag);
    const zero = spawnSync(process.execPath, r1Args('zero', '--help'), { encoding: 'utf8' });
    assert.match(zero.stdout, /--dashboard \[port\]/);
  });

  it('serves the runs of a folder at the address it prints', async () => {
    mkdirSync(join(root, 'runs', 'a'), { recursive: true });
    writeFileSync(join(root, 'runs', 'a', 'metrics.jsonl'), '{"step":1,"loss":2}\n{"step":2,"loss":1.5}\n');
    const child = spawn(process.execPath, r1Args('dashboard', join(root, 'runs'), '--port', '0'), { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (data: Buffer) => {
          out += data.toString();
          const found = out.match(/at (http:\/\/127\.0\.0\.1:\d+)\//);
          if (found) resolve(found[1]);
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
      });
      const runs = await (await fetch(`${url}/api/runs`)).json() as Array<{ name: string; records: unknown[] }>;
      assert.deepEqual(runs.map((r) => [r.name, r.records.length]), [['a', 2]]);
      const page = await fetch(`${url}/`);
      assert.match(await page.text(), /<script src="\/uplot.js">/);
      assert.equal((await fetch(`${url}/uplot.js`)).status, 200);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
  });
});
