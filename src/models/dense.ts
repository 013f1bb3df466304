// A dense decoder of the Llama / Qwen2 family, read top to bottom: config, blocks, forward.

/** Rotary embedding scaling, as Hugging Face config.json writes it (`rope_scaling`). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface DenseConfig {
  /** 'llama' or 'qwen2': decides the Hugging Face architecture name written to config.json. */
  family: 'llama' | 'qwen2';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositionEmbeddings: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  /** Bias on the q, k and v projections (Qwen2 has it, Llama does not). */
  attentionBias: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
}
