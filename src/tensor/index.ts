// The tensor layer's public face: Tensor, autograd controls, ops, random numbers, backends, devices and scopes.
import './backends/reference.ts';
import './backends/native.ts';
import './backends/cuda.ts';

export * from './tensor.ts';
export * from './ops.ts';
export * from './moe.ts';
export { Rng } from './random.ts';
export { cpuBackend, cudaBackend, withBackend, type Backend, type DeviceBackend, type DType } from './backend.ts';
export { defaultDevice, dispose, keep, scope, setDefaultDevice, withDevice, type Device } from './device.ts';
export { captureGraph, cudaMemoryStats, matmulPrecision, profileCuda, setMatmulPrecision, setSkinnyGemmRows, synchronize, useDevice, type CudaGraph, type CudaProfileRow, type Precision } from './backends/cuda.ts';
export { nativeThreads, setNativeThreads } from './backends/native.ts';
