// The tensor layer's public face: Tensor, autograd controls, ops, random numbers, backends.
import './backends/reference.ts';
import './backends/native.ts';

export * from './tensor.ts';
export * from './ops.ts';
export { Rng } from './random.ts';
export { cpuBackend, withBackend, type Backend, type DType, type Device } from './backend.ts';
