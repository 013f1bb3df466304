// Whole-model save and load: a saved model loads back with identical logits and tokenizer, and a folder
// missing a piece fails with a message naming the file or tensor.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { loadModel, saveModel, type CausalLM } from '../../src/models/pretrained.ts';
import { noGrad, tensor } from '../../src/tensor/index.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { saveTrainedBpe } from '../../src/tokenizer/train.ts';
import { UserError } from '../../src/util/errors.ts';
import { tinyBpe, tinyModel } from '../generate/fixtures.ts';

const root = mkdtempSync(join(tmpdir(), 'r1ts-pretrained-'));
after(() => rmSync(root, { recursive: true, force: true }));

async function diskTokenizer(): Promise<Tokenizer> {
  const dir = join(root, 'tokenizer');
  await saveTrainedBpe(dir, tinyBpe());
  return Tokenizer.fromFile(dir);
}

const IDS = [5, 17, 280, 3, 99, 150, 7];
const logitsOf = (model: CausalLM) => noGrad(() => model.forward(tensor(IDS, [1, IDS.length], 'i32'))).toArray();

async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (e: Error) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${e.name}: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('saveModel / loadModel', () => {
  for (const [name, overrides] of [
    ['qwen2, tied embeddings', {}],
    ['llama, untied head, no q/k/v bias', { family: 'llama' as const, tieWordEmbeddings: false, attentionBias: false, eosTokenId: 295 }],
  ] as const) {
    it(`round-trips a model with identical logits (${name})`, async () => {
      const model = tinyModel(3, overrides);
      const tokenizer = await diskTokenizer();
      const dir = join(root, name.replace(/\W+/g, '-'));
      await saveModel(model, tokenizer, dir);
      const loaded = await loadModel(dir);
      assert.deepEqual(loaded.model.config, model.config);
      assert.deepEqual(logitsOf(loaded.model), logitsOf(model));
      assert.deepEqual(loaded.model.namedParameters().map(([n]) => n), model.namedParameters().map(([n]) => n));
      assert.deepEqual(loaded.tokenizer.encode('the cat sat'), tokenizer.encode('the cat sat'));
      assert.equal(loaded.tokenizer.eosTokenId, tokenizer.eosTokenId);
      assert.ok(loaded.eosTokenIds.includes(tokenizer.eosTokenId!));
    });
  }

  it('saves bf16 weights that load back within bf16 rounding', async () => {
    const model = tinyModel(4);
    const dir = join(root, 'bf16');
    await saveModel(model, await diskTokenizer(), dir, { dtype: 'BF16' });
    const loaded = await loadModel(dir);
    const [a, b] = [logitsOf(loaded.model), logitsOf(model)];
    // bf16 keeps 8 significant bits (relative error <= 2^-9 per weight); logits of size ~5 move by ~0.1 at most here.
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(worst > 0 && worst < 0.25, `max |diff| ${worst}`);
  });

  describe('names what is missing', () => {
    const saved = join(root, 'complete');
    const copyWithout = async (what: string): Promise<string> => {
      const dir = join(root, `without-${what.replace(/\W+/g, '-')}`);
      await saveModel(tinyModel(5), await diskTokenizer(), dir);
      rmSync(join(dir, what));
      return dir;
    };

    it('a folder that does not exist', async () => {
      await rejects(loadModel(join(root, 'nowhere')), /nowhere: no such model folder/);
    });

    it('config.json', async () => {
      const dir = await copyWithout('config.json');
      await rejects(loadModel(dir), new RegExp(`${dir}: no config\\.json`));
    });

    it('tokenizer.json', async () => {
      const dir = await copyWithout('tokenizer.json');
      await rejects(loadModel(dir), new RegExp(`${dir}: no tokenizer\\.json`));
    });

    it('the weights', async () => {
      const dir = await copyWithout('model.safetensors');
      await rejects(loadModel(dir), /no model\.safetensors or model\.safetensors\.index\.json/);
    });

    it('one tensor', async () => {
      await saveModel(tinyModel(5), await diskTokenizer(), saved);
      const file = join(saved, 'model.safetensors');
      const { tensors, metadata } = await readSafetensors(file);
      tensors.delete('model.layers.1.mlp.up_proj.weight');
      await writeSafetensors(file, tensors, metadata);
      await rejects(loadModel(saved), /tensor "model\.layers\.1\.mlp\.up_proj\.weight" is missing \(expected shape \[64, 32\]/);
    });
  });

  it('saves a tokenizer built in memory (no file behind it) with the files it was built from', async () => {
    const bpe = tinyBpe();
    const inMemory = Tokenizer.fromJson(bpe.tokenizerJson, bpe.tokenizerConfig, { tokenizerFile: join(root, 'not-written.json'), configFile: null });
    const dir = join(root, 'in-memory');
    await saveModel(tinyModel(1), inMemory, dir);
    const { tokenizer } = await loadModel(dir);
    const text = 'the cat sat on 12 mats';
    assert.deepEqual(tokenizer.encode(text), inMemory.encode(text));
    assert.equal(tokenizer.eosTokenId, inMemory.eosTokenId);
  });
});
