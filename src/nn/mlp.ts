import { swiglu, type Tensor } from '../tensor/index.ts';
import { Linear } from './linear.ts';
import { Module, type WeightInit } from './module.ts';

/** The SwiGLU feed-forward block (Shazeer 2020): down(silu(gate(x)) * up(x)). */
export class SwiGluMlp extends Module {
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(hidden: number, intermediate: number, rng: WeightInit) {
    super();
    this.gateProj = this.module('gate_proj', new Linear(hidden, intermediate, rng));
    this.upProj = this.module('up_proj', new Linear(hidden, intermediate, rng));
    this.downProj = this.module('down_proj', new Linear(intermediate, hidden, rng));
  }

  forward(x: Tensor): Tensor {
    return this.downProj.forward(swiglu(this.gateProj.forward(x), this.upProj.forward(x)));
  }
}
