// Atomic writes: a file or folder appears complete under its final name, or not at all.
//
// The rule everywhere is write to a temporary name in the same folder (rename is only atomic within one
// file system), fsync the data, rename into place, then fsync the parent folder so that the rename itself
// survives a power cut (POSIX rename(2); ext4 and xfs need the folder fsync for the new name to be durable).

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Prefix of every temporary name this module makes; `cleanTemporaries` removes what a killed process left. */
export const TEMP_PREFIX = '.tmp-';

/** A fresh temporary path beside `finalPath`, e.g. `dir/.tmp-model.safetensors-4242-a1b2c3d4`. */
export function temporarySibling(finalPath: string): string {
  const unique = `${process.pid}-${randomBytes(4).toString('hex')}`;
  return join(dirname(finalPath), `${TEMP_PREFIX}${basename(finalPath)}-${unique}`);
}

/** Flush a folder's entries (names created, renamed or removed in it) to disk. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Write all of `bytes` at the handle's current position; a short write is retried until done. */
export async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done);
    done += bytesWritten;
  }
}

/**
 * Create `finalPath` atomically with content produced by `fill`, which writes through the handle (so large
 * files stream instead of being joined into one buffer first). On failure the temporary file is removed and
 * any previous `finalPath` is left untouched.
 */
export async function writeFileAtomicWith(finalPath: string, fill: (handle: FileHandle) => Promise<void>): Promise<void> {
  await mkdir(dirname(finalPath), { recursive: true });
  const tempPath = temporarySibling(finalPath);
  const handle = await open(tempPath, 'wx');
  try {
    await fill(handle);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(tempPath, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(tempPath, finalPath);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw error;
  }
  await fsyncDir(dirname(finalPath));
}

/** Create `finalPath` atomically with the given text (UTF-8) or bytes. */
export async function writeFileAtomic(finalPath: string, content: string | Uint8Array): Promise<void> {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  await writeFileAtomicWith(finalPath, (handle) => writeAll(handle, bytes));
}

/** Write a value as pretty JSON (two-space indent, final newline, as `transformers` writes config.json). */
export async function writeJsonAtomic(finalPath: string, value: unknown): Promise<void> {
  await writeFileAtomic(finalPath, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Remove a folder so that no half-deleted copy is ever visible under its name: rename it to a temporary name
 * first (atomic), then delete that. A process killed during the delete leaves only a temporary folder.
 */
export async function removeDirAtomic(dir: string): Promise<void> {
  const doomed = temporarySibling(dir);
  await rename(dir, doomed);
  await fsyncDir(dirname(dir));
  await rm(doomed, { recursive: true, force: true });
}

/** Delete every entry of `dir` whose name starts with TEMP_PREFIX (leftovers of killed writers). */
export async function cleanTemporaries(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name.startsWith(TEMP_PREFIX)) await rm(join(dir, name), { recursive: true, force: true });
  }
}
