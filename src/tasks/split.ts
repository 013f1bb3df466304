// Train/test splits by hashing, and the small seeded helpers the generators share.
//
// A held-out example must never be drawn for training, whatever seed a run uses. Generated tasks therefore
// split the problem space itself rather than the draws: each problem has a key (its numeric skeleton, e.g. the
// sorted numbers and target of a Countdown problem), and a key whose hash falls in the test bucket belongs to
// the test set only. Training draws skip those keys; the test set is drawn from a fixed seed and keeps only
// them. Loaded files split the same way on the question text, so duplicates land on the same side.
import type { Rng } from '../tensor/random.ts';
import { UserError } from '../util/errors.ts';

/** 32-bit FNV-1a over the UTF-16 code units of `text`, with a murmur3 finaliser so that low bits mix well. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** True when `key` belongs to the held-out side of a split that holds out about `fraction` of all keys. */
export function isHeldOut(key: string, fraction: number): boolean {
  return hash32(key) / 4294967296 < fraction;
}

/** One element of `items`, uniformly. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

/**
 * `count` items drawn without replacement while the items last (no item twice in one batch), then again from all
 * of them: the training draws of a task loaded from a file.
 */
export function drawWithoutReplacement<T>(rng: Rng, items: readonly T[], count: number): T[] {
  const out: T[] = [];
  while (out.length < count) {
    const order = items.map((_, i) => i);
    const take = Math.min(count - out.length, order.length);
    for (let i = 0; i < take; i++) {
      const j = i + rng.int(order.length - i);
      [order[i], order[j]] = [order[j], order[i]];
      out.push(items[order[i]]);
    }
  }
  return out;
}

/** An integer uniform in [lo, hi] (both included). */
export function intBetween(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/**
 * The first `size` distinct held-out examples that `draw` produces from `rng`. Throws when the held-out part of
 * the problem space looks exhausted (no new problem in many draws): a test set larger than the level allows.
 */
export function drawHeldOut<T>(rng: Rng, size: number, fraction: number, draw: (rng: Rng) => { key: string; dedupKey: string; value: T }, what: string): T[] {
  const out: T[] = [];
  const seen = new Set<string>();
  // About 2,000 held-out draws in a row that were all repeats.
  const stallLimit = Math.ceil(2000 / fraction);
  let sinceNew = 0;
  while (out.length < size) {
    if (++sinceNew > stallLimit) {
      throw new UserError(`${what}: found only ${out.length} distinct held-out problems of the ${size} requested (ask for fewer, or a higher level)`);
    }
    const { key, dedupKey, value } = draw(rng);
    if (!isHeldOut(key, fraction) || seen.has(dedupKey)) continue;
    seen.add(dedupKey);
    out.push(value);
    sinceNew = 0;
  }
  return out;
}
