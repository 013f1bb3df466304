// Module: a named tree of parameters and submodules. Names are given when a child is registered, and they are
// Hugging Face's tensor names (`model.layers.0.self_attn.q_proj.weight`), so saving and loading a checkpoint
// is a walk over namedParameters() with no renaming table. Buffers (RoPE tables) are tensors a module computes
// with but does not train or save; `to(device)` moves parameters and buffers together.
import { decodeFloat32Into, type NamedArray } from '../io/safetensors.ts';
import { dispose, empty, keep, moveStorage, randn, registerWeight, setGrad, writeValues, type Device, type Rng, type Shape, type Tensor } from '../tensor/index.ts';
import { UserError } from '../util/errors.ts';

/**
 * How a new module's weights start: drawn from a seeded generator, or null when a checkpoint is loaded into
 * them next (loadModel): then they are only allocated, and no draw is spent on values about to be overwritten.
 */
export type WeightInit = Rng | null;

/** A weight of Normal(0, std) draws, or an allocated, unset one when init is null (WeightInit). */
export function initialWeight(shape: Shape, init: WeightInit, std: number): Tensor {
  return init === null ? empty(shape) : randn(shape, init, std);
}

export class Module {
  private readonly childModules = new Map<string, Module>();
  private readonly ownParameters = new Map<string, Tensor>();
  private readonly ownBuffers = new Map<string, Tensor>();

  protected module<M extends Module>(name: string, child: M): M {
    this.childModules.set(name, child);
    return child;
  }

  // Parameters and buffers live as long as their module: kept out of every scope (src/tensor/device.ts).
  protected parameter(name: string, value: Tensor): Tensor {
    value.requiresGrad = true;
    this.ownParameters.set(name, keep(value));
    registerWeight(value);
    return value;
  }

  protected buffer(name: string, value: Tensor): Tensor {
    this.ownBuffers.set(name, keep(value));
    return value;
  }

  /** Every parameter with its dotted name, in registration order. */
  namedParameters(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [name, p] of this.ownParameters) out.push([prefix + name, p]);
    for (const [name, child] of this.childModules) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  namedBuffers(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [name, b] of this.ownBuffers) out.push([prefix + name, b]);
    for (const [name, child] of this.childModules) out.push(...child.namedBuffers(`${prefix}${name}.`));
    return out;
  }

  /** The device of the parameters (a module's parameters share one). */
  get device(): Device {
    return this.firstParameter()?.device ?? 'cpu';
  }

  // The first parameter in registration order, found without listing them all: `device` is read several
  // times a decode step, where namedParameters() built every name of the model each time.
  private firstParameter(): Tensor | undefined {
    for (const p of this.ownParameters.values()) return p;
    for (const child of this.childModules.values()) {
      const p = child.firstParameter();
      if (p) return p;
    }
    return undefined;
  }

  /**
   * Moves every parameter and buffer to `device` in place (the same Tensor objects, so fields and tied weights
   * follow); gradients are dropped. Returns this module.
   */
  to(device: Device): this {
    for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) {
      setGrad(t, null);
      moveStorage(t, device);
      keep(t);
    }
    for (const p of this.parameters()) registerWeight(p);
    return this;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  parameterCount(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /**
   * Frees the device memory of every parameter, buffer and gradient now (on the CPU the collector does it); the
   * module must not be used afterwards. For a program that trains or loads one model after another on a GPU.
   */
  dispose(): void {
    this.zeroGrad();
    for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) dispose(t);
  }

  /** Drops every gradient (and frees their device memory: see setGrad). */
  zeroGrad(): void {
    for (const p of this.parameters()) setGrad(p, null);
  }

  /**
   * Reads stored arrays (any real dtype, as safetensors holds them) into the parameters by name. Every
   * parameter must be present with its exact shape; `source` names the file in errors. Each array is decoded
   * straight into its parameter's storage on the CPU, or into one reused host buffer uploaded into it on a
   * device: loading a checkpoint makes no per-tensor copies (a 494M model's float32 is 2 GB).
   */
  loadState(values: ReadonlyMap<string, NamedArray>, source: string): void {
    let staging = new Float32Array(0);
    for (const [name, p] of this.namedParameters()) {
      const v = values.get(name);
      if (!v) throw new UserError(`${source}: missing tensor '${name}' (expected shape [${p.shape}])`);
      if (v.shape.length !== p.shape.length || v.shape.some((d, i) => d !== p.shape[i])) {
        throw new UserError(`${source}: tensor '${name}' has shape [${v.shape}], the model expects [${p.shape}]`);
      }
      if (p.device === 'cpu' && p.dtype === 'f32') {
        decodeFloat32Into(v, p.floats() as Float32Array);
        continue;
      }
      if (staging.length < p.size) staging = new Float32Array(p.size);
      const decoded = decodeFloat32Into(v, staging.subarray(0, p.size));
      writeValues(p, p.dtype === 'f32' ? decoded : Float64Array.from(decoded));
    }
  }
}
