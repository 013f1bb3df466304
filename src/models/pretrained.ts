// Whole models on disk: a Hugging Face directory (config.json + safetensors + tokenizer.json) in, a model of
// its family (DenseModel for Llama/Qwen2, DeepSeekModel for DeepseekV3ForCausalLM) and its Tokenizer out, and
// back. Tensor names are already Hugging Face's (Module registers them so), so
// loading is a check of the directory followed by Module.loadState, with no renaming table.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parameterArrays } from '../io/checkpoint.ts';
import { CONFIG_FILE, loadHfModel, saveHfModel, type ModelConfig } from '../io/hf.ts';
import type { TensorMap } from '../io/safetensors.ts';
import type { LayerKvCache } from '../nn/attention.ts';
import type { Module } from '../nn/module.ts';
import type { MoeLoadStats } from '../nn/moe.ts';
import type { CacheFormat, Tensor } from '../tensor/index.ts';
import { Tokenizer, type TokenizerFiles } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { DeepSeekModel } from './deepseek.ts';
import { DenseModel, type ForwardOptions } from './dense.ts';

/**
 * What sampling, training and the commands need of a causal language model, whatever its family: both
 * DenseModel and DeepSeekModel are one.
 */
export interface CausalLM extends Module {
  readonly config: ModelConfig;
  /** Logits [B, T, V]. */
  forward(ids: Tensor, options?: ForwardOptions): Tensor;
  /** Logits of the last position [B, V]. */
  lastLogits(ids: Tensor, options?: ForwardOptions): Tensor;
  /** Final hidden states [B, T, C]. */
  hidden(ids: Tensor, options?: ForwardOptions): Tensor;
  /** The training loss (next-token cross-entropy plus whatever the family adds, e.g. MTP). */
  loss(ids: Tensor, targets: Tensor): Tensor;
  /**
   * Per-layer KV caches for `batch` sequences of up to `capacity` positions (latent caches for MLA); a 'bf16'
   * format is for CUDA decode steps of dense models (LayerKvCache.format), which the sampling engine checks.
   */
  newCache(batch: number, capacity: number, format?: CacheFormat): LayerKvCache[];
  /**
   * Called by trainers after each optimizer step (DeepSeekMoE's bias balancing); absent when nothing is due.
   * Returns the step's expert-load statistics of each MoE layer, in layer order, for the metrics.
   */
  afterStep?(): MoeLoadStats[];
}

/** A freshly initialised model of the config's family; seed null leaves the weights unset (WeightInit). */
export function createModel(config: ModelConfig, seed: number | null = 0): CausalLM {
  return config.family === 'deepseek' ? new DeepSeekModel(config, seed) : new DenseModel(config, seed);
}

/** A model of the config's family holding `tensors` (checked by name and shape; `source` names them in errors). */
export function modelFromTensors(config: ModelConfig, tensors: TensorMap, source: string): CausalLM {
  const model = createModel(config, null);
  model.loadState(tensors, source);
  return model;
}

const TOKENIZER_FILE = 'tokenizer.json';

export interface LoadedModel {
  model: CausalLM;
  tokenizer: Tokenizer;
  /**
   * Every end-of-sequence id config.json names (Llama-3-Instruct lists several; DenseConfig.eosTokenId keeps
   * only the first). Pass them as stopTokenIds to generate() to stop where the model was trained to stop.
   */
  eosTokenIds: number[];
}

/** Loads a Hugging Face model directory of the Llama, Qwen2 or DeepSeek-V3 family (config.json's architectures). */
export async function loadModel(dir: string): Promise<LoadedModel> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`${dir}: no such model folder`);
  if (!existsSync(join(dir, CONFIG_FILE))) throw new UserError(`${dir}: no ${CONFIG_FILE} (a model folder holds config.json, *.safetensors and tokenizer.json)`);
  if (!existsSync(join(dir, TOKENIZER_FILE))) throw new UserError(`${dir}: no ${TOKENIZER_FILE} (a model folder holds config.json, *.safetensors and tokenizer.json)`);
  const { config, eosTokenIds, tensors } = await loadHfModel(dir);
  const tokenizer = Tokenizer.fromFile(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new UserError(`${join(dir, TOKENIZER_FILE)}: ${tokenizer.vocabSize} token ids, more than vocab_size ${config.vocabSize} in ${join(dir, CONFIG_FILE)}`);
  }
  const model = modelFromTensors(config, tensors, dir);
  const eosIds = [...eosTokenIds];
  if (tokenizer.eosTokenId !== null && !eosIds.includes(tokenizer.eosTokenId)) eosIds.push(tokenizer.eosTokenId);
  return { model, tokenizer, eosTokenIds: eosIds };
}

export interface SaveModelOptions {
  /** Weight dtype on disk (default F32; BF16 halves the files, rounding to nearest even). */
  dtype?: 'F32' | 'BF16';
  /** The tokenizer files to write, when not the tokenizer's own (SFT writes its config with the chat template it trained with). */
  tokenizerFiles?: TokenizerFiles;
}

/**
 * Writes `model` and `tokenizer` as a Hugging Face directory that transformers opens (AutoModelForCausalLM,
 * AutoTokenizer), with the tokenizer's files (tokenizer.json and tokenizer_config.json) as it was built from.
 */
export async function saveModel(model: CausalLM, tokenizer: Tokenizer, dir: string, options: SaveModelOptions = {}): Promise<void> {
  if (tokenizer.vocabSize > model.config.vocabSize) {
    throw new UserError(`saveModel: the tokenizer has ${tokenizer.vocabSize} ids, more than the model's vocabulary of ${model.config.vocabSize}`);
  }
  const tensors = parameterArrays(model.namedParameters(), options.dtype);
  const files = options.tokenizerFiles ?? tokenizer.files;
  await saveHfModel(dir, { config: model.config, tensors }, { tokenizerJson: files.json, tokenizerConfig: files.config });
}
