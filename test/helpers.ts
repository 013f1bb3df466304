// Helpers that test files in several folders share: the check that an error is one a user can fix (a UserError,
// src/util/errors.ts) with the expected message, and input files written to a fresh folder removed afterwards.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../src/util/errors.ts';

/** `fn` throws a UserError whose message equals each string and matches each pattern given. */
export function assertUserError(fn: () => unknown, ...expected: Array<string | RegExp>): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
    for (const message of expected) {
      if (typeof message === 'string') assert.equal(e.message, message);
      else assert.match(e.message, message);
    }
    return true;
  });
}

/** Writes `files` (name -> content) into a new temporary folder, runs `body` with their paths, removes the folder. */
export function withFiles(files: Record<string, string | Uint8Array>, body: (paths: Record<string, string>) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'r1-test-'));
  try {
    const paths: Record<string, string> = {};
    for (const [name, content] of Object.entries(files)) {
      paths[name] = join(dir, name);
      writeFileSync(paths[name], content);
    }
    body(paths);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** withFiles for one file: `body` gets its path. */
export function withFile(name: string, content: string | Uint8Array, body: (path: string) => void): void {
  withFiles({ [name]: content }, (paths) => body(paths[name]));
}
