// Hugging Face model directories of the Llama, Qwen2 and DeepSeek-V3 families, read and written so that a model trained
// here opens in `transformers` and one from there trains here (DESIGN.md, "Formats users already have").
//
// A directory holds config.json (field names of transformers' LlamaConfig / Qwen2Config / DeepseekV3Config), optionally
// generation_config.json, the weights as model.safetensors or as shards model-0000i-of-0000n.safetensors
// listed in model.safetensors.index.json, and the tokenizer files.

import { access, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { validateDeepSeekConfig, type DeepSeekConfig } from '../models/deepseek.ts';
import type { DenseConfig, RopeScaling } from '../models/dense.ts';
import { UserError } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from './atomic.ts';
import { readJsonFile } from './json-file.ts';
import {
  readSafetensors, readSafetensorsHeader, writeSafetensors,
  type Dtype, type TensorInfo, type TensorMap,
} from './safetensors.ts';

type Family = DenseConfig['family'];

/** A model configuration of any family we read and write. */
export type ModelConfig = DenseConfig | DeepSeekConfig;

/** The families we read and write, with the names transformers gives them. */
const FAMILIES: Record<Family, { architecture: string; modelType: string }> = {
  llama: { architecture: 'LlamaForCausalLM', modelType: 'llama' },
  qwen2: { architecture: 'Qwen2ForCausalLM', modelType: 'qwen2' },
};
const DEEPSEEK = { architecture: 'DeepseekV3ForCausalLM', modelType: 'deepseek_v3' };
const architectureOf = (config: ModelConfig): string => (config.family === 'deepseek' ? DEEPSEEK.architecture : FAMILIES[config.family].architecture);

/**
 * transformers' sequence-classification class of a family (LlamaForSequenceClassification, ...): the same
 * backbone under `model.`, plus a bias-free `score` Linear [num_labels, hidden] read at the last non-padding
 * token. With num_labels 1 it is a scalar reward model, the layout TRL's RewardTrainer writes (src/models/reward-model.ts).
 */
export const CLASSIFIER_SUFFIX = 'ForSequenceClassification';
export const classifierArchitecture = (causal: string): string => causal.replace(/ForCausalLM$/, CLASSIFIER_SUFFIX);
export const sequenceClassifierArchitectureOf = (config: ModelConfig): string => classifierArchitecture(architectureOf(config));
/** Whether an architectures list names a causal LM class or its sequence-classification twin. */
const namesArchitecture = (names: readonly unknown[], causal: string): boolean => names.includes(causal) || names.includes(classifierArchitecture(causal));

const SUPPORTED_ARCHITECTURES = [...Object.values(FAMILIES), DEEPSEEK].map((f) => f.architecture).join(', ');

export const CONFIG_FILE = 'config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';
export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
/** Tokenizer files copied along with a model when present (chat_template.jinja: newer transformers). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

/** What config.json says beyond DenseConfig, needed to write it back faithfully or to stop generation. */
export interface HfConfigExtras {
  /** `torch_dtype` (transformers < 4.56) or `dtype`: the dtype the weights are meant to run in, e.g. "bfloat16". */
  torchDtype: string | null;
  /**
   * Every end-of-sequence id. config.json may list several (Llama-3.2-Instruct: 128001, 128008, 128009, where
   * 128009 is <|eot_id|>, which ends a chat turn); DenseConfig.eosTokenId keeps the first, and a sampler's stop
   * rule should use all of these.
   */
  eosTokenIds: number[];
}

export interface HfModel extends HfConfigExtras {
  config: ModelConfig;
  tensors: TensorMap;
}

// ---------------------------------------------------------------------------------------------------------
// config.json

/** Reads typed fields out of a parsed config.json, naming the file and the field in every error. */
class ConfigFields {
  constructor(private readonly raw: Record<string, unknown>, private readonly file: string) {}

  private fail(field: string, expected: string, value: unknown): never {
    throw new UserError(`${this.file}: field "${field}" must be ${expected}, found ${JSON.stringify(value)}`);
  }

  /** The value, or undefined when absent or null (transformers treats null as "use the default"). */
  get(field: string): unknown {
    const value = this.raw[field];
    return value === null ? undefined : value;
  }

  has(field: string): boolean {
    return this.get(field) !== undefined;
  }

  required(field: string): unknown {
    const value = this.get(field);
    if (value === undefined) throw new UserError(`${this.file}: missing required field "${field}"`);
    return value;
  }

  positiveInt(field: string, fallback?: number): number {
    const value = fallback === undefined ? this.required(field) : this.get(field) ?? fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) this.fail(field, 'a positive integer', value);
    return value as number;
  }

  positiveNumber(field: string, fallback: number): number {
    return this.checkPositiveNumber(field, this.get(field) ?? fallback);
  }

  /** `field` may name a nested key ("rope_scaling.factor"); the value comes from the caller. */
  checkPositiveNumber(field: string, value: unknown): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) this.fail(field, 'a positive number', value);
    return value as number;
  }

  /** Token ids keep an explicit null: transformers passes it through as None, unlike an absent key. */
  private rawOr(field: string, fallback: number | null): unknown {
    return Object.hasOwn(this.raw, field) ? this.raw[field] : fallback;
  }

  bool(field: string, fallback: boolean): boolean {
    const value = this.get(field) ?? fallback;
    if (typeof value !== 'boolean') this.fail(field, 'true or false', value);
    return value as boolean;
  }

  tokenId(field: string, fallback: number | null): number | null {
    const value = this.rawOr(field, fallback);
    if (value !== null && !(typeof value === 'number' && Number.isSafeInteger(value) && value >= 0)) {
      this.fail(field, 'a token id (non-negative integer) or null', value);
    }
    return value as number | null;
  }

  /** `eos_token_id` may be one id or a list of ids. */
  tokenIds(field: string, fallback: number | null): number[] {
    const value = this.rawOr(field, fallback);
    if (value === null) return [];
    const ids = Array.isArray(value) ? value : [value];
    for (const id of ids) {
      if (!(typeof id === 'number' && Number.isSafeInteger(id) && id >= 0)) this.fail(field, 'a token id or a list of token ids', value);
    }
    return ids as number[];
  }

  optionalString(field: string): string | null {
    const value = this.get(field);
    if (value === undefined) return null;
    if (typeof value !== 'string') this.fail(field, 'a string', value);
    return value as string;
  }

  /** Reject a setting our dense model does not implement, rather than run a different network silently. */
  mustBe(field: string, supported: unknown, why: string): void {
    const value = this.get(field);
    if (value !== undefined && value !== supported) {
      throw new UserError(`${this.file}: field "${field}" is ${JSON.stringify(value)}, but only ${JSON.stringify(supported)} is supported (${why})`);
    }
  }
}

