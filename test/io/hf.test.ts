import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  expectedTensorShapes, hfConfigJson, loadHfModel, loadHfWeights, parseHfConfig, readHfConfig, saveHfModel,
} from '../../src/io/hf.ts';
import { elementCount, fromFloat32, readSafetensors, writeSafetensors, type TensorMap } from '../../src/io/safetensors.ts';
import type { DenseConfig } from '../../src/models/dense.ts';
import { UserError } from '../../src/util/errors.ts';
import { randomWeights, tinyConfig, withTempDir } from './fixtures/tiny.ts';

// config.json of Qwen/Qwen2.5-0.5B as published on the Hub (written from its known fields).
const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  use_mrope: false,
  use_sliding_window: false,
  vocab_size: 151936,
};

// config.json of meta-llama/Llama-3.2-1B-Instruct (the base model lists one eos id, the instruct model three).
const LLAMA32_1B_INSTRUCT = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};

const parameterCount = (config: DenseConfig) => [...expectedTensorShapes(config).values()].reduce((sum, shape) => sum + elementCount(shape), 0);

test('Qwen2.5-0.5B config.json parses to its DenseConfig, and its tensor list has its 494,032,768 parameters', () => {
  const { config, torchDtype, eosTokenIds } = parseHfConfig(QWEN25_05B, 'qwen/config.json');
  assert.deepEqual(config, {
    family: 'qwen2', vocabSize: 151936, hiddenSize: 896, intermediateSize: 4864, numLayers: 24, numHeads: 14,
    numKvHeads: 2, headDim: 64, maxPositionEmbeddings: 32768, ropeTheta: 1e6, ropeScaling: null, rmsNormEps: 1e-6,
    tieWordEmbeddings: true, attentionBias: true, bosTokenId: 151643, eosTokenId: 151643,
  } satisfies DenseConfig);
  assert.equal(torchDtype, 'bfloat16');
  assert.deepEqual(eosTokenIds, [151643]);
  const shapes = expectedTensorShapes(config);
  assert.equal(shapes.size, 24 * 12 + 2); // 7 matrices, 3 biases, 2 norms per layer; embeddings, final norm; lm_head tied
  assert.deepEqual(shapes.get('model.layers.23.self_attn.k_proj.weight'), [128, 896]);
  assert.deepEqual(shapes.get('model.layers.0.self_attn.q_proj.bias'), [896]);
  assert.equal(shapes.has('lm_head.weight'), false);
  assert.equal(parameterCount(config), 494_032_768); // the Hub's parameter count for Qwen2.5-0.5B
});

test('Llama-3.2-1B-Instruct config.json parses with llama3 RoPE scaling and the first of its eos ids', () => {
  const { config, eosTokenIds } = parseHfConfig(LLAMA32_1B_INSTRUCT, 'llama/config.json');
  assert.deepEqual(config, {
    family: 'llama', vocabSize: 128256, hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32,
    numKvHeads: 8, headDim: 64, maxPositionEmbeddings: 131072, ropeTheta: 500000,
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    rmsNormEps: 1e-5, tieWordEmbeddings: true, attentionBias: false, bosTokenId: 128000, eosTokenId: 128001,
  } satisfies DenseConfig);
  assert.deepEqual(eosTokenIds, [128001, 128008, 128009]);
  assert.equal(parameterCount(config), 1_235_814_400); // Llama-3.2-1B's 1.23B parameters
  assert.equal(expectedTensorShapes(config).has('model.layers.0.self_attn.q_proj.bias'), false);
});

