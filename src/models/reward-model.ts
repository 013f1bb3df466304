// A scalar reward model (R1 sec. 3.4; Nature Methods: "the same architecture as DeepSeek-R1, with the addition of
// a reward head"; SPEC.md 3): a causal LM's final hidden state at the last token of a text, times a [1, hidden]
// head, is the text's reward. Either family is a backbone (dense or DeepSeek).
//
// On disk it is transformers' sequence-classification layout with num_labels = 1, which is what TRL's
// RewardTrainer writes and AutoModelForSequenceClassification opens:
//   config.json        the backbone's config with "architectures": ["Qwen2ForSequenceClassification"] (or
//                      LlamaForSequenceClassification, DeepseekV3ForSequenceClassification), "num_labels": 1,
//                      "id2label"/"label2id" for the one label, and "pad_token_id"
//   model.safetensors  the backbone's tensors under their usual names (model.*, and lm_head.weight, which
//                      transformers ignores for a classifier), plus score.weight [1, hidden], no bias
// transformers reads the score at the last token that is not pad_token_id, so a text is scored at its own last
// token: nothing is appended to it (an appended EOS that doubles as the pad token would move the read one token
// back). A checkpoint without lm_head.weight (TRL's, for untied models) loads too: the backbone's output head
// is then zeros, and a reward model never uses it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parameterArrays } from '../io/checkpoint.ts';
import { CONFIG_FILE, loadHfWeights, readModelConfig, saveHfModel, sequenceClassifierArchitectureOf, type ModelConfig } from '../io/hf.ts';
import { readJsonFile } from '../io/json-file.ts';
import { fromFloat32, type TensorMap } from '../io/safetensors.ts';
import type { MoeLoadStats } from '../nn/moe.ts';
import { Module } from '../nn/module.ts';
import { gather, linear, noGrad, randn, reshape, scope, tensor, type Tensor, Rng } from '../tensor/index.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { UserError } from '../util/errors.ts';
import { createModel, type CausalLM } from './pretrained.ts';

/** Name of the head's weight: transformers' `score` Linear of XForSequenceClassification. */
export const SCORE_WEIGHT = 'score.weight';

export class RewardModel extends Module {
  /** [1, hidden]: the reward is score . h_last. */
  readonly score: Tensor;

  constructor(readonly backbone: CausalLM, seed = 0) {
    super();
    // Normal(0, 0.02), transformers' initializer_range for the score Linear.
    this.score = this.parameter(SCORE_WEIGHT, randn([1, backbone.config.hiddenSize], new Rng(seed), 0.02));
  }

  get config(): ModelConfig {
    return this.backbone.config;
  }

  // The backbone's tensors keep their own names (model.*, lm_head.weight) and the head adds score.weight: the
  // names of transformers' sequence classifier, so saving is a walk over namedParameters().
  override namedParameters(prefix = ''): Array<[string, Tensor]> {
    return [...this.backbone.namedParameters(prefix), ...super.namedParameters(prefix)];
  }

  override namedBuffers(prefix = ''): Array<[string, Tensor]> {
    return [...this.backbone.namedBuffers(prefix), ...super.namedBuffers(prefix)];
  }

  /** The backbone's after-step hook (a DeepSeek backbone's MoE bias balancing), so that a trainer steps it as it steps an LM. */
  afterStep(): MoeLoadStats[] {
    return this.backbone.afterStep?.() ?? [];
  }

  /**
   * One reward per row, [B], for right-padded ids [B, T] whose row b has `lengths[b]` real tokens: the head over
   * every position, then the value at each row's last real token (causal attention: padding after it changes
   * nothing before it).
   */
  rewards(ids: Tensor, lengths: readonly number[]): Tensor {
    const [B, T] = ids.shape;
    if (lengths.length !== B) throw new Error(`RewardModel.rewards: ${lengths.length} lengths for ${B} rows`);
    for (const n of lengths) if (!(n >= 1 && n <= T)) throw new Error(`RewardModel.rewards: a length of ${n} in rows of ${T} positions`);
    const values = reshape(linear(this.backbone.hidden(ids), this.score), [B, T]);
    return reshape(gather(values, 1, tensor(lengths.map((n) => n - 1), [B, 1], 'i32', ids.device)), [B]);
  }