function familyOf(fields: ConfigFields, file: string): Family {
  const architectures = fields.get('architectures');
  const modelType = fields.optionalString('model_type');
  let family: Family | undefined;
  if (architectures !== undefined) {
    if (!Array.isArray(architectures) || !architectures.every((a) => typeof a === 'string')) {
      throw new UserError(`${file}: field "architectures" must be a list of strings, found ${JSON.stringify(architectures)}`);
    }
    family = (Object.keys(FAMILIES) as Family[]).find((f) => namesArchitecture(architectures, FAMILIES[f].architecture));
    if (family === undefined) {
      throw new UserError(`${file}: unsupported architecture ${architectures.join(', ') || '(empty list)'} in field "architectures" (supported: ${SUPPORTED_ARCHITECTURES})`);
    }
  }
  if (modelType !== null) {
    const byType = (Object.keys(FAMILIES) as Family[]).find((f) => FAMILIES[f].modelType === modelType);
    if (byType === undefined) {
      throw new UserError(`${file}: unsupported model_type "${modelType}" (supported: ${[...Object.values(FAMILIES), DEEPSEEK].map((f) => f.modelType).join(', ')})`);
    }
    if (family !== undefined && family !== byType) {
      throw new UserError(`${file}: field "model_type" is "${modelType}" but "architectures" names ${FAMILIES[family].architecture}`);
    }
    family = byType;
  }
  if (family === undefined) throw new UserError(`${file}: missing required field "architectures" (or "model_type")`);
  return family;
}

/**
 * `rope_scaling` (transformers 4.x) or `rope_parameters` (5.x, which also carries rope_theta). The kind is
 * under "rope_type" or, in older files, "type"; "default" means no scaling. `maxPositionEmbeddings` is the
 * config's, which YaRN's absent factor and original context fall back on (as transformers does).
 */
function ropeOf(fields: ConfigFields, file: string, maxPositionEmbeddings: number): { ropeTheta: number; ropeScaling: RopeScaling | null } {
  const parameters = fields.get('rope_parameters');
  const usesParameters = parameters !== undefined && !fields.has('rope_scaling');
  const field = usesParameters ? 'rope_parameters' : 'rope_scaling';
  const scaling = usesParameters ? parameters : fields.get('rope_scaling');
  let ropeTheta = fields.positiveNumber('rope_theta', 10000);
  if (scaling === undefined) return { ropeTheta, ropeScaling: null };
  if (typeof scaling !== 'object' || scaling === null || Array.isArray(scaling)) {
    throw new UserError(`${file}: field "${field}" must be an object or null, found ${JSON.stringify(scaling)}`);
  }
  const s = scaling as Record<string, unknown>;
  if (usesParameters && s.rope_theta !== undefined) ropeTheta = fields.checkPositiveNumber(`${field}.rope_theta`, s.rope_theta);
  const kind = s.rope_type ?? s.type ?? 'default';
  const number = (key: string): number => fields.checkPositiveNumber(`${field}.${key}`, s[key]);
  // transformers reads YaRN's optional numbers with `or`: absent, null and 0 all mean "use the default".
  const optional = (key: string, fallback: number): number => (s[key] === undefined || s[key] === null || s[key] === 0 ? fallback : number(key));
  switch (kind) {
    case 'default':
      return { ropeTheta, ropeScaling: null };
    case 'linear':
      return { ropeTheta, ropeScaling: { type: 'linear', factor: number('factor') } };
    case 'llama3':
      return {
        ropeTheta,
        ropeScaling: {
          type: 'llama3',
          factor: number('factor'),
          lowFreqFactor: number('low_freq_factor'),
          highFreqFactor: number('high_freq_factor'),
          originalMaxPositionEmbeddings: number('original_max_position_embeddings'),
        },
      };
    case 'yarn': {
      const original = optional('original_max_position_embeddings', maxPositionEmbeddings);
      if (s.truncate !== undefined && typeof s.truncate !== 'boolean') {
        throw new UserError(`${file}: field "${field}.truncate" must be true or false, found ${JSON.stringify(s.truncate)}`);
      }
      return {
        ropeTheta,
        ropeScaling: {
          type: 'yarn',
          factor: optional('factor', maxPositionEmbeddings / original),
          originalMaxPositionEmbeddings: original,
          betaFast: optional('beta_fast', 32),
          betaSlow: optional('beta_slow', 1),
          mscale: optional('mscale', 0),
          mscaleAllDim: optional('mscale_all_dim', 0),
          attentionFactor: s.attention_factor === undefined || s.attention_factor === null ? null : number('attention_factor'),
          truncate: (s.truncate as boolean | undefined) ?? true,
        },
      };
    }
    default:
      throw new UserError(`${file}: field "${field}" has rope type ${JSON.stringify(kind)}, which is not supported (supported: default, linear, llama3, yarn)`);
  }
}

/**
 * Turn a parsed config.json into a DenseConfig. Absent optional fields take the defaults of transformers'
 * LlamaConfig / Qwen2Config, so that a file means here what it means there.
 */