test('absent optional fields take transformers defaults', () => {
  const base = { architectures: ['LlamaForCausalLM'], vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 8 };
  const { config } = parseHfConfig(base, 'c.json');
  assert.equal(config.numKvHeads, 8); // LlamaConfig: num_attention_heads
  assert.equal(config.headDim, 8); // hidden / heads
  assert.equal(config.ropeTheta, 10000);
  assert.equal(config.maxPositionEmbeddings, 2048);
  assert.equal(config.rmsNormEps, 1e-6);
  assert.equal(config.tieWordEmbeddings, false);
  assert.equal(config.attentionBias, false);
  assert.deepEqual([config.bosTokenId, config.eosTokenId], [1, 2]);
  // Qwen2Config's num_key_value_heads default is 32, not num_attention_heads; its bos/eos have no default.
  const qwen = parseHfConfig({ ...base, architectures: ['Qwen2ForCausalLM'], num_attention_heads: 64, hidden_size: 256 }, 'c.json').config;
  assert.equal(qwen.numKvHeads, 32);
  assert.equal(qwen.maxPositionEmbeddings, 32768);
  assert.deepEqual([qwen.bosTokenId, qwen.eosTokenId], [null, null]);
  // model_type alone is enough; an explicit null counts as absent.
  const byType = parseHfConfig({ ...base, architectures: undefined, model_type: 'qwen2', num_key_value_heads: null }, 'c.json').config;
  assert.equal(byType.family, 'qwen2');
  assert.equal(byType.numKvHeads, 8);
});

test('transformers 5 style rope_parameters and dtype are read', () => {
  const v5 = { ...LLAMA32_1B_INSTRUCT, rope_scaling: undefined, rope_theta: undefined, torch_dtype: undefined, dtype: 'float32',
    rope_parameters: { rope_theta: 500000.0, rope_type: 'linear', factor: 2.0 } };
  const { config, torchDtype } = parseHfConfig(v5, 'c.json');
  assert.equal(config.ropeTheta, 500000);
  assert.deepEqual(config.ropeScaling, { type: 'linear', factor: 2 });
  assert.equal(torchDtype, 'float32');
  const legacy = parseHfConfig({ ...LLAMA32_1B_INSTRUCT, rope_scaling: { type: 'linear', factor: 4 } }, 'c.json');
  assert.deepEqual(legacy.config.ropeScaling, { type: 'linear', factor: 4 });
  assert.equal(parseHfConfig({ ...LLAMA32_1B_INSTRUCT, rope_scaling: { rope_type: 'default' } }, 'c.json').config.ropeScaling, null);
});

const BAD_CONFIGS: [string, Record<string, unknown>, RegExp][] = [
  ['a missing required field', { ...QWEN25_05B, hidden_size: undefined }, /missing required field "hidden_size"/],
  ['a wrongly typed field', { ...QWEN25_05B, num_hidden_layers: '24' }, /field "num_hidden_layers" must be a positive integer, found "24"/],
  ['a zero dimension', { ...QWEN25_05B, vocab_size: 0 }, /field "vocab_size" must be a positive integer, found 0/],
  ['a non-boolean flag', { ...QWEN25_05B, tie_word_embeddings: 'yes' }, /field "tie_word_embeddings" must be true or false/],
  ['a bad eos id', { ...QWEN25_05B, eos_token_id: [1, -2] }, /field "eos_token_id" must be a token id or a list of token ids/],
  ['hidden size not divisible by heads', { ...QWEN25_05B, hidden_size: 900 }, /field "hidden_size" \(900\) is not divisible by "num_attention_heads" \(14\), and no "head_dim" is given/],
  ['heads not a multiple of kv heads', { ...QWEN25_05B, num_key_value_heads: 4 }, /field "num_attention_heads" \(14\) is not a multiple of "num_key_value_heads" \(4\)/],
  ['an unsupported architecture', { ...QWEN25_05B, architectures: ['MistralForCausalLM'], model_type: 'mistral' }, /unsupported architecture MistralForCausalLM in field "architectures" \(supported: LlamaForCausalLM, Qwen2ForCausalLM, DeepseekV3ForCausalLM\)/],
  ['model_type disagreeing with architectures', { ...QWEN25_05B, model_type: 'llama' }, /field "model_type" is "llama" but "architectures" names Qwen2ForCausalLM/],
  ['no architecture at all', { ...QWEN25_05B, architectures: undefined, model_type: undefined }, /missing required field "architectures"/],
  ['an unsupported rope kind', { ...QWEN25_05B, rope_scaling: { type: 'dynamic', factor: 4.0 } }, /field "rope_scaling" has rope type "dynamic", which is not supported \(supported: default, linear, llama3, yarn\)/],
  ['a YaRN factor that is not a number', { ...QWEN25_05B, rope_scaling: { type: 'yarn', factor: '4' } }, /field "rope_scaling.factor" must be a positive number, found "4"/],
  ['a YaRN truncate that is not a boolean', { ...QWEN25_05B, rope_scaling: { type: 'yarn', factor: 4, truncate: 1 } }, /field "rope_scaling.truncate" must be true or false, found 1/],
  ['a llama3 rope without its factors', { ...LLAMA32_1B_INSTRUCT, rope_scaling: { rope_type: 'llama3', factor: 8 } }, /field "rope_scaling.low_freq_factor" must be a positive number, found undefined/],
  ['another activation', { ...LLAMA32_1B_INSTRUCT, hidden_act: 'gelu' }, /field "hidden_act" is "gelu", but only "silu" is supported/],
  ['MLP bias', { ...LLAMA32_1B_INSTRUCT, mlp_bias: true }, /field "mlp_bias" is true, but only false is supported/],
  ['sliding-window attention', { ...QWEN25_05B, use_sliding_window: true }, /field "use_sliding_window" is true/],
  ['sliding-window layers (transformers 5)', { ...QWEN25_05B, layer_types: ['full_attention', 'sliding_attention'] }, /field "layer_types" is \["full_attention","sliding_attention"\], but only "full_attention" layers are supported/],
];

