import { ones, rmsNorm, type Tensor } from '../tensor/index.ts';
import { Module } from './module.ts';

/** RMSNorm (Zhang & Sennrich 2019) with a learned scale, as Llama, Qwen2 and DeepSeek-V3 use it. */
export class RMSNorm extends Module {
  readonly weight: Tensor;

  constructor(dim: number, readonly eps: number) {
    super();
    this.weight = this.parameter('weight', ones([dim]));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