export function parseHfConfig(raw: unknown, file: string): { config: DenseConfig } & HfConfigExtras {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${file}: must hold a JSON object`);
  const fields = new ConfigFields(raw as Record<string, unknown>, file);
  const family = familyOf(fields, file);
  const isLlama = family === 'llama';

  fields.mustBe('hidden_act', 'silu', 'the MLP is SwiGLU');
  if (isLlama) fields.mustBe('mlp_bias', false, 'the MLP projections have no bias');
  else fields.mustBe('use_sliding_window', false, 'attention is full causal attention');
  // transformers 5 lists each layer's attention kind.
  const layerTypes = fields.get('layer_types');
  if (layerTypes !== undefined && !(Array.isArray(layerTypes) && layerTypes.every((t) => t === 'full_attention'))) {
    throw new UserError(`${file}: field "layer_types" is ${JSON.stringify(layerTypes)}, but only "full_attention" layers are supported`);
  }

  const hiddenSize = fields.positiveInt('hidden_size');
  const numHeads = fields.positiveInt('num_attention_heads');
  // Absent num_key_value_heads: LlamaConfig uses num_attention_heads; Qwen2Config's default is 32 (its
  // signature says num_key_value_heads=32 and only an explicit null falls back to num_attention_heads).
  const numKvHeads = isLlama || (raw as Record<string, unknown>).num_key_value_heads !== undefined
    ? fields.positiveInt('num_key_value_heads', numHeads)
    : 32;
  let headDim: number;
  if (fields.has('head_dim')) {
    headDim = fields.positiveInt('head_dim');
  } else {
    if (hiddenSize % numHeads !== 0) {
      throw new UserError(`${file}: field "hidden_size" (${hiddenSize}) is not divisible by "num_attention_heads" (${numHeads}), and no "head_dim" is given`);
    }
    headDim = hiddenSize / numHeads;
  }
  if (numHeads % numKvHeads !== 0) {
    throw new UserError(`${file}: field "num_attention_heads" (${numHeads}) is not a multiple of "num_key_value_heads" (${numKvHeads})`);
  }

  const maxPositionEmbeddings = fields.positiveInt('max_position_embeddings', isLlama ? 2048 : 32768);
  const { ropeTheta, ropeScaling } = ropeOf(fields, file, maxPositionEmbeddings);
  // Defaults from transformers: LlamaConfig has bos 1 / eos 2, Qwen2Config none (it names them in its files).
  const eosTokenIds = fields.tokenIds('eos_token_id', isLlama ? 2 : null);
  const config: DenseConfig = {
    family,
    vocabSize: fields.positiveInt('vocab_size'),
    hiddenSize,
    intermediateSize: fields.positiveInt('intermediate_size'),
    numLayers: fields.positiveInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings,
    ropeTheta,
    ropeScaling,
    rmsNormEps: fields.positiveNumber('rms_norm_eps', 1e-6),
    tieWordEmbeddings: fields.bool('tie_word_embeddings', false),
    // Qwen2Attention always builds q/k/v with bias=True; LlamaConfig makes it a setting.
    attentionBias: isLlama ? fields.bool('attention_bias', false) : true,
    bosTokenId: fields.tokenId('bos_token_id', isLlama ? 1 : null),
    // A list keeps its first id here; the full list is returned as eosTokenIds.
    eosTokenId: eosTokenIds[0] ?? null,
  };
  const torchDtype = fields.optionalString('torch_dtype') ?? fields.optionalString('dtype');
  return { config, torchDtype, eosTokenIds };
}

export async function readHfConfig(dir: string): Promise<{ config: DenseConfig } & HfConfigExtras> {
  const file = join(dir, CONFIG_FILE);
  return parseHfConfig(readJsonFile(file), file);
}

/** config.json of any family: DeepseekV3ForCausalLM (or model_type deepseek_v3), else Llama / Qwen2. */
export function parseModelConfig(raw: unknown, file: string): { config: ModelConfig } & HfConfigExtras {
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const r = raw as Record<string, unknown>;
    const names = Array.isArray(r.architectures) ? r.architectures : [];
    if (namesArchitecture(names, DEEPSEEK.architecture) || (r.architectures == null && r.model_type === DEEPSEEK.modelType)) return parseDeepSeekConfig(r, file);
  }
  return parseHfConfig(raw, file);
}

export async function readModelConfig(dir: string): Promise<{ config: ModelConfig } & HfConfigExtras> {
  const file = join(dir, CONFIG_FILE);
  return parseModelConfig(readJsonFile(file), file);
}

/**
 * DeepseekV3Config fields -> DeepSeekConfig. Absent fields take transformers' DeepseekV3Config defaults (the
 * 671B shape), except num_nextn_predict_layers (not a transformers field: the released config.json has it)
 * which defaults to 0. Settings we do not implement are refused by name rather than run differently.
 */
function parseDeepSeekConfig(raw: Record<string, unknown>, file: string): { config: DeepSeekConfig } & HfConfigExtras {
  const fields = new ConfigFields(raw, file);
  const modelType = fields.optionalString('model_type');
  if (modelType !== null && modelType !== DEEPSEEK.modelType) {
    throw new UserError(`${file}: field "model_type" is "${modelType}" but "architectures" names ${DEEPSEEK.architecture}`);
  }
  fields.mustBe('hidden_act', 'silu', 'the MLP and experts are SwiGLU');
  fields.mustBe('scoring_func', 'sigmoid', 'expert affinities are sigmoids, as in DeepSeek-V3');
  fields.mustBe('topk_method', 'noaux_tc', 'experts are chosen by affinity + bias, the auxiliary-loss-free method');
  fields.mustBe('attention_bias', false, 'the attention projections have no bias');
  fields.mustBe('moe_layer_freq', 1, 'every layer after first_k_dense_replace is an MoE layer');
  // The MLA query has num_attention_heads heads and its keys are shared per head: transformers requires equality.
  const numHeads = fields.positiveInt('num_attention_heads', 128);
  const kvHeads = fields.positiveInt('num_key_value_heads', numHeads);
  if (kvHeads !== numHeads) throw new UserError(`${file}: field "num_key_value_heads" (${kvHeads}) must equal "num_attention_heads" (${numHeads}) in multi-head latent attention`);
  const maxPositionEmbeddings = fields.positiveInt('max_position_embeddings', 4096);
  // V3 and R1 ship YaRN (factor 40 over 4096 positions); its mscale also enters the softmax scale (softmaxScale).
  const { ropeTheta, ropeScaling } = ropeOf(fields, file, maxPositionEmbeddings);
  const qLoraRank = fields.get('q_lora_rank') === undefined && Object.hasOwn(raw, 'q_lora_rank') ? null : fields.positiveInt('q_lora_rank', 1536);
  const nonNegativeInt = (field: string, fallback: number): number => {
    const value = fields.get(field) ?? fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new UserError(`${file}: field "${field}" must be a non-negative integer, found ${JSON.stringify(value)}`);
    }
    return value;
  };
  const eosTokenIds = fields.tokenIds('eos_token_id', 1);
  const config: DeepSeekConfig = {
    family: 'deepseek',
    vocabSize: fields.positiveInt('vocab_size', 129280),
    hiddenSize: fields.positiveInt('hidden_size', 7168),
    intermediateSize: fields.positiveInt('intermediate_size', 18432),
    numLayers: fields.positiveInt('num_hidden_layers', 61),
    numHeads,
    qLoraRank,
    kvLoraRank: fields.positiveInt('kv_lora_rank', 512),
    qkNopeHeadDim: fields.positiveInt('qk_nope_head_dim', 128),
    qkRopeHeadDim: fields.positiveInt('qk_rope_head_dim', 64),
    vHeadDim: fields.positiveInt('v_head_dim', 128),
    numRoutedExperts: fields.positiveInt('n_routed_experts', 256),
    numSharedExperts: nonNegativeInt('n_shared_experts', 1),
    numExpertsPerToken: fields.positiveInt('num_experts_per_tok', 8),
    moeIntermediateSize: fields.positiveInt('moe_intermediate_size', 2048),
    firstKDenseReplace: nonNegativeInt('first_k_dense_replace', 3),
    routedScalingFactor: fields.positiveNumber('routed_scaling_factor', 2.5),
    numGroups: fields.positiveInt('n_group', 8),
    topkGroup: fields.positiveInt('topk_group', 4),
    normTopkProb: fields.bool('norm_topk_prob', true),
    biasUpdateSpeed: 0.001,
    // V2's field for the sequence-level balance loss weight (with seq_aux true); V3's paper uses 1e-4.
    seqBalanceWeight: (() => {
      const value = fields.get('aux_loss_alpha') ?? 0.0001;
      if (typeof value !== 'number' || !(value >= 0)) throw new UserError(`${file}: field "aux_loss_alpha" must be a number >= 0, found ${JSON.stringify(value)}`);
      return value;
    })(),
    mtpDepth: nonNegativeInt('num_nextn_predict_layers', 0),
    mtpLossWeight: 0.3,
    maxPositionEmbeddings,
    ropeTheta,
    ropeScaling,
    ropeInterleave: fields.bool('rope_interleave', true),
    rmsNormEps: fields.positiveNumber('rms_norm_eps', 1e-6),
    tieWordEmbeddings: fields.bool('tie_word_embeddings', false),
    bosTokenId: fields.tokenId('bos_token_id', 0),
    eosTokenId: eosTokenIds[0] ?? null,
  };
  validateDeepSeekConfig(config, file, (field) => `field "${DEEPSEEK_JSON_NAMES[field] ?? field}"`);
  const torchDtype = fields.optionalString('torch_dtype') ?? fields.optionalString('dtype');
  return { config, torchDtype, eosTokenIds };
}

// config.json's names of DeepSeekConfig fields, for validateDeepSeekConfig's messages.
const DEEPSEEK_JSON_NAMES: Partial<Record<keyof DeepSeekConfig, string>> = {
  vocabSize: 'vocab_size', hiddenSize: 'hidden_size', intermediateSize: 'intermediate_size', numLayers: 'num_hidden_layers',
  numHeads: 'num_attention_heads', qLoraRank: 'q_lora_rank', kvLoraRank: 'kv_lora_rank', qkNopeHeadDim: 'qk_nope_head_dim',
  qkRopeHeadDim: 'qk_rope_head_dim', vHeadDim: 'v_head_dim', numRoutedExperts: 'n_routed_experts', numSharedExperts: 'n_shared_experts',
  numExpertsPerToken: 'num_experts_per_tok', moeIntermediateSize: 'moe_intermediate_size', firstKDenseReplace: 'first_k_dense_replace',
  routedScalingFactor: 'routed_scaling_factor', numGroups: 'n_group', topkGroup: 'topk_group', mtpDepth: 'num_nextn_predict_layers',
  rmsNormEps: 'rms_norm_eps', ropeTheta: 'rope_theta', maxPositionEmbeddings: 'max_position_embeddings', seqBalanceWeight: 'aux_loss_alpha',
};


/** config.json for a model config, with the fields and values transformers writes for its family. */
export function hfConfigJson(config: ModelConfig, extras: Partial<HfConfigExtras> = {}): Record<string, unknown> {
  if (config.family === 'deepseek') return deepseekConfigJson(config, extras);
  if (config.family === 'qwen2' && !config.attentionBias) {
    throw new Error('hfConfigJson: Qwen2 always has q/k/v bias; a model without it must use family "llama"');
  }
  const eosIds = extras.eosTokenIds?.length ? extras.eosTokenIds : config.eosTokenId === null ? [] : [config.eosTokenId];
  if (config.eosTokenId !== null && eosIds[0] !== config.eosTokenId) {
    throw new Error(`hfConfigJson: eosTokenIds ${JSON.stringify(eosIds)} must start with config.eosTokenId ${config.eosTokenId}`);
  }
  const familySpecific: Record<string, unknown> = config.family === 'llama'
    ? { attention_bias: config.attentionBias, mlp_bias: false, pretraining_tp: 1 }
    // Qwen2.5 ships use_sliding_window false with sliding_window and max_window_layers filled in; they only
    // matter when use_sliding_window is true.
    : { max_window_layers: config.numLayers, sliding_window: config.maxPositionEmbeddings, use_sliding_window: false };
  const json: Record<string, unknown> = {
    architectures: [FAMILIES[config.family].architecture],
    model_type: FAMILIES[config.family].modelType,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    hidden_act: 'silu',
    max_position_embeddings: config.maxPositionEmbeddings,
    rope_theta: config.ropeTheta,
    rope_scaling: ropeScalingJson(config.ropeScaling),
    rms_norm_eps: config.rmsNormEps,
    tie_word_embeddings: config.tieWordEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: eosIds.length > 1 ? eosIds : eosIds[0] ?? null,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    use_cache: true,
    ...familySpecific,
  };
  if (extras.torchDtype) json.torch_dtype = extras.torchDtype;
  return json;
}

/** config.json's rope_scaling for a scaling (null for plain RoPE), with the keys transformers reads. */
function ropeScalingJson(scaling: RopeScaling | null): Record<string, unknown> | null {
  switch (scaling?.type) {
    case undefined:
      return null;
    case 'linear':
      // Both keys: transformers >= 4.43 reads rope_type, older versions read type.
      return { factor: scaling.factor, rope_type: 'linear', type: 'linear' };
    case 'llama3':
      return {
        factor: scaling.factor,
        high_freq_factor: scaling.highFreqFactor,
        low_freq_factor: scaling.lowFreqFactor,
        original_max_position_embeddings: scaling.originalMaxPositionEmbeddings,
        rope_type: 'llama3',
      };
    case 'yarn': {
      const json: Record<string, unknown> = {
        factor: scaling.factor,
        original_max_position_embeddings: scaling.originalMaxPositionEmbeddings,
        beta_fast: scaling.betaFast,
        beta_slow: scaling.betaSlow,
        rope_type: 'yarn',
        type: 'yarn',
      };
      if (scaling.mscale) json.mscale = scaling.mscale;
      if (scaling.mscaleAllDim) json.mscale_all_dim = scaling.mscaleAllDim;
      if (scaling.attentionFactor !== null) json.attention_factor = scaling.attentionFactor;
      if (!scaling.truncate) json.truncate = false;
      return json;
    }
  }
}

/** Token ids as config.json writes them: one id, or a list when there are several. */
function eosJson(config: ModelConfig, extras: Partial<HfConfigExtras>): number | number[] | null {
  const eosIds = extras.eosTokenIds?.length ? extras.eosTokenIds : config.eosTokenId === null ? [] : [config.eosTokenId];
  if (config.eosTokenId !== null && eosIds[0] !== config.eosTokenId) {
    throw new Error(`hfConfigJson: eosTokenIds ${JSON.stringify(eosIds)} must start with config.eosTokenId ${config.eosTokenId}`);
  }
  return eosIds.length > 1 ? eosIds : eosIds[0] ?? null;
}

/**
 * DeepseekV3Config fields (transformers), plus those of the released config.json that transformers keeps as
 * extras: scoring_func, topk_method, num_nextn_predict_layers (MTP modules, stored at layer indices
 * num_hidden_layers.. and ignored by transformers), aux_loss_alpha with seq_aux (the balance loss weight).
 */
function deepseekConfigJson(c: DeepSeekConfig, extras: Partial<HfConfigExtras>): Record<string, unknown> {
  const json: Record<string, unknown> = {
    architectures: [DEEPSEEK.architecture],
    model_type: DEEPSEEK.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    moe_intermediate_size: c.moeIntermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numHeads,
    q_lora_rank: c.qLoraRank,
    kv_lora_rank: c.kvLoraRank,
    qk_nope_head_dim: c.qkNopeHeadDim,
    qk_rope_head_dim: c.qkRopeHeadDim,
    v_head_dim: c.vHeadDim,
    n_routed_experts: c.numRoutedExperts,
    n_shared_experts: c.numSharedExperts,
    num_experts_per_tok: c.numExpertsPerToken,
    first_k_dense_replace: c.firstKDenseReplace,
    routed_scaling_factor: c.routedScalingFactor,
    n_group: c.numGroups,
    topk_group: c.topkGroup,
    norm_topk_prob: c.normTopkProb,
    scoring_func: 'sigmoid',
    topk_method: 'noaux_tc',
    aux_loss_alpha: c.seqBalanceWeight,
    seq_aux: true,
    num_nextn_predict_layers: c.mtpDepth,
    hidden_act: 'silu',
    max_position_embeddings: c.maxPositionEmbeddings,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScalingJson(c.ropeScaling),
    rope_interleave: c.ropeInterleave,
    rms_norm_eps: c.rmsNormEps,
    tie_word_embeddings: c.tieWordEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: eosJson(c, extras),
    attention_bias: false,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    pretraining_tp: 1,
    use_cache: true,
  };
  if (extras.torchDtype) json.torch_dtype = extras.torchDtype;
  return json;
}

// ---------------------------------------------------------------------------------------------------------
// Weights

/**
 * Every tensor a Hugging Face checkpoint of this config holds, with its shape, in model order (the names of
 * transformers' LlamaForCausalLM / Qwen2ForCausalLM state dicts; nn.Linear weights are [out, in]).
 */
export function expectedTensorShapes(config: ModelConfig): Map<string, number[]> {
  if (config.family === 'deepseek') return deepseekTensorShapes(config);
  const { hiddenSize: h, intermediateSize: ffn, numHeads, numKvHeads, headDim } = config;
  const shapes = new Map<string, number[]>();
  shapes.set('model.embed_tokens.weight', [config.vocabSize, h]);
  for (let i = 0; i < config.numLayers; i++) {
    const layer = `model.layers.${i}`;
    shapes.set(`${layer}.input_layernorm.weight`, [h]);
    shapes.set(`${layer}.self_attn.q_proj.weight`, [numHeads * headDim, h]);
    shapes.set(`${layer}.self_attn.k_proj.weight`, [numKvHeads * headDim, h]);
    shapes.set(`${layer}.self_attn.v_proj.weight`, [numKvHeads * headDim, h]);
    if (config.attentionBias) {
      shapes.set(`${layer}.self_attn.q_proj.bias`, [numHeads * headDim]);
      shapes.set(`${layer}.self_attn.k_proj.bias`, [numKvHeads * headDim]);
      shapes.set(`${layer}.self_attn.v_proj.bias`, [numKvHeads * headDim]);
    }
    shapes.set(`${layer}.self_attn.o_proj.weight`, [h, numHeads * headDim]);
    shapes.set(`${layer}.post_attention_layernorm.weight`, [h]);
    shapes.set(`${layer}.mlp.gate_proj.weight`, [ffn, h]);
    shapes.set(`${layer}.mlp.up_proj.weight`, [ffn, h]);
    shapes.set(`${layer}.mlp.down_proj.weight`, [h, ffn]);
  }
  shapes.set('model.norm.weight', [h]);
  if (!config.tieWordEmbeddings) shapes.set('lm_head.weight', [config.vocabSize, h]);
  return shapes;
}

/**
 * transformers' DeepseekV3ForCausalLM state dict, then the MTP modules at layer indices numLayers.. as in the
 * released checkpoints (each a decoder block plus enorm, hnorm, eh_proj and shared_head.norm).
 */
function deepseekTensorShapes(c: DeepSeekConfig): Map<string, number[]> {
  const h = c.hiddenSize;
  const H = c.numHeads;
  const shapes = new Map<string, number[]>();
  shapes.set('model.embed_tokens.weight', [c.vocabSize, h]);
  for (let i = 0; i < c.numLayers + c.mtpDepth; i++) {
    const layer = `model.layers.${i}`;
    shapes.set(`${layer}.input_layernorm.weight`, [h]);
    const attn = `${layer}.self_attn`;
    if (c.qLoraRank === null) {
      shapes.set(`${attn}.q_proj.weight`, [H * (c.qkNopeHeadDim + c.qkRopeHeadDim), h]);
    } else {
      shapes.set(`${attn}.q_a_proj.weight`, [c.qLoraRank, h]);
      shapes.set(`${attn}.q_a_layernorm.weight`, [c.qLoraRank]);
      shapes.set(`${attn}.q_b_proj.weight`, [H * (c.qkNopeHeadDim + c.qkRopeHeadDim), c.qLoraRank]);
    }
    shapes.set(`${attn}.kv_a_proj_with_mqa.weight`, [c.kvLoraRank + c.qkRopeHeadDim, h]);
    shapes.set(`${attn}.kv_a_layernorm.weight`, [c.kvLoraRank]);
    shapes.set(`${attn}.kv_b_proj.weight`, [H * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank]);
    shapes.set(`${attn}.o_proj.weight`, [h, H * c.vHeadDim]);
    shapes.set(`${layer}.post_attention_layernorm.weight`, [h]);
    const mlp = `${layer}.mlp`;
    const swiglu = (prefix: string, inner: number) => {
      shapes.set(`${prefix}.gate_proj.weight`, [inner, h]);
      shapes.set(`${prefix}.up_proj.weight`, [inner, h]);
      shapes.set(`${prefix}.down_proj.weight`, [h, inner]);
    };
    if (i < c.firstKDenseReplace) {
      swiglu(mlp, c.intermediateSize);
    } else {
      for (let e = 0; e < c.numRoutedExperts; e++) swiglu(`${mlp}.experts.${e}`, c.moeIntermediateSize);
      shapes.set(`${mlp}.gate.weight`, [c.numRoutedExperts, h]);
      shapes.set(`${mlp}.gate.e_score_correction_bias`, [c.numRoutedExperts]);
      if (c.numSharedExperts > 0) swiglu(`${mlp}.shared_experts`, c.moeIntermediateSize * c.numSharedExperts);
    }
    if (i >= c.numLayers) {
      shapes.set(`${layer}.enorm.weight`, [h]);
      shapes.set(`${layer}.hnorm.weight`, [h]);
      shapes.set(`${layer}.eh_proj.weight`, [h, 2 * h]);
      shapes.set(`${layer}.shared_head.norm.weight`, [h]);
    }
  }
  shapes.set('model.norm.weight', [h]);
  if (!c.tieWordEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, h]);
  return shapes;
}

/**
 * Released DeepSeek-V3 checkpoints repeat the shared embedding and output head inside each MTP layer; they are
 * the main model's tensors, so the copies are not read.
 */
const MTP_SHARED_COPY = /^model\.layers\.\d+\.(embed_tokens\.weight|shared_head\.head\.weight)$/;

/** Old checkpoints saved RoPE's inverse frequencies as a buffer; they are recomputed from the config. */
const IGNORED_TENSOR = /(^|\.)rotary_emb\.inv_freq$/;
const FLOAT_DTYPES: readonly Dtype[] = ['F32', 'BF16', 'F16', 'F64'];

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** The weight files of a directory: model.safetensors if present (transformers prefers it), else the index. */
async function weightFiles(dir: string): Promise<{ files: string[]; weightMap: Map<string, string> | null; indexFile: string | null }> {
  if (await exists(join(dir, SINGLE_WEIGHTS_FILE))) return { files: [SINGLE_WEIGHTS_FILE], weightMap: null, indexFile: null };
  const indexFile = join(dir, WEIGHTS_INDEX_FILE);
  if (!(await exists(indexFile))) {
    const hasBin = await exists(join(dir, 'pytorch_model.bin')) || await exists(join(dir, 'pytorch_model.bin.index.json'));
    throw new UserError(`${dir}: no ${SINGLE_WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE}${hasBin ? ' (pytorch_model.bin is not read: convert it to safetensors)' : ''}`);
  }
  const index = readJsonFile(indexFile);
  const weightMapJson = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMapJson !== 'object' || weightMapJson === null || Array.isArray(weightMapJson)) {
    throw new UserError(`${indexFile}: field "weight_map" must be an object mapping tensor names to file names`);
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMapJson)) {
    // Shards live beside the index; a path would let a downloaded index read files elsewhere.
    if (typeof shard !== 'string' || shard === '' || /[/\\]/.test(shard) || shard === '..') {
      throw new UserError(`${indexFile}: field "weight_map.${name}" must be a file name in the same folder, found ${JSON.stringify(shard)}`);
    }
    weightMap.set(name, shard);
  }
  return { files: [...new Set(weightMap.values())].sort(), weightMap, indexFile };
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Load a directory's weights and check them against `config` before returning any: every expected tensor is
 * present with its shape and a float dtype, and nothing unexpected is there (rotary inv_freq buffers and a
 * redundant lm_head.weight under tied embeddings are dropped). Errors name the tensor, the file and the shapes.
 */
export async function loadHfWeights(dir: string, config: ModelConfig, head: ReadonlyMap<string, number[]> = new Map()): Promise<TensorMap> {
  const { files, weightMap, indexFile } = await weightFiles(dir);
  const found = new Map<string, { file: string; info: TensorInfo }>();
  for (const shard of files) {
    const file = join(dir, shard);
    const header = await readSafetensorsHeader(file);
    for (const [name, info] of header.tensors) {
      const earlier = found.get(name);
      if (earlier) throw new UserError(`${file}: tensor "${name}" also appears in ${earlier.file}`);
      if (weightMap && weightMap.get(name) !== shard) {
        throw new UserError(`${file}: tensor "${name}" is not listed for this file in ${indexFile}`);
      }
      found.set(name, { file, info });
    }
  }
  if (weightMap) {
    for (const [name, shard] of weightMap) {
      if (!found.has(name)) throw new UserError(`${indexFile}: tensor "${name}" is listed in ${shard} but that file does not hold it`);
    }
  }

  // A checkpoint with a head (`head`: a sequence classifier's score) may lack the language-model head.
  const expected = new Map([...expectedTensorShapes(config), ...head]);
  if (head.size > 0 && !found.has('lm_head.weight')) expected.delete('lm_head.weight');
  const where = files.length === 1 ? join(dir, files[0]) : `${dir} (${files.length} shards)`;
  for (const [name, shape] of expected) {
    const entry = found.get(name);
    if (!entry) throw new UserError(`${where}: tensor "${name}" is missing (expected shape ${formatShape(shape)} from config.json)`);
    const { file, info } = entry;
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new UserError(`${file}: tensor "${name}" has shape ${formatShape(info.shape)}, expected ${formatShape(shape)} from config.json`);
    }
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new UserError(`${file}: tensor "${name}" has dtype ${info.dtype}; weights must be one of ${FLOAT_DTYPES.join(', ')}`);
    }
  }
  const dropped = (name: string) => IGNORED_TENSOR.test(name) || (config.tieWordEmbeddings && name === 'lm_head.weight')
    || (config.family === 'deepseek' && MTP_SHARED_COPY.test(name) && Number(name.split('.')[2]) >= config.numLayers);
  for (const [name, { file, info }] of found) {
    if (!expected.has(name) && !dropped(name)) {
      const hint = name === 'score.weight' && head.size === 0 ? ' (this folder is a reward model: load it with loadRewardModel, or `r1 reward-model score`)' : '';
      throw new UserError(`${file}: unexpected tensor "${name}" (shape ${formatShape(info.shape)}) for a ${architectureOf(config)} with this config.json${hint}`);
    }
  }

  const loaded: TensorMap = new Map();
  for (const shard of files) {
    const { tensors } = await readSafetensors(join(dir, shard));
    for (const [name, array] of tensors) if (expected.has(name)) loaded.set(name, array);
  }
  // Model order, whatever the files' order.
  return new Map([...expected.keys()].map((name) => [name, loaded.get(name)!]));
}

/** Read config.json and the weights of a Hugging Face directory. */
export async function loadHfModel(dir: string): Promise<HfModel> {
  const parsed = await readModelConfig(dir);
  const config = parsed.config.family === 'deepseek' ? await withStoredMtpDepth(dir, parsed.config) : parsed.config;
  return { ...parsed, config, tensors: await loadHfWeights(dir, config) };
}

/**
 * The MTP depth a DeepSeek checkpoint actually holds. transformers writes num_nextn_predict_layers (its
 * DeepseekV3Config default is 1) but builds and saves no MTP module, while the released checkpoints store it at
 * layer index num_hidden_layers: the depth is the number of those layers present, at most the config's.
 */
async function withStoredMtpDepth(dir: string, config: DeepSeekConfig): Promise<DeepSeekConfig> {
  const names = new Set<string>();
  for (const file of (await weightFiles(dir)).files) {
    for (const name of (await readSafetensorsHeader(join(dir, file))).tensors.keys()) names.add(name.split('.').slice(0, 3).join('.'));
  }
  let depth = 0;
  while (depth < config.mtpDepth && names.has(`model.layers.${config.numLayers + depth}`)) depth++;
  return depth === config.mtpDepth ? config : { ...config, mtpDepth: depth };
}

// ---------------------------------------------------------------------------------------------------------
// Saving

export interface SaveHfOptions {
  /** Shard above this many bytes of tensor data (transformers' default max_shard_size is "5GB"). */
  maxShardBytes?: number;
  /** generation_config.json content; by default bos/eos ids from the config. */
  generationConfig?: Record<string, unknown>;
  /** A folder to copy tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja from. */
  tokenizerFrom?: string;
  /** tokenizer.json content to write (text or a parsed object), when not copied from a folder. */
  tokenizerJson?: string | object;
  /** tokenizer_config.json content to write, when not copied from a folder. */
  tokenizerConfig?: object;
  /**
   * Write a sequence classifier (a reward model) instead of a causal LM: `head` (its `score.weight`) is saved
   * beside the backbone's tensors, and config.json names XForSequenceClassification and adds `configFields`
   * (num_labels, pad_token_id).
   */
  classifier?: { head: TensorMap; configFields: Record<string, unknown> };
}

const TORCH_DTYPE_NAMES: Partial<Record<Dtype, string>> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16', F64: 'float64' };

/** The dtype that holds most parameter bytes: what transformers records as torch_dtype. */
function dominantDtype(tensors: TensorMap): string | null {
  const bytes = new Map<Dtype, number>();
  for (const array of tensors.values()) bytes.set(array.dtype, (bytes.get(array.dtype) ?? 0) + array.data.byteLength);
  const top = [...bytes].sort((a, b) => b[1] - a[1])[0];
  return top ? TORCH_DTYPE_NAMES[top[0]] ?? null : null;
}

/** Split tensors, in model order, into shards of at most maxShardBytes (a bigger tensor gets its own). */
function planShards(names: string[], tensors: TensorMap, maxShardBytes: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [];
  let currentBytes = 0;
  for (const name of names) {
    const size = tensors.get(name)!.data.byteLength;
    if (current.length > 0 && currentBytes + size > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(name);
    currentBytes += size;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

const shardName = (i: number, n: number) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
const WEIGHT_FILE_PATTERN = /^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/;

/**
 * Write a Hugging Face directory: config.json, generation_config.json, the weights (one file, or shards with
 * an index above maxShardBytes) and the tokenizer files when given. Each file is written atomically; weight
 * files of an earlier save in the same folder that this save did not write are removed, so that loaders do
 * not pick up stale shards. Tensors must match expectedTensorShapes(config) exactly.
 */
export async function saveHfModel(dir: string, model: { config: ModelConfig; tensors: TensorMap } & Partial<HfConfigExtras>, options: SaveHfOptions = {}): Promise<void> {
  const { config } = model;
  const head = options.classifier?.head ?? new Map();
  const tensors: TensorMap = new Map([...model.tensors, ...head]);
  const expected = new Map([...expectedTensorShapes(config), ...[...head].map(([name, array]): [string, number[]] => [name, [...array.shape]])]);
  for (const [name, shape] of expected) {
    const array = tensors.get(name);
    if (!array) throw new Error(`saveHfModel: tensor "${name}" is missing (expected shape ${formatShape(shape)})`);
    if (array.shape.length !== shape.length || array.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`saveHfModel: tensor "${name}" has shape ${formatShape(array.shape)}, expected ${formatShape(shape)}`);
    }
  }
  for (const name of tensors.keys()) if (!expected.has(name)) throw new Error(`saveHfModel: unexpected tensor "${name}"`);

  const torchDtype = model.torchDtype ?? dominantDtype(tensors);
  const configJson = hfConfigJson(config, { torchDtype, eosTokenIds: model.eosTokenIds });
  if (options.classifier) Object.assign(configJson, { architectures: [sequenceClassifierArchitectureOf(config)] }, options.classifier.configFields);
  await writeJsonAtomic(join(dir, CONFIG_FILE), configJson);
  const eosIds = model.eosTokenIds?.length ? model.eosTokenIds : config.eosTokenId === null ? [] : [config.eosTokenId];
  const generationConfig = options.generationConfig ?? {
    _from_model_config: true,
    bos_token_id: config.bosTokenId,
    eos_token_id: eosIds.length > 1 ? eosIds : eosIds[0] ?? null,
  };
  await writeJsonAtomic(join(dir, GENERATION_CONFIG_FILE), generationConfig);

  // transformers refuses safetensors files whose metadata lacks a known "format".
  const metadata = { format: 'pt' };
  const names = [...expected.keys()];
  const shards = planShards(names, tensors, options.maxShardBytes ?? 5_000_000_000);
  const written = new Set<string>();
  if (shards.length <= 1) {
    await writeSafetensors(join(dir, SINGLE_WEIGHTS_FILE), tensors, metadata);
    written.add(SINGLE_WEIGHTS_FILE);
  } else {
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    for (const [i, shard] of shards.entries()) {
      const file = shardName(i, shards.length);
      await writeSafetensors(join(dir, file), new Map(shard.map((name) => [name, tensors.get(name)!])), metadata);
      written.add(file);
      for (const name of shard) {
        weightMap[name] = file;
        totalSize += tensors.get(name)!.data.byteLength;
      }
    }
    const sortedMap = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    await writeJsonAtomic(join(dir, WEIGHTS_INDEX_FILE), { metadata: { total_size: totalSize }, weight_map: sortedMap });
    written.add(WEIGHTS_INDEX_FILE);
  }
  for (const name of await readdir(dir)) {
    if (WEIGHT_FILE_PATTERN.test(name) && !written.has(name)) await rm(join(dir, name), { force: true });
  }

  if (options.tokenizerFrom !== undefined) {
    const source = options.tokenizerFrom;
    if (!(await exists(join(source, 'tokenizer.json')))) throw new UserError(`${source}: no tokenizer.json to copy`);
    for (const name of TOKENIZER_FILES) {
      const from = join(source, name);
      if (await exists(from)) await writeFileAtomic(join(dir, name), await readFile(from));
    }
  }
  if (options.tokenizerJson !== undefined) {
    const text = typeof options.tokenizerJson === 'string' ? options.tokenizerJson : JSON.stringify(options.tokenizerJson);
    await writeFileAtomic(join(dir, 'tokenizer.json'), text);
  }
  if (options.tokenizerConfig !== undefined) await writeJsonAtomic(join(dir, 'tokenizer_config.json'), options.tokenizerConfig);
}