  /** Rewards of token sequences, without gradients, in batches of `batchSize`. */
  scoreIds(sequences: readonly (readonly number[])[], batchSize = 16): number[] {
    const out: number[] = [];
    for (let start = 0; start < sequences.length; start += batchSize) {
      const { ids, lengths } = padRight(sequences.slice(start, start + batchSize));
      out.push(...scope(() => noGrad(() => Array.from(this.rewards(ids, lengths).toArray()))));
    }
    return out;
  }
}

/** Sequences right-padded with 0 into int32 [n, longest], with their lengths. */
export function padRight(sequences: readonly (readonly number[])[]): { ids: Tensor; lengths: number[] } {
  const lengths = sequences.map((s) => s.length);
  const width = Math.max(1, ...lengths);
  const ids = new Int32Array(sequences.length * width);
  sequences.forEach((s, b) => ids.set(s, b * width));
  return { ids: tensor(ids, [sequences.length, width], 'i32'), lengths };
}

/** A reward model with its backbone's and head's weights from `tensors` (`source` names them in errors). */
export function rewardModelFromTensors(config: ModelConfig, tensors: TensorMap, source: string): RewardModel {
  const model = new RewardModel(createModel(config, null));
  const values = new Map(tensors);
  // A classifier checkpoint without the language-model head (see the file comment): zeros, never used.
  if (!values.has('lm_head.weight') && !config.tieWordEmbeddings) values.set('lm_head.weight', fromFloat32([config.vocabSize, config.hiddenSize], new Float32Array(config.vocabSize * config.hiddenSize), 'F32'));
  model.loadState(values, source);
  return model;
}

export interface LoadedRewardModel {
  model: RewardModel;
  tokenizer: Tokenizer;
}

/** Loads a reward-model folder (the layout in the file comment), e.g. one `r1 reward-model train` or TRL wrote. */
export async function loadRewardModel(dir: string): Promise<LoadedRewardModel> {
  if (!existsSync(join(dir, CONFIG_FILE))) throw new UserError(`${dir}: no ${CONFIG_FILE}: not a model folder`);
  const raw = readJsonFile(join(dir, CONFIG_FILE)) as Record<string, unknown>;
  const { config } = await readModelConfig(dir);
  const architectures = Array.isArray(raw.architectures) ? raw.architectures : [];
  if (!architectures.includes(sequenceClassifierArchitectureOf(config))) {
    throw new UserError(`${join(dir, CONFIG_FILE)}: "architectures" is ${JSON.stringify(raw.architectures)}, not ${sequenceClassifierArchitectureOf(config)}: this is not a reward model (train one with r1 reward-model train)`);
  }
  const labels = raw.num_labels ?? (raw.id2label && typeof raw.id2label === 'object' ? Object.keys(raw.id2label).length : 2);
  if (labels !== 1) throw new UserError(`${join(dir, CONFIG_FILE)}: num_labels is ${JSON.stringify(labels)}; a reward model has one (a scalar score)`);
  const tensors = await loadHfWeights(dir, config, new Map([[SCORE_WEIGHT, [1, config.hiddenSize]]]));
  return { model: rewardModelFromTensors(config, tensors, dir), tokenizer: Tokenizer.fromFile(dir) };
}

/** Writes `model` as a reward-model folder (the layout in the file comment) with the tokenizer's files. */
export async function saveRewardModel(model: RewardModel, tokenizer: Tokenizer, dir: string): Promise<void> {
  const backbone = parameterArrays(model.backbone.namedParameters());
  await saveHfModel(dir, { config: model.config, tensors: backbone }, {
    tokenizerJson: tokenizer.files.json,
    tokenizerConfig: tokenizer.files.config,
    classifier: {
      head: parameterArrays([[SCORE_WEIGHT, model.score]]),
      configFields: { num_labels: 1, id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 }, pad_token_id: padTokenId(tokenizer, model.config) },
    },
  });
}

/** The pad id transformers uses to find each row's last token: the tokenizer's pad token, else the eos. */
function padTokenId(tokenizer: Tokenizer, config: ModelConfig): number | null {
  return tokenizer.padTokenId ?? tokenizer.eosTokenId ?? config.eosTokenId;
}
