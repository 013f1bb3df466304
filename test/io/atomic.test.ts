import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { cleanTemporaries, removeDirAtomic, writeAll, writeFileAtomic, writeFileAtomicWith } from '../../src/io/atomic.ts';
import { withTempDir } from './fixtures/tiny.ts';

test('writeFileAtomic replaces a file whole and leaves no temporary behind', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'sub', 'state.json');
    await writeFileAtomic(file, 'first');
    await writeFileAtomic(file, new Uint8Array([0x73, 0x65, 0x63, 0x6f, 0x6e, 0x64]));
    assert.equal(await readFile(file, 'utf8'), 'second');
    assert.deepEqual(await readdir(join(dir, 'sub')), ['state.json']);
  });
});

test('a write that fails halfway keeps the previous file and removes its temporary', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'weights.bin');
    await writeFileAtomic(file, 'old content');
    await assert.rejects(writeFileAtomicWith(file, async (handle) => {
      await writeAll(handle, new Uint8Array(1000));
      throw new Error('disk on fire');
    }), /disk on fire/);
    assert.equal(await readFile(file, 'utf8'), 'old content');
    assert.deepEqual(await readdir(dir), ['weights.bin']);
  });
});

test('removeDirAtomic and cleanTemporaries leave nothing but what was not temporary', async () => {
  await withTempDir(async (dir) => {
    await mkdir(join(dir, 'step-1', 'nested'), { recursive: true });
    await writeFile(join(dir, 'step-1', 'nested', 'f'), 'x');
    await removeDirAtomic(join(dir, 'step-1'));
    assert.deepEqual(await readdir(dir), []);
    await mkdir(join(dir, '.tmp-step-2-1-ab'));
    await writeFile(join(dir, '.tmp-latest-1-cd'), 'step-');
    await writeFile(join(dir, 'keep.json'), '{}');
    await cleanTemporaries(dir);
    assert.deepEqual(await readdir(dir), ['keep.json']);
  });
});
