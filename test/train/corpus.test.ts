import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BILINGUAL_WORDS, dictionaryDocument, readCorpusFile, syntheticCorpus } from '../../src/train/corpus.ts';
import { Rng } from '../../src/tensor/random.ts';

test('the synthetic corpus is the same for a seed, different for another, and mixes document kinds', () => {
  const a = syntheticCorpus(7, 300);
  assert.deepEqual(syntheticCorpus(7, 300), a);
  assert.notDeepEqual(syntheticCorpus(8, 300), a);
  const joined = a.join('\n');
  for (const marker of [' is a', 'Q: ', ' plus ', ' = ', 'The end.|It was a good day', 'is known for its']) {
    assert.match(joined, new RegExp(marker), `no document has ${marker}`);
  }
});

test('the synthetic corpus states every fact the same way everywhere (a model can learn it)', () => {
  const docs = syntheticCorpus(3, 2000);
  const home = new Map<string, string>();
  const colour = new Map<string, string>();
  for (const doc of docs) {
    for (const [, name, town] of doc.matchAll(/([A-Z][a-z]+ [A-Z][a-z]+) is an? [a-z]+ from ([A-Z][a-z]+)\./g)) {
      assert.equal(home.get(name) ?? town, town, `${name} lives in two towns`);
      home.set(name, town);
    }
    for (const [, name, c] of doc.matchAll(/What is the favourite colour of ([A-Z][a-z]+)\? A: \w+ favourite colour is (\w+)\./g)) {
      assert.equal(colour.get(name) ?? c, c, `${name} has two favourite colours`);
      colour.set(name, c);
    }
  }
  assert.ok(home.size > 10 && colour.size > 10);
});

test('corpus files: .txt is one document, .jsonl one per line; errors name the file and the line or byte offset', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1-corpus-'));
  const txt = join(dir, 'a.txt');
  writeFileSync(txt, 'first line\n\nsecond paragraph\n');
  assert.deepEqual(readCorpusFile(txt), ['first line\n\nsecond paragraph\n']);

  const jsonl = join(dir, 'b.jsonl');
  writeFileSync(jsonl, '{"text": "one"}\n\n{"text": "two"}\n');
  assert.deepEqual(readCorpusFile(jsonl), ['one', 'two']);

  writeFileSync(jsonl, '{"text": "one"}\n{"text": "two"\n');
  assert.throws(() => readCorpusFile(jsonl), (e: Error) => e.name === 'UserError' && e.message.startsWith(`${jsonl}:2:`));
  writeFileSync(jsonl, '{"text": "one"}\n{"body": "two"}\n');
  assert.throws(() => readCorpusFile(jsonl), new RegExp(`${jsonl}:2: no "text" field`));

  const bad = join(dir, 'bad.txt');
  writeFileSync(bad, Buffer.concat([Buffer.from('ok\nstill ok '), Buffer.from([0xc3, 0x28]), Buffer.from(' rest')]));
  assert.throws(() => readCorpusFile(bad), new RegExp(`${bad}: invalid UTF-8 at byte offset 12 \\(line 2\\)`));

  writeFileSync(join(dir, 'empty.txt'), '');
  assert.throws(() => readCorpusFile(join(dir, 'empty.txt')), /empty\.txt: corpus is empty/);
  assert.throws(() => readCorpusFile(join(dir, 'c.csv')), /c\.csv: corpus must be a \.txt or \.jsonl file/);
});

test('dictionary pages state only the bilingual word list, in both directions', () => {
  const pairs = new Map(BILINGUAL_WORDS.map(([en, zh]) => [en, zh]));
  assert.equal(new Set(BILINGUAL_WORDS.map(([, zh]) => zh)).size, BILINGUAL_WORDS.length, 'no Chinese word stands for two English ones');
  const rng = new Rng(2);
  let both = 0;
  for (let i = 0; i < 200; i++) {
    const page = dictionaryDocument(rng);
    for (const m of page.matchAll(/(?:The Chinese for |In Chinese, )?([a-z]+)(?: = | is )(\p{Script=Han}+)\.|(\p{Script=Han}+) means ([a-z]+)\./gu)) {
      const [en, zh] = m[1] !== undefined ? [m[1], m[2]] : [m[4], m[3]];
      assert.equal(pairs.get(en), zh, m[0]);
      if (m[3] !== undefined) both++;
    }
  }
  assert.ok(both > 0, 'pages also go from Chinese to English');
});