for (const [problem, json, message] of BAD_CONFIGS) {
  test(`config.json with ${problem} is a UserError naming the file and field`, () => {
    assert.throws(() => parseHfConfig(json, '/models/x/config.json'), (e: unknown) => e instanceof UserError && e.message.startsWith('/models/x/config.json: ') && message.test(e.message));
  });
}

test("Qwen2.5's YaRN block (its model card's long-context setting) parses with transformers' defaults filled in", () => {
  const { config } = parseHfConfig({ ...QWEN25_05B, rope_scaling: { factor: 4.0, original_max_position_embeddings: 32768, type: 'yarn' } }, 'c.json');
  assert.deepEqual(config.ropeScaling, {
    type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32768, betaFast: 32, betaSlow: 1, mscale: 0, mscaleAllDim: 0, attentionFactor: null, truncate: true,
  });
  // Without a factor or an original context, transformers takes max_position_embeddings for the original and 1 for the factor.
  const bare = parseHfConfig({ ...QWEN25_05B, rope_parameters: { rope_type: 'yarn', rope_theta: 1e6 } }, 'c.json').config.ropeScaling;
  assert.deepEqual(bare && bare.type === 'yarn' && [bare.factor, bare.originalMaxPositionEmbeddings], [1, 32768]);
});

test('config.json written for a DenseConfig parses back to it, for both families and every RoPE scaling', () => {
  const configs: DenseConfig[] = [
    parseHfConfig(QWEN25_05B, 'q').config,
    parseHfConfig(LLAMA32_1B_INSTRUCT, 'l').config,
    tinyConfig('qwen2', { ropeScaling: { type: 'yarn', factor: 8, originalMaxPositionEmbeddings: 16, betaFast: 16, betaSlow: 2, mscale: 0.7, mscaleAllDim: 0, attentionFactor: 1.2, truncate: false } }),
    tinyConfig('llama', { ropeScaling: { type: 'linear', factor: 2 }, attentionBias: true, bosTokenId: null, eosTokenId: null }),
  ];
  for (const config of configs) {
    const json = JSON.parse(JSON.stringify(hfConfigJson(config, { torchDtype: 'bfloat16' })));
    const parsed = parseHfConfig(json, 'roundtrip');
    assert.deepEqual(parsed.config, config);
    assert.equal(parsed.torchDtype, 'bfloat16');
  }
  const llama = hfConfigJson(parseHfConfig(LLAMA32_1B_INSTRUCT, 'l').config, { eosTokenIds: [128001, 128008, 128009] });
  assert.deepEqual(llama.eos_token_id, [128001, 128008, 128009]);
  assert.deepEqual(llama.rope_scaling, LLAMA32_1B_INSTRUCT.rope_scaling);
  assert.throws(() => hfConfigJson(tinyConfig('qwen2', { attentionBias: false })), /Qwen2 always has q\/k\/v bias/);
});

