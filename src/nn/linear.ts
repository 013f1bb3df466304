import { linear, zeros, type Tensor } from '../tensor/index.ts';
import { initialWeight, Module, type WeightInit } from './module.ts';

/** y = x W^T + b, W stored [out, in] as PyTorch and Hugging Face store it. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, rng: WeightInit, options: { bias?: boolean; std?: number } = {}) {
    super();
    // Normal(0, 0.02): the initializer_range of GPT-2, Llama and Qwen2 configs.
    this.weight = this.parameter('weight', initialWeight([outFeatures, inFeatures], rng, options.std ?? 0.02));
    this.bias = options.bias ? this.parameter('bias', zeros([outFeatures])) : null;
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