async function assertSameTensors(actual: TensorMap, expected: TensorMap): Promise<void> {
  assert.deepEqual([...actual.keys()], [...expected.keys()]);
  for (const [name, array] of expected) {
    const got = actual.get(name)!;
    assert.equal(got.dtype, array.dtype, name);
    assert.deepEqual(got.shape, array.shape, name);
    assert.deepEqual(Buffer.from(got.data), Buffer.from(array.data), name);
  }
}

test('a saved model directory loads back identically, in one file or in shards', async () => {
  await withTempDir(async (dir) => {
    for (const family of ['llama', 'qwen2'] as const) {
      const config = tinyConfig(family);
      const tensors = randomWeights(config, 'BF16');
      const single = join(dir, `${family}-single`);
      await saveHfModel(single, { config, tensors, eosTokenIds: [2, 5] });
      assert.deepEqual((await readdir(single)).sort(), ['config.json', 'generation_config.json', 'model.safetensors']);
      const loaded = await loadHfModel(single);
      assert.deepEqual(loaded.config, config);
      assert.equal(loaded.torchDtype, 'bfloat16');
      assert.deepEqual(loaded.eosTokenIds, [2, 5]);
      await assertSameTensors(loaded.tensors, tensors);
      const generation = JSON.parse(await readFile(join(single, 'generation_config.json'), 'utf8'));
      assert.deepEqual(generation, { _from_model_config: true, bos_token_id: 1, eos_token_id: [2, 5] });
      const { metadata } = await readSafetensors(join(single, 'model.safetensors'));
      assert.deepEqual(metadata, { format: 'pt' }); // transformers refuses files without a known format

      const sharded = join(dir, `${family}-sharded`);
      await saveHfModel(sharded, { config, tensors }, { maxShardBytes: 3000 });
      const files = (await readdir(sharded)).filter((f) => f.endsWith('.safetensors')).sort();
      assert.ok(files.length > 2);
      assert.deepEqual(files, files.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(files.length).padStart(5, '0')}.safetensors`));
      const index = JSON.parse(await readFile(join(sharded, 'model.safetensors.index.json'), 'utf8'));
      assert.deepEqual(Object.keys(index.weight_map), [...tensors.keys()].sort());
      assert.equal(index.metadata.total_size, [...tensors.values()].reduce((sum, a) => sum + a.data.byteLength, 0));
      await assertSameTensors((await loadHfModel(sharded)).tensors, tensors);

      // Saving the same folder again as one file removes the shards and the index.
      await saveHfModel(sharded, { config, tensors });
      assert.deepEqual((await readdir(sharded)).sort(), ['config.json', 'generation_config.json', 'model.safetensors']);
    }
  });
});

test('tokenizer files are copied from a folder or written from content', async () => {
  await withTempDir(async (dir) => {
    const config = tinyConfig('qwen2');
    const tensors = randomWeights(config, 'F32');
    const source = join(dir, 'source');
    await mkdir(source);
    await writeFile(join(source, 'tokenizer.json'), '{"model":{"type":"BPE"}}');
    await writeFile(join(source, 'tokenizer_config.json'), '{"eos_token":"<|endoftext|>"}');
    await saveHfModel(join(dir, 'copied'), { config, tensors }, { tokenizerFrom: source });
    assert.equal(await readFile(join(dir, 'copied', 'tokenizer.json'), 'utf8'), '{"model":{"type":"BPE"}}');
    assert.equal(await readFile(join(dir, 'copied', 'tokenizer_config.json'), 'utf8'), '{"eos_token":"<|endoftext|>"}');
    await saveHfModel(join(dir, 'written'), { config, tensors }, { tokenizerJson: { model: { type: 'BPE' } }, tokenizerConfig: { eos_token: '</s>' } });
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'written', 'tokenizer.json'), 'utf8')), { model: { type: 'BPE' } });
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'written', 'tokenizer_config.json'), 'utf8')), { eos_token: '</s>' });
    await assert.rejects(saveHfModel(join(dir, 'none'), { config, tensors }, { tokenizerFrom: join(dir, 'missing') }), /missing: no tokenizer.json to copy/);
  });
});

/** Write a checkpoint folder holding exactly `tensors` (bypassing saveHfModel's own checks). */
async function writeCheckpoint(dir: string, config: DenseConfig, tensors: TensorMap): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(hfConfigJson(config)));
  const file = join(dir, 'model.safetensors');
  await writeSafetensors(file, tensors, { format: 'pt' });
  return file;
}

test('loadHfWeights names the tensor, the file and both shapes when a checkpoint does not fit its config', async () => {
  await withTempDir(async (dir) => {
    const config = tinyConfig('llama');
    const good = randomWeights(config, 'F32');

    const missing = new Map(good);
    missing.delete('model.layers.1.mlp.up_proj.weight');
    let file = await writeCheckpoint(join(dir, 'missing'), config, missing);
    await assert.rejects(loadHfWeights(join(dir, 'missing'), config),
      (e: unknown) => e instanceof UserError && e.message === `${file}: tensor "model.layers.1.mlp.up_proj.weight" is missing (expected shape [40, 16] from config.json)`);

    const wrongShape = new Map(good).set('model.layers.0.self_attn.k_proj.weight', fromFloat32([16, 16], new Float32Array(256), 'F32'));
    file = await writeCheckpoint(join(dir, 'shape'), config, wrongShape);
    await assert.rejects(loadHfWeights(join(dir, 'shape'), config),
      (e: unknown) => e instanceof UserError && e.message === `${file}: tensor "model.layers.0.self_attn.k_proj.weight" has shape [16, 16], expected [8, 16] from config.json`);

    const extra = new Map(good).set('model.layers.0.self_attn.q_norm.weight', fromFloat32([4], new Float32Array(4), 'F32'));
    file = await writeCheckpoint(join(dir, 'extra'), config, extra);
    await assert.rejects(loadHfWeights(join(dir, 'extra'), config),
      (e: unknown) => e instanceof UserError && e.message.startsWith(`${file}: unexpected tensor "model.layers.0.self_attn.q_norm.weight" (shape [4])`));

    const ints = new Map(good).set('model.norm.weight', { dtype: 'I32' as const, shape: [16], data: new Uint8Array(64) });
    file = await writeCheckpoint(join(dir, 'ints'), config, ints);
    await assert.rejects(loadHfWeights(join(dir, 'ints'), config), new RegExp(`${file}: tensor "model.norm.weight" has dtype I32`));

    // Buffers transformers used to save, and an lm_head copy under tied embeddings, are dropped.
    const tied = { ...config, tieWordEmbeddings: true };
    const withBuffers = new Map(randomWeights(tied, 'F32'))
      .set('model.layers.0.self_attn.rotary_emb.inv_freq', fromFloat32([2], new Float32Array(2), 'F32'))
      .set('lm_head.weight', fromFloat32([64, 16], new Float32Array(64 * 16), 'F32'));
    await writeCheckpoint(join(dir, 'buffers'), tied, withBuffers);
    const loaded = await loadHfWeights(join(dir, 'buffers'), tied);
    assert.deepEqual([...loaded.keys()], [...expectedTensorShapes(tied).keys()]);

    await mkdir(join(dir, 'bin'));
    await writeFile(join(dir, 'bin', 'pytorch_model.bin'), '');
    await assert.rejects(loadHfWeights(join(dir, 'bin'), config), /bin: no model.safetensors or model.safetensors.index.json \(pytorch_model.bin is not read/);
  });
});

test('a shard index that disagrees with its shards is an error naming the index or the shard', async () => {
  await withTempDir(async (dir) => {
    const config = tinyConfig('qwen2');
    const tensors = randomWeights(config, 'F32');
    await saveHfModel(dir, { config, tensors }, { maxShardBytes: 3000 });
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexFile, 'utf8'));
    const normShard = index.weight_map['model.norm.weight'];
    const embedShard = index.weight_map['model.embed_tokens.weight'];
    assert.notEqual(normShard, embedShard);

    // norm's shard is still read (other tensors are listed in it) and holds a tensor the index puts elsewhere.
    const moved = structuredClone(index);
    moved.weight_map['model.norm.weight'] = embedShard;
    await writeFile(indexFile, JSON.stringify(moved));
    await assert.rejects(loadHfWeights(dir, config), (e: unknown) => e instanceof UserError && e.message === `${join(dir, normShard)}: tensor "model.norm.weight" is not listed for this file in ${indexFile}`);

    const listedNowhere = structuredClone(index);
    listedNowhere.weight_map['model.layers.9.mlp.up_proj.weight'] = embedShard;
    await writeFile(indexFile, JSON.stringify(listedNowhere));
    await assert.rejects(loadHfWeights(dir, config), (e: unknown) => e instanceof UserError && e.message === `${indexFile}: tensor "model.layers.9.mlp.up_proj.weight" is listed in ${embedShard} but that file does not hold it`);

    const escaping = structuredClone(index);
    escaping.weight_map['model.norm.weight'] = '../elsewhere.safetensors';
    await writeFile(indexFile, JSON.stringify(escaping));
    await assert.rejects(loadHfWeights(dir, config), /field "weight_map.model.norm.weight" must be a file name in the same folder/);

    await writeFile(indexFile, '{"weight_map": ');
    await assert.rejects(loadHfWeights(dir, config), (e: unknown) => e instanceof UserError && e.message === `${indexFile}:1:16: not valid JSON: unexpected end of input`);
  });
});

test('readHfConfig names a missing config.json', async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(readHfConfig(dir), (e: unknown) => e instanceof UserError && e.message.startsWith(`${join(dir, 'config.json')}: cannot read (ENOENT)`));
  });
});

// Folders written by transformers 5.17's save_pretrained (test/io/fixtures/make_hf_tiny.py, run on the GPU
// machine): config.json in the transformers 5 style (rope_parameters, dtype, layer_types), one file or shards.
const HF_TINY = fileURLToPath(new URL('./fixtures/hf-tiny', import.meta.url));

test('folders saved by transformers load with the DenseConfig and tensors transformers meant', async () => {
  const folders = await readdir(HF_TINY);
  assert.deepEqual(folders.sort(), ['llama', 'llama-yarn', 'llama3-rope', 'qwen2', 'qwen2-sharded']);
  for (const folder of folders) {
    const dir = join(HF_TINY, folder);
    const expected = JSON.parse(await readFile(join(dir, 'expected.json'), 'utf8'));
    const model = await loadHfModel(dir);
    assert.deepEqual(model.config, expected.config, folder);
    assert.deepEqual(model.eosTokenIds, expected.eosTokenIds, folder);
    assert.equal(model.torchDtype, 'bfloat16');
    assert.deepEqual([...model.tensors.keys()].sort(), expected.tensorNames, folder);
    for (const array of model.tensors.values()) assert.equal(array.dtype, 'BF16');

    // Saved again by us and read back: the same bytes (transformers opening these re-saved folders and
    // computing the same logits was checked with make_hf_tiny.py --load on resave_hf_tiny.ts's output).
    await withTempDir(async (out) => {
      await saveHfModel(out, model);
      const again = await loadHfModel(out);
      assert.deepEqual(again.config, model.config);
      await assertSameTensors(again.tensors, model.tensors);
    });
  }
});
