// Every tensor op, defined once: its shape rules, its forward (a call into the kernel table of its inputs'
// device) and, right beside it, its backward. Backends supply kernels only (src/tensor/kernels.ts); models call
// ops. Outputs are allocated on the inputs' device; creation functions use the default device (device.ts).
import { allocHost, allocHostUninitialized, cudaBackend, kernelsOn, type DType, type FloatArray, type HostArray } from './backend.ts';
import { defaultDevice, DeviceArray, type Device } from './device.ts';
import type { BinaryOpName, Kernels, ReduceOpName, UnaryOpName } from './kernels.ts';
import type { Rng } from './random.ts';
import { bindTapeOps, contiguousStrides, isGradEnabled, record, sameShape, shapeSize, Tensor, type GradNode, type Shape } from './tensor.ts';

/** The kernel table of the inputs' device; mixing devices in one op is an error naming both. */
function kernels(op: string, ...inputs: Tensor[]): Kernels<FloatArray | number, Int32Array | number> {
  const device = inputs[0].device;
  for (let i = 1; i < inputs.length; i++) {
    if (inputs[i].device !== device) {
      throw new Error(`${op}: ${inputs[0]} is on ${device} but ${inputs[i]} is on ${inputs[i].device}; move one with .to('${device}')`);
    }
  }
  return kernelsOn(device);
}

// ---------------------------------------------------------------------------------------------------------
// Creation

/** A tensor whose elements are unspecified (whatever the memory held): for outputs a kernel writes whole. */
export function empty(shape: Shape, dtype: DType = 'f32', device: Device = defaultDevice()): Tensor {
  const n = shapeSize(shape);
  return new Tensor(device === 'cpu' ? allocHostUninitialized(dtype, n) : cudaBackend().alloc(dtype, n), [...shape]);
}

export function zeros(shape: Shape, dtype: DType = 'f32', device: Device = defaultDevice()): Tensor {
  return device === 'cpu' ? new Tensor(allocHost(dtype, shapeSize(shape)), [...shape]) : full(shape, 0, dtype, device);
}

export function full(shape: Shape, value: number, dtype: DType = 'f32', device: Device = defaultDevice()): Tensor {
  const t = empty(shape, dtype, device);
  if (t.storage instanceof DeviceArray) cudaBackend().fill(t.storage, value);
  else t.storage.fill(value);
  return t;
}

export function ones(shape: Shape, dtype: DType = 'f32', device: Device = defaultDevice()): Tensor {
  return full(shape, 1, dtype, device);
}

export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1, t.dtype, t.device);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, t.dtype, t.device);
}

// Host values as a tensor on `device`: the array itself on the CPU, an upload elsewhere. Creation functions
// that compute their values on the host (tensor, rand, arange) end here; randn draws where the tensor lives.
function fromHost(values: HostArray, shape: Shape, device: Device): Tensor {
  return new Tensor(device === 'cpu' ? values : cudaBackend().upload(values), [...shape]);
}

/** A tensor from numbers (copied). Without a shape, a 1-d tensor of data.length elements. */
export function tensor(data: ArrayLike<number>, shape: Shape = [data.length], dtype: DType = 'f32', device: Device = defaultDevice()): Tensor {
  if (shapeSize(shape) !== data.length) throw new Error(`tensor(): ${data.length} values do not fill shape [${shape}]`);
  const values = allocHost(dtype, data.length);
  values.set(data);
  return fromHost(values, shape, device);
}

export function scalar(value: number, dtype: DType = 'f32', device: Device = defaultDevice()): Tensor {
  return tensor([value], [], dtype, device);
}

/**
 * Normal draws with the given standard deviation. `rng` gives only a 64-bit key (two words); the values are
 * Philox draws under it (src/tensor/philox.ts), computed by the device's randomNormal kernel (native threads on
 * the CPU, the GPU itself on CUDA: a 494M-parameter model initialises without a JavaScript loop or an upload),
 * the same values on every backend up to the last bit of the transcendental functions.
 */
export function randn(shape: Shape, rng: Rng, std = 1, dtype: DType = 'f32', device: Device = defaultDevice()): Tensor {
  if (dtype === 'i32') throw new TypeError('randn: normal draws need a float dtype, got i32');
  const out = empty(shape, dtype, device);
  kernelsOn(device).randomNormal(out.floatData(), out.size, rng.nextUint32(), rng.nextUint32(), std);
  return out;
}

/** Uniform draws in [low, high). */
export function rand(shape: Shape, rng: Rng, low = 0, high = 1, dtype: DType = 'f32', device: Device = defaultDevice()): Tensor {
  const values = allocHost(dtype, shapeSize(shape));
  for (let i = 0; i < values.length; i++) values[i] = low + (high - low) * rng.uniform();
  return fromHost(values, shape, device);
}

export function arange(n: number, dtype: DType = 'i32', device: Device = defaultDevice()): Tensor {
  const values = allocHost(dtype, n);
  for (let i = 0; i < n; i++) values[i] = i;
  return fromHost(values, [n], device);
}

/** A copy in another dtype (f32 <-> f64 <-> i32); gradients flow between float dtypes. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  let out: Tensor;
  if (x.storage instanceof DeviceArray) {
    const src = contiguous(x);
    out = empty(x.shape, dtype, x.device);
    cudaBackend().convert(deviceAddress(src), src.dtype as 'f32' | 'i32', deviceAddress(out), x.size);
  } else {
    out = new Tensor(allocHost(dtype, x.size), [...x.shape]);
    (out.storage as HostArray).set(x.toArray());
  }
  if (dtype === 'i32' || x.dtype === 'i32') return out;
  return record(out, 'cast', [x], (g) => [cast(g, x.dtype)]);
}

// The device address of a tensor's first element, whatever its dtype (casts and integer copies move raw words).
function deviceAddress(t: Tensor): number {
  return (t.storage as DeviceArray).address(() => t.toString()) + t.offset * 4;
}

/** A copy on another device (t.to(device) calls this); the gradient is copied back. */
export function to(x: Tensor, device: Device): Tensor {
  if (x.device === device) return x;
  const out = fromHost(x.toArray(), x.shape, device);
  return record(out, 'to', [x], (g) => [to(g, x.device)]);
}

/**
 * Moves a tensor's storage to another device in place, so that every holder of this Tensor object (a model's
 * fields, a tied output head) sees the move: Module.to uses it for parameters and buffers. The tensor must own
 * its storage whole (contiguous, offset 0); views made before the move keep the old storage.
 */
export function moveStorage(t: Tensor, device: Device): void {
  if (t.device === device) return;
  if (!t.isContiguous || t.offset !== 0 || t.storage.length !== t.size) throw new Error(`moveStorage: ${t} is a view; only a tensor that owns its storage moves in place`);
  const moved = fromHost(t.toArray(), t.shape, device);
  const old = t.storage;
  t.storage = moved.storage;
  t.device = device;
  if (old instanceof DeviceArray) old.free('dispose');
}

// ---------------------------------------------------------------------------------------------------------
// Views: no data moves; the backward maps the gradient back through the same view.

function view(x: Tensor, shape: Shape, strides: Shape, offset: number): Tensor {
  return new Tensor(x.storage, shape, { strides, offset });
}

export function reshape(x: Tensor, shape: Shape): Tensor {
  const resolved = resolveShape(shape, x.size, x.shape);
  if (sameShape(resolved, x.shape)) return x;
  const src = x.isContiguous ? x : contiguous(x);
  const out = view(src, resolved, contiguousStrides(resolved), src.offset);
  return record(out, 'reshape', [src], (g) => [reshape(g, src.shape)]);
}

function resolveShape(shape: Shape, size: number, from: Shape): number[] {
  const out = [...shape];
  const free = out.indexOf(-1);
  if (free >= 0) {
    const known = out.reduce((p, d, i) => (i === free ? p : p * d), 1);
    out[free] = known === 0 ? 0 : size / known;
  }
  if (shapeSize(out) !== size || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`cannot reshape [${from}] (${size} elements) to [${shape}]`);
  }
  return out;
}

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const a = x.axis(dim0);
  const b = x.axis(dim1);
  if (a === b) return x;
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim || new Set(dims.map((d) => x.axis(d))).size !== x.ndim) {
    throw new Error(`permute([${dims}]) is not a permutation of the ${x.ndim} axes of [${x.shape}]`);
  }
  const axes = dims.map((d) => x.axis(d));
  const out = view(x, axes.map((d) => x.shape[d]), axes.map((d) => x.strides[d]), x.offset);
  const inverse = new Array<number>(axes.length);
  axes.forEach((d, i) => (inverse[d] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

/** Elements [start, end) along one axis (negative indices count from the end). */
export function slice(x: Tensor, dim: number, start: number, end: number = x.shape[x.axis(dim)]): Tensor {
  const d = x.axis(dim);
  const len = x.shape[d];
  const s = start < 0 ? start + len : start;
  const e = end < 0 ? end + len : Math.min(end, len);
  if (s < 0 || s > e) throw new RangeError(`slice [${start}, ${end}) out of range for axis ${dim} of length ${len}`);
  const shape = [...x.shape];
  shape[d] = e - s;
  const out = view(x, shape, x.strides, x.offset + s * x.strides[d]);
  return record(out, 'slice', [x], (g) => {
    const dx = zeros(x.shape, g.dtype, g.device);
    copyInto(g, slice(dx, d, s, e));
    return [dx];
  });
}

/** A broadcast view to a larger shape (size-1 axes repeat with stride 0). */
export function expand(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const out = view(x, [...shape], broadcastStrides(x, shape), x.offset);
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = dim < 0 ? dim + x.ndim + 1 : dim;
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return reshape(x, shape);
}

export function squeeze(x: Tensor, dim: number): Tensor {
  const d = x.axis(dim);
  if (x.shape[d] !== 1) throw new Error(`squeeze(${dim}): axis has length ${x.shape[d]}, not 1`);
  return reshape(x, x.shape.filter((_, i) => i !== d));
}

/** This tensor if it is already contiguous (unless `copy`), else a contiguous copy. */
export function contiguous(x: Tensor, copy = false): Tensor {
  if (x.isContiguous && !copy) return x;
  const out = empty(x.shape, x.dtype, x.device);
  copyInto(x, out);
  return record(out, 'contiguous', [x], (g) => [g]);
}

/**
 * Marks a parameter's buffer as a weight of its device backend (on CUDA: bf16 GEMMs then read a bf16 copy that
 * AdamW keeps current; see native/r1_cuda.h). Nothing on the CPU. Module registers its parameters; copyInto
 * registers a weight again after writing into it, since only AdamW's own writes keep the copy current.
 */
export function registerWeight(t: Tensor): void {
  if (t.storage instanceof DeviceArray) cudaBackend().registerWeight(t.storage);
}

/** Writes host values into a contiguous tensor, in place (on a device: one upload into its buffer). */
export function writeValues(dst: Tensor, values: HostArray): void {
  if (!dst.isContiguous || values.length !== dst.size) throw new Error(`writeValues: ${values.length} values into ${dst}${dst.isContiguous ? '' : ' (not contiguous)'}`);
  if (dst.storage instanceof DeviceArray) cudaBackend().write(dst.storage, dst.offset, values);
  else dst.storage.set(values, dst.offset);
}

/**
 * Writes src's elements (broadcast to dst's shape) into dst, which may be a view (any strides): the one place
 * data moves between layouts. Not recorded on the tape: writing into a KV cache or a parameter is not a
 * differentiable step.
 */
export function copyInto(src: Tensor, dst: Tensor): void {
  const k = kernels('copyInto', src, dst);
  if (dst.storage instanceof DeviceArray) {
    if (src.dtype !== dst.dtype) throw new TypeError(`copyInto: dtypes ${src.dtype} and ${dst.dtype} differ`);
    // The copy kernel moves 32-bit words, so it copies int32 data exactly too.
    if (dst.dtype === 'i32') dst.storage.hostMirror = null;
    k.copy(deviceAddress(src), broadcastStrides(src, dst.shape), deviceAddress(dst), dst.strides, dst.shape);
    if (dst.storage.weight) cudaBackend().registerWeight(dst.storage);
    return;
  }
  if (src.dtype === 'i32' || dst.dtype === 'i32') {
    const values = src.toArray();
    const idx = new Array(dst.ndim).fill(0);
    for (let i = 0; i < values.length; i++) {
      let p = dst.offset;
      for (let d = 0; d < dst.ndim; d++) p += idx[d] * dst.strides[d];
      (dst.storage as HostArray)[p] = values[i];
      for (let d = dst.ndim - 1; d >= 0; d--) {
        if (++idx[d] < dst.shape[d]) break;
        idx[d] = 0;
      }
    }
    return;
  }
  k.copy(src.floatData(), broadcastStrides(src, dst.shape), dst.floatData(), dst.strides, dst.shape);
}

/** Concatenation along an axis. */
export function concat(xs: readonly Tensor[], dim: number): Tensor {
  if (xs.length === 0) throw new Error('concat of no tensors');
  const d = xs[0].axis(dim);
  const shape = [...xs[0].shape];
  shape[d] = xs.reduce((n, x) => {
    if (x.ndim !== shape.length || x.shape.some((s, i) => i !== d && s !== shape[i])) {
      throw new Error(`concat along axis ${dim}: shapes [${xs[0].shape}] and [${x.shape}] differ off that axis`);
    }
    return n + x.shape[d];
  }, 0);
  const out = empty(shape, xs[0].dtype, xs[0].device);
  const starts: number[] = [];
  let at = 0;
  for (const x of xs) {
    starts.push(at);
    copyInto(x, slice(out, d, at, at + x.shape[d]));
    at += x.shape[d];
  }
  return record(out, 'concat', xs, (g) => xs.map((x, i) => slice(g, d, starts[i], starts[i] + x.shape[d])));
}

/** Splits along an axis into pieces of the given sizes (views). */
export function split(x: Tensor, sizes: readonly number[], dim: number): Tensor[] {
  const d = x.axis(dim);
  if (sizes.reduce((a, b) => a + b, 0) !== x.shape[d]) {
    throw new Error(`split sizes [${sizes}] do not add up to axis ${dim} of length ${x.shape[d]}`);
  }
  let at = 0;
  return sizes.map((n) => slice(x, d, at, (at += n)));
}

// ---------------------------------------------------------------------------------------------------------
// Broadcasting

export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`shapes [${a}] and [${b}] do not broadcast`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** x's strides for reading it as `shape` (axes x lacks or has as 1 get stride 0). */
function broadcastStrides(x: Tensor, shape: Shape): number[] {
  return stridesBroadcast(x.shape, x.strides, shape);
}

function stridesBroadcast(from: Shape, strides: Shape, shape: Shape): number[] {
  const lead = shape.length - from.length;
  if (lead < 0) throw new Error(`cannot broadcast [${from}] to [${shape}]`);
  return shape.map((d, i) => {
    if (i < lead) return 0;
    const xd = from[i - lead];
    if (xd === d) return xd === 1 ? 0 : strides[i - lead];
    if (xd === 1) return 0;
    throw new Error(`cannot broadcast [${from}] to [${shape}]`);
  });
}

/** Sums a broadcast gradient back down to the shape of the input it was broadcast from. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) dims.push(i);
  return reshape(sum(g, dims, true), shape);
}

type Operand = Tensor | number;

function asTensor(x: Operand, like: Tensor): Tensor {
  return typeof x === 'number' ? scalar(x, like.dtype, like.device) : x;
}

// ---------------------------------------------------------------------------------------------------------
// Elementwise

function binaryRaw(op: BinaryOpName, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype) throw new TypeError(`${op}: dtypes ${a.dtype} and ${b.dtype} differ`);
  const k = kernels(op, a, b);
  const shape = broadcastShapes(a.shape, b.shape);
  const out = empty(shape, a.dtype, a.device);
  // Either operand may be a bf16-only GEMM output (ops.matmul): the kernel reads its copy.
  k.binary(op, rawData(a), broadcastStrides(a, shape), rawData(b), broadcastStrides(b, shape), out.floatData(), shape);
  return out;
}

export function add(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return record(binaryRaw('add', x, y), 'add', [x, y], addBackward(x, y));
}

function addBackward(x: Tensor, y: Tensor): GradNode['backward'] {
  return (g) => [sumTo(g, x.shape), sumTo(g, y.shape)];
}

/**
 * target = target (op) x, elementwise and in place, with nothing recorded: for buffers whose one reader is the
 * caller (backward() adding into gradients only it reads, clipGradNorm scaling gradients). target must be
 * contiguous; x has target's shape or broadcasts to it.
 */
export function binaryInPlace(op: BinaryOpName, target: Tensor, x: Operand): void {
  const y = asTensor(x, target);
  if (!target.isContiguous) throw new Error(`internal: ${op} in place into a non-contiguous ${target}`);
  if (target.dtype !== y.dtype) throw new TypeError(`${op}: dtypes ${target.dtype} and ${y.dtype} differ`);
  const out = target.floatData();
  kernels(op, target, y).binary(op, out, contiguousStrides(target.shape), rawData(y), broadcastStrides(y, target.shape), out, target.shape);
}

export function sub(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return record(binaryRaw('sub', x, y), 'sub', [x, y], (g) => [sumTo(g, x.shape), sumTo(neg(g), y.shape)]);
}

export function mul(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return record(binaryRaw('mul', x, y), 'mul', [x, y], (g) => [
    x.requiresGrad ? sumTo(mul(g, y), x.shape) : null,
    y.requiresGrad ? sumTo(mul(g, x), y.shape) : null,
  ]);
}

export function div(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return record(binaryRaw('div', x, y), 'div', [x, y], (g) => [
    x.requiresGrad ? sumTo(div(g, y), x.shape) : null,
    // d(x/y)/dy = -x / y^2
    y.requiresGrad ? sumTo(neg(div(mul(g, x), mul(y, y))), y.shape) : null,
  ]);
}

export function pow(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  const out = binaryRaw('pow', x, y);
  return record(out, 'pow', [x, y], (g) => [
    // d(x^y)/dx = y x^(y-1); d(x^y)/dy = x^y ln x
    x.requiresGrad ? sumTo(mul(g, mul(y, pow(x, sub(y, 1)))), x.shape) : null,
    y.requiresGrad ? sumTo(mul(g, mul(out, log(x))), y.shape) : null,
  ]);
}

/** Elementwise maximum; where a == b the gradient goes to a. */
export function maximum(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return record(binaryRaw('max', x, y), 'maximum', [x, y], (g) => {
    const pickX = binaryRaw('ge', x, y);
    return [sumTo(mul(g, pickX), x.shape), sumTo(mul(g, sub(1, pickX)), y.shape)];
  });
}

export function minimum(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return record(binaryRaw('min', x, y), 'minimum', [x, y], (g) => {
    const pickX = binaryRaw('le', x, y);
    return [sumTo(mul(g, pickX), x.shape), sumTo(mul(g, sub(1, pickX)), y.shape)];
  });
}

// Comparisons give 1 or 0 in the float dtype of their inputs and carry no gradient.
export const eq = (a: Operand, b: Operand): Tensor => binaryRaw('eq', ...operands(a, b));
export const ne = (a: Operand, b: Operand): Tensor => binaryRaw('ne', ...operands(a, b));
export const lt = (a: Operand, b: Operand): Tensor => binaryRaw('lt', ...operands(a, b));
export const le = (a: Operand, b: Operand): Tensor => binaryRaw('le', ...operands(a, b));
export const gt = (a: Operand, b: Operand): Tensor => binaryRaw('gt', ...operands(a, b));
export const ge = (a: Operand, b: Operand): Tensor => binaryRaw('ge', ...operands(a, b));

function operands(a: Operand, b: Operand): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number') return [scalar(a), scalar(b)];
  const like = (typeof a === 'number' ? b : a) as Tensor;
  return [asTensor(a, like), asTensor(b, like)];
}

/** cond ? a : b elementwise (cond is a 0/1 float mask); broadcasts all three. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  const k = kernels('where', cond, x, y);
  const shape = broadcastShapes(cond.shape, broadcastShapes(x.shape, y.shape));
  const out = empty(shape, x.dtype, x.device);
  k.where(cond.floatData(), broadcastStrides(cond, shape), x.floatData(), broadcastStrides(x, shape), y.floatData(),
    broadcastStrides(y, shape), out.floatData(), shape);
  return record(out, 'where', [x, y], (g) => [
    x.requiresGrad ? sumTo(where(cond, g, 0), x.shape) : null,
    y.requiresGrad ? sumTo(where(cond, 0, g), y.shape) : null,
  ]);
}

function unary(op: UnaryOpName, x: Tensor): Tensor {
  const k = kernels(op, x);
  const src = contiguous(x);
  const out = empty(x.shape, x.dtype, x.device);
  k.unary(op, src.floatData(), out.floatData(), out.size);
  return record(out, op, [src], (g) => {
    const dx = empty(x.shape, x.dtype, x.device);
    k.unaryBackward(op, src.floatData(), out.floatData(), contiguous(g).floatData(), dx.floatData(), dx.size);
    return [dx];
  });
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
/** GELU, tanh approximation (GPT-2's). */
export const gelu = (x: Tensor): Tensor => unary('geluTanh', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const recip = (x: Tensor): Tensor => unary('recip', x);
export const square = (x: Tensor): Tensor => unary('square', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);

/** silu(gate) * up in one pass: the SwiGLU MLP's activation. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (!sameShape(gate.shape, up.shape)) throw new Error(`swiglu: gate [${gate.shape}] and up [${up.shape}] differ`);
  const k = kernels('swiglu', gate, up);
  const g0 = contiguous(gate);
  const u0 = contiguous(up);
  const out = activationForGemms(empty(gate.shape, gate.dtype, gate.device));
  // gate and up are GEMM outputs, bf16 alone in bf16 precision: the kernels read their copies.
  k.swiglu(rawData(g0), rawData(u0), rawData(out), out.size);
  return record(out, 'swiglu', [g0, u0], (g) => {
    const dgate = gradientForGemms(empty(gate.shape, gate.dtype, gate.device), g0);
    const dup = gradientForGemms(empty(up.shape, up.dtype, up.device), u0);
    k.swigluBackward(rawData(g0), rawData(u0), rawData(contiguous(g)), rawData(dgate), rawData(dup), out.size);
    return [dgate, dup];
  });
}

// ---------------------------------------------------------------------------------------------------------
// Reductions

function normalizeDims(x: Tensor, dims: number | readonly number[] | undefined): number[] {
  if (dims === undefined) return x.shape.map((_, i) => i);
  const list = typeof dims === 'number' ? [dims] : dims;
  return [...new Set(list.map((d) => x.axis(d)))].sort((a, b) => a - b);
}

// Reduces the given (sorted) axes, keeping them as 1s: one kernel call per run of adjacent axes, each over a
// [outer, len, inner] view of the contiguous input (a bias gradient, [B, T, C] summed over B and T, is one call
// over B * T rows).
function reduceRaw(op: ReduceOpName, x: Tensor, dims: number[]): Tensor {
  const k = kernels(op, x);
  let cur = contiguous(x);
  for (let first = 0; first < dims.length;) {
    let last = first;
    while (last + 1 < dims.length && dims[last + 1] === dims[last] + 1) last++;
    const [from, to] = [dims[first], dims[last]];
    const outer = shapeSize(cur.shape.slice(0, from));
    const len = shapeSize(cur.shape.slice(from, to + 1));
    const inner = shapeSize(cur.shape.slice(to + 1));
    const shape = cur.shape.map((n, d) => (d >= from && d <= to ? 1 : n));
    const out = empty(shape, x.dtype, x.device);
    k.reduce(op, cur.floatData(), out.floatData(), outer, len, inner);
    cur = out;
    first = last + 1;
  }
  return cur;
}

function dropDims(shape: Shape, dims: number[]): number[] {
  return shape.filter((_, i) => !dims.includes(i));
}

export function sum(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const axes = normalizeDims(x, dims);
  const kept = reduceRaw('sum', x, axes);
  const out = keepdim ? kept : new Tensor(kept.storage, dropDims(x.shape, axes));
  return record(out, 'sum', [x], (g) => [contiguous(expand(reshape(g, kept.shape), x.shape))]);
}

export function mean(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const axes = normalizeDims(x, dims);
  const count = axes.reduce((n, d) => n * x.shape[d], 1);
  return mul(sum(x, axes, keepdim), 1 / count);
}

function extremum(op: 'max' | 'min', x: Tensor, dims: number | readonly number[] | undefined, keepdim: boolean): Tensor {
  const axes = normalizeDims(x, dims);
  const kept = reduceRaw(op, x, axes);
  const out = keepdim ? kept : new Tensor(kept.storage, dropDims(x.shape, axes));
  return record(out, op, [x], (g) => {
    // The gradient is shared equally among the elements that tie for the extremum.
    const hit = eq(x, kept);
    const count = reduceRaw('sum', hit, axes);
    return [mul(hit, div(reshape(g, kept.shape), count))];
  });
}

export const max = (x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor => extremum('max', x, dims, keepdim);
export const min = (x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor => extremum('min', x, dims, keepdim);

/** Sum of squares of all elements, as a number (gradient-norm clipping). */
export function sumSquares(x: Tensor): number {
  const src = contiguous(x);
  return kernels('sumSquares', x).sumSquares(src.floatData(), src.size);
}

/**
 * The L2 norm of all elements of `tensors` together (all on one device), as a scalar tensor on that device: on
 * CUDA the sums are queued on the device and nothing is read back, so a caller can go on queueing work (the
 * gradient-norm clip of an optimizer step) without waiting for the backward to finish.
 */
export function globalNorm(tensors: readonly Tensor[]): Tensor {
  const device = tensors[0]?.device ?? defaultDevice();
  if (device === 'cpu') {
    let sumSq = 0;
    for (const t of tensors) sumSq += sumSquares(t);
    return scalar(Math.sqrt(sumSq), 'f32', 'cpu');
  }
  const acc = zeros([], 'f32', device);
  for (const t of tensors) {
    kernels('globalNorm', acc, t);
    if (t.dtype !== 'f32') throw new TypeError(`globalNorm: ${t} is not float32`);
    const src = contiguous(t);
    cudaBackend().sumSquaresAdd(deviceAddress(src), src.size, deviceAddress(acc));
  }
  return sqrt(acc);
}

// ---------------------------------------------------------------------------------------------------------
// Softmax family (over the last axis)

function lastAxisRows(x: Tensor, dim: number, name: string): { rows: number; cols: number } {
  if (x.axis(dim) !== x.ndim - 1) throw new Error(`${name} runs over the last axis; transpose first (got axis ${dim} of [${x.shape}])`);
  const cols = x.shape[x.ndim - 1];
  return { rows: x.size / cols, cols };
}

export function softmax(x: Tensor, dim = -1): Tensor {
  const { rows, cols } = lastAxisRows(x, dim, 'softmax');
  const k = kernels('softmax', x);
  const src = contiguous(x);
  const out = empty(x.shape, x.dtype, x.device);
  k.softmax(src.floatData(), out.floatData(), rows, cols);
  return record(out, 'softmax', [src], (g) => {
    const dx = empty(x.shape, x.dtype, x.device);
    k.softmaxBackward(out.floatData(), contiguous(g).floatData(), dx.floatData(), rows, cols);
    return [dx];
  });
}

export function logSoftmax(x: Tensor, dim = -1): Tensor {
  const { rows, cols } = lastAxisRows(x, dim, 'logSoftmax');
  const k = kernels('logSoftmax', x);
  const src = contiguous(x);
  const out = empty(x.shape, x.dtype, x.device);
  k.logSoftmax(src.floatData(), out.floatData(), rows, cols);
  return record(out, 'logSoftmax', [src], (g) => {
    const dx = empty(x.shape, x.dtype, x.device);
    k.logSoftmaxBackward(out.floatData(), contiguous(g).floatData(), dx.floatData(), rows, cols);
    return [dx];
  });
}

export const IGNORE_INDEX = -100;

/**
 * Per-row cross-entropy -log softmax(logits)[target] over the last axis, fused so that the probabilities are
 * never materialised. logits [..., V], targets int32 [...]; rows whose target is `ignoreIndex` give 0.
 * reduction 'mean' averages over the rows that are not ignored (PyTorch's convention).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: { ignoreIndex?: number; reduction?: 'mean' | 'sum' | 'none' } = {}): Tensor {
  const ignoreIndex = options.ignoreIndex ?? IGNORE_INDEX;
  const vocab = logits.shape[logits.ndim - 1];
  const rows = logits.size / vocab;
  if (targets.size !== rows || targets.dtype !== 'i32') {
    throw new Error(`crossEntropy: targets must be int32 with ${rows} elements (logits [${logits.shape}]), got ${targets.dtype} [${targets.shape}]`);
  }
  const k = kernels('crossEntropy', logits, targets);
  const t = contiguous(targets);
  const ids = t.hostInts();
  let counted = 0;
  for (let i = 0; i < rows; i++) {
    const id = ids[i];
    if (id === ignoreIndex) continue;
    if (id < 0 || id >= vocab) throw new RangeError(`crossEntropy: target ${id} at row ${i} is outside [0, ${vocab})`);
    counted++;
  }
  const src = contiguous(logits);
  const losses = empty(targets.shape, logits.dtype, logits.device);
  const lse = empty([rows], logits.dtype, logits.device);
  // The logits may be the LM head's bf16-only output (ops.matmul): the kernels read its copy.
  k.crossEntropy(rawData(src), t.intData(), losses.floatData(), lse.floatData(), rows, vocab, ignoreIndex);
  const perRow = record(losses, 'crossEntropy', [src], (g) => {
    const dx = gradientForGemms(empty(src.shape, src.dtype, src.device), src);
    k.crossEntropyBackward(rawData(src), t.intData(), lse.floatData(), contiguous(g).floatData(), rawData(dx), rows, vocab, ignoreIndex);
    return [dx];
  });
  switch (options.reduction ?? 'mean') {
    case 'none': return perRow;
    case 'sum': return sum(perRow);
    case 'mean': return mul(sum(perRow), 1 / Math.max(counted, 1));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Matrix products

// One matrix operand as the GEMM kernel takes it: a batch of row-major matrices, maybe stored transposed.
interface GemmOperand { t: Tensor; rows: number; cols: number; trans: boolean; batchStride: number }

// Reads x [..., r, c] (batch dims already broadcast to `batch`) as a GEMM operand without copying when its
// layout allows: row-major or transposed matrices, batched with one uniform stride (or 0 = broadcast).
function gemmOperand(x: Tensor, batchShape: Shape): GemmOperand {
  const r = x.shape[x.ndim - 2];
  const c = x.shape[x.ndim - 1];
  const sr = x.strides[x.ndim - 2];
  const sc = x.strides[x.ndim - 1];
  const plain = sc === 1 && (sr === c || r === 1);
  const trans = !plain && sr === 1 && (sc === r || c === 1);
  const uniform = uniformBatchStride(batchShape, stridesBroadcast(x.shape.slice(0, -2), x.strides.slice(0, -2), batchShape), r * c);
  if ((plain || trans) && uniform !== null) return { t: x, rows: r, cols: c, trans, batchStride: uniform };
  const copy = contiguous(expand(x, [...batchShape, r, c]));
  return { t: copy, rows: r, cols: c, trans: false, batchStride: r * c };
}

function uniformBatchStride(batchShape: Shape, strides: number[], matrixSize: number): number | null {
  if (strides.every((s) => s === 0)) return 0;
  let expected = matrixSize;
  for (let d = batchShape.length - 1; d >= 0; d--) {
    if (batchShape[d] !== 1 && strides[d] !== expected) return null;
    expected *= batchShape[d];
  }
  return matrixSize;
}

/** op(A) @ op(B) for operands already in GEMM form; out is [...batch, m, n]. */
function gemm(a: GemmOperand, b: GemmOperand, batchShape: Shape): Tensor {
  // rows and cols are the logical (already transposed) sizes; `trans` only says how the data is stored.
  const m = a.rows;
  const k = a.cols;
  const n = b.cols;
  const k2 = kernels('matmul', a.t, b.t);
  const out = empty([...batchShape, m, n], a.t.dtype, a.t.device);
  // A product with a weight (an activation, or an activation's gradient) is written as bf16 alone in bf16
  // precision, as autocast keeps it; its readers take the copy or have the floats written back first. Products of
  // two activations (weight gradients, which AdamW reads as floats) stay float32.
  if (isModelWeight(a.t) || isModelWeight(b.t)) activationForGemms(out);
  k2.matmul(rawData(a.t), rawData(b.t), rawData(out), shapeSize(batchShape), m, n, k, a.trans, b.trans, a.batchStride, b.batchStride, m * n, 0);
  return out;
}

/**
 * Matrix product of the last two axes, batched and broadcast over the leading ones ([..., m, k] @ [..., k, n]).
 * Transposed views are read in place (the kernel's transpose flags), and a 2-d right operand folds the left
 * operand's batch into its rows, so `x @ W^T` over [B, T, in] is one GEMM.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim < 2 || b.ndim < 2) throw new Error(`matmul needs at least 2-d operands, got [${a.shape}] and [${b.shape}]`);
  if (a.dtype !== b.dtype) throw new TypeError(`matmul: dtypes ${a.dtype} and ${b.dtype} differ`);
  const k = a.shape[a.ndim - 1];
  if (b.shape[b.ndim - 2] !== k) throw new Error(`matmul: [${a.shape}] @ [${b.shape}]: inner sizes ${k} and ${b.shape[b.ndim - 2]} differ`);
  if (b.ndim === 2 && a.ndim > 2) {
    const lead = a.shape.slice(0, -1);
    const flat = reshape(a, [-1, k]);
    return reshape(matmul(flat, b), [...lead, b.shape[1]]);
  }
  const batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  // Operands that the backward reads again: each keeps its bf16 rounding for it (bf16 precision on CUDA).
  if (isGradEnabled() && b.requiresGrad) shareBf16Operand(a);
  if (isGradEnabled() && a.requiresGrad) shareBf16Operand(b);
  const out = gemm(gemmOperand(a, batchShape), gemmOperand(b, batchShape), batchShape);
  return record(out, 'matmul', [a, b], (g) => {
    if (a.requiresGrad && b.requiresGrad) shareBf16Operand(g);
    return [
      // dA = g @ B^T and dB = A^T @ g (summed over broadcast batch axes)
      a.requiresGrad ? sumTo(matmul(g, transpose(b)), a.shape) : null,
      b.requiresGrad ? gradOfRight(a, b, g) : null,
    ];
  });
}

// A tensor's data as it is: on a device its address without writing back the floats of a bf16-only buffer
// (DeviceArray.floatsPending). For the matmul kernel's operands (a bf16 GEMM reads their bf16 copies, and writes
// a bf16-only operand's floats back itself where it reads floats) and for the kernel that writes a bf16-only
// output (gradientForGemms), which must not be widened before it is written.
function rawData(t: Tensor): FloatArray | number {
  return t.storage instanceof DeviceArray ? t.storage.rawAddress(() => t.toString()) + t.offset * 4 : t.floatData();
}

/**
 * A fresh gradient buffer for `input`, made bf16-only (DeviceBackend.bf16OnlyOutput: its kernel writes just the
 * bf16 copy) when bf16 GEMMs are all that read it: when input is a matmul's output, seen through reshapes
 * (whose backward passes the gradient on as a view). Any other reader writes the floats back first. The kernel
 * writes it through rawData.
 */
function gradientForGemms(grad: Tensor, input: Tensor): Tensor {
  let node = input.node;
  while (node?.op === 'reshape') node = node.inputs[0].node;
  return node?.op === 'matmul' ? activationForGemms(grad) : grad;
}

/**
 * A fresh output made bf16-only (DeviceBackend.bf16OnlyOutput) in bf16 precision: its kernel writes the bf16
 * copy alone, for activations that the models' bf16 GEMMs read (RMSNorm's and SwiGLU's outputs, products with a
 * weight). Any reader of floats has them written back first (DeviceArray.address); the kernel writes it through
 * rawData.
 */
function activationForGemms(out: Tensor): Tensor {
  if (out.storage instanceof DeviceArray) cudaBackend().bf16OnlyOutput(out.storage);
  return out;
}

function isModelWeight(t: Tensor): boolean {
  return t.storage instanceof DeviceArray && t.storage.modelWeight;
}

// A float32 operand that more than one bf16 GEMM reads, whole (a view of part of a buffer is rounded per call).
function shareBf16Operand(t: Tensor): void {
  if (t.storage instanceof DeviceArray && t.size === t.storage.length) cudaBackend().shareBf16Operand(t.storage);
}

// When B is a transposed view (x @ W^T with W [out, in]), (A^T g) is computed as (g^T A)^T so that the
// gradient lands in W's own row-major layout and reaches W's .grad without a transposing copy.
function gradOfRight(a: Tensor, b: Tensor, g: Tensor): Tensor {
  const storedTransposed = b.ndim === 2 && b.strides[0] === 1 && b.strides[1] === b.shape[0] && b.shape[0] > 1;
  if (storedTransposed) return transpose(matmul(transpose(g), a));
  return sumTo(matmul(transpose(a), g), b.shape);
}

// In bf16 precision on CUDA (a weight registered by Module) the bias is added by the GEMM's epilogue
// (r1_cuda_linear), into the product before it is rounded to the bf16-only output: no pass of its own over the
// output, whose readers (RoPE, the attention) then read bf16. The backward is matmul's for x @ W^T, plus the bias's
// sum over rows. Elsewhere linear is matmul and add.
function linearWithBias(x: Tensor, weight: Tensor, bias: Tensor): Tensor {
  const [n, k] = weight.shape;
  const x2 = contiguous(reshape(x, [-1, k]));
  const m = x2.shape[0];
  const w = contiguous(weight);
  if (isGradEnabled() && weight.requiresGrad) shareBf16Operand(x2);
  const y = activationForGemms(empty([m, n], 'f32', x.device));
  cudaBackend().linear(rawData(x2) as number, false, rawData(w) as number, false, deviceAddress(contiguous(bias)), rawData(y) as number, m, n, k);
  const out = record(y, 'linear', [x2, w, bias], (g) => {
    if (x2.requiresGrad && w.requiresGrad) shareBf16Operand(g);
    return [
      x2.requiresGrad ? matmul(g, w) : null,
      w.requiresGrad ? matmul(transpose(g), x2) : null,  // [n, k]: W's own row-major layout
      bias.requiresGrad ? sum(g, 0) : null,
    ];
  });
  return reshape(out, [...x.shape.slice(0, -1), n]);
}

/** x @ W^T + bias with W stored [out, in] (PyTorch and Hugging Face layout). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (bias && isModelWeight(weight) && weight.ndim === 2 && bias.ndim === 1 && bias.size === weight.shape[0] && x.shape[x.ndim - 1] === weight.shape[1] &&
    x.dtype === 'f32' && bias.dtype === 'f32') {
    return linearWithBias(x, weight, bias);
  }
  const y = matmul(x, transpose(weight));
  if (!bias) return y;
  if (y.device !== 'cpu' || bias.dtype !== y.dtype || !sameShape(broadcastShapes(y.shape, bias.shape), y.shape)) return add(y, bias);
  // On the CPU the bias is added into the product's own buffer, as add(y, bias) would compute it, instead of
  // into a new one: nothing but this function reads y, and its backward does not read its values.
  const out = new Tensor(y.storage, y.shape, { strides: y.strides, offset: y.offset });
  binaryInPlace('add', out, bias);
  return record(out, 'add', [y, bias], addBackward(y, bias));
}

// ---------------------------------------------------------------------------------------------------------
// Indexing

/** Rows of `table` [V, D] picked by int32 ids of any shape: out [...ids.shape, D]. */
export function embedding(table: Tensor, ids: Tensor, indices: IndexSource = 'checked'): Tensor {
  const [vocab, dim] = table.shape;
  const k = kernels('embedding', table, ids);
  const ids0 = contiguous(ids);
  checkIndices('embedding', 'id', ids0, vocab, indices);
  const src = contiguous(table);
  const out = empty([...ids.shape, dim], table.dtype, table.device);
  k.embedding(src.floatData(), ids0.intData(), out.floatData(), ids0.size, dim);
  return record(out, 'embedding', [src], (g) => {
    const dtable = zeros(table.shape, table.dtype, table.device);
    k.embeddingBackward(ids0.intData(), contiguous(g).floatData(), dtable.floatData(), ids0.size, dim);
    return [dtable];
  });
}

/**
 * Where an index tensor comes from: 'checked' (the default) reads it on the host and throws for an index out of
 * range; 'in range' is for indices that a kernel made in range by construction on the device (the MoE dispatch,
 * src/tensor/moe.ts), which reading back would cost a wait for the device on every call.
 */
export type IndexSource = 'checked' | 'in range';

function checkIndices(op: string, what: string, index: Tensor, bound: number, source: IndexSource): void {
  if (source === 'in range') return;
  const idx = index.hostInts();
  for (let i = 0; i < idx.length; i++) {
    if (idx[i] < 0 || idx[i] >= bound) throw new RangeError(`${op}: ${what} ${idx[i]} at position ${i} is outside [0, ${bound})`);
  }
}

/**
 * torch.index_add along the first axis: out = base, then out[index[i]] += src[i] for each row i of src (repeated
 * indices add up). base [N, ...], src [n, ...] with the same trailing shape, index int32 [n]. The adjoint of
 * `embedding`: MoE combines expert outputs back into token order with it, and gathers rows with `embedding`.
 */
export function indexAdd(base: Tensor, index: Tensor, src: Tensor, indices: IndexSource = 'checked'): Tensor {
  const rows = base.shape[0];
  const rowSize = shapeSize(base.shape.slice(1));
  if (base.ndim < 1 || src.ndim !== base.ndim || src.shape.some((d, i) => i > 0 && d !== base.shape[i]) || index.size !== src.shape[0]) {
    throw new Error(`indexAdd: base [${base.shape}], index [${index.shape}] and src [${src.shape}] do not fit (src [n, ...base.shape[1:]], index [n])`);
  }
  if (base.dtype !== src.dtype) throw new TypeError(`indexAdd: dtypes ${base.dtype} and ${src.dtype} differ`);
  const k = kernels('indexAdd', base, index, src);
  const index0 = contiguous(index);
  checkIndices('indexAdd', 'index', index0, rows, indices);
  const out = empty(base.shape, base.dtype, base.device);
  copyInto(base, out);
  const s0 = contiguous(src);
  k.embeddingBackward(index0.intData(), s0.floatData(), out.floatData(), index0.size, rowSize);
  return record(out, 'indexAdd', [base, s0], (g) => [
    // d out / d base is the identity; row i of src reaches out[index[i]], so its gradient is that row of g.
    g,
    s0.requiresGrad ? reshape(embedding(reshape(g, [rows, rowSize]), index, 'in range'), s0.shape) : null,
  ]);
}

/** torch.gather: out[..., j, ...] = x[..., index[..., j, ...], ...] along `dim`. */
export function gather(x: Tensor, dim: number, index: Tensor, indices: IndexSource = 'checked'): Tensor {
  const d = x.axis(dim);
  if (index.ndim !== x.ndim || index.shape.some((s, i) => i !== d && s !== x.shape[i])) {
    throw new Error(`gather: index [${index.shape}] must match x [${x.shape}] off axis ${dim}`);
  }
  const outer = shapeSize(x.shape.slice(0, d));
  const inner = shapeSize(x.shape.slice(d + 1));
  const len = x.shape[d];
  const k = index.shape[d];
  const kern = kernels('gather', x, index);
  const index0 = contiguous(index);
  checkIndices('gather', 'index', index0, len, indices);
  const src = contiguous(x);
  const out = empty(index.shape, x.dtype, x.device);
  kern.gather(src.floatData(), index0.intData(), out.floatData(), outer, len, inner, k);
  return record(out, 'gather', [src], (g) => {
    const dx = zeros(x.shape, x.dtype, x.device);
    kern.scatterAdd(index0.intData(), contiguous(g).floatData(), dx.floatData(), outer, len, inner, k);
    return [dx];
  });
}

// ---------------------------------------------------------------------------------------------------------
// Normalisation, rotary embedding, attention: fused kernels

/** RMSNorm over the last axis: w * x / sqrt(mean(x^2) + eps) (Zhang & Sennrich 2019). */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const dim = x.shape[x.ndim - 1];
  if (weight.size !== dim) throw new Error(`rmsNorm: weight of ${weight.size} elements for rows of ${dim}`);
  const rows = x.size / dim;
  const k = kernels('rmsNorm', x, weight);
  const src = contiguous(x);
  const w = contiguous(weight);
  const out = activationForGemms(empty(x.shape, x.dtype, x.device));
  const rstd = empty([rows], x.dtype, x.device);
  k.rmsnorm(src.floatData(), w.floatData(), rawData(out), rstd.floatData(), rows, dim, eps);
  return record(out, 'rmsNorm', [src, w], (g) => {
    const dx = empty(x.shape, x.dtype, x.device);
    const dw = zeros(weight.shape, weight.dtype, weight.device);
    k.rmsnormBackward(src.floatData(), w.floatData(), rstd.floatData(), contiguous(g).floatData(), dx.floatData(), dw.floatData(), rows, dim);
    return [dx, dw];
  });
}

/** Precomputed rotation tables: row p holds cos/sin(p * invFreq[i]) for i < rotDim / 2. */
export interface RopeTables { cos: Tensor; sin: Tensor; rotDim: number; interleaved: boolean }

/**
 * Rotary position embedding (Su et al. 2021) of x [B, T, H, D] at int32 positions [B, T]; backward rotates the
 * gradient by the opposite angle.
 */
export function rope(x: Tensor, positions: Tensor, tables: RopeTables): Tensor {
  if (x.ndim !== 4) throw new Error(`rope: x must be [B, T, H, D], got [${x.shape}]`);
  const [B, T, H, D] = x.shape;
  if (positions.size !== B * T) throw new Error(`rope: ${positions.size} positions for ${B}x${T} tokens`);
  const k = kernels('rope', x, positions, tables.cos, tables.sin);
  const positions0 = contiguous(positions);
  const pos = positions0.hostInts();
  const maxPos = tables.cos.shape[0];
  for (let i = 0; i < pos.length; i++) {
    if (pos[i] < 0 || pos[i] >= maxPos) throw new RangeError(`rope: position ${pos[i]} is outside the table of ${maxPos} positions`);
  }
  const src = contiguous(x);
  const out = empty(x.shape, x.dtype, x.device);
  const apply = (input: FloatArray | number, output: FloatArray | number, inverse: boolean) =>
    k.rope(input, output, positions0.intData(), tables.cos.floatData(), tables.sin.floatData(), B * T, H, D, tables.rotDim, tables.interleaved, inverse);
  // x may be a projection's bf16-only output (ops.matmul), the kernel reads its copy; so may the gradient.
  apply(rawData(src), out.floatData(), false);
  return record(out, 'rope', [src], (g) => {
    const dx = gradientForGemms(empty(x.shape, x.dtype, x.device), src);
    apply(rawData(contiguous(g)), rawData(dx), true);
    return [dx];
  });
}

export interface AttentionOptions {
  causal?: boolean;
  /** Defaults to 1 / sqrt(head dim). */
  scale?: number;
  /** Per batch row, the first key position that may be attended to (left padding); int32 [B]. */
  kvStart?: Tensor | null;
}

/**
 * Scaled dot-product attention with grouped-query heads, fused (flash-attention style, no [T, T] matrix kept):
 * q [B, Tq, Hq, D], k [B, Tk, Hkv, D], v [B, Tk, Hkv, Dv] -> [B, Tq, Hq, Dv]. Query i sits at position
 * Tk - Tq + i, so the same op serves training (Tq = Tk) and decoding against a cache.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const [B, Tq, Hq, D] = q.shape;
  const [Bk, Tk, Hkv, Dk] = k.shape;
  const Dv = v.shape[3];
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4 || Bk !== B || Dk !== D || v.shape[0] !== B || v.shape[1] !== Tk || v.shape[2] !== Hkv) {
    throw new Error(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not fit [B, T, H, D]`);
  }
  if (Hq % Hkv !== 0) throw new Error(`attention: ${Hq} query heads are not a multiple of ${Hkv} key/value heads`);
  const causal = options.causal ?? true;
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const kern = options.kvStart ? kernels('attention', q, k, v, options.kvStart) : kernels('attention', q, k, v);
  const kvStartTensor = options.kvStart ? contiguous(options.kvStart) : null;
  const kvStart = (): Int32Array | number | null => kvStartTensor?.intData() ?? null;
  const q0 = contiguous(q);
  const out = empty([B, Tq, Hq, Dv], q.dtype, q.device);
  const lse = empty([B, Hq, Tq], q.dtype, q.device);
  // Decoding reads k and v in place from a KV cache (views [B, Tk, H, D] of [B, capacity, H, D] buffers).
  const inPlace = !isGradEnabled() || !(q.requiresGrad || k.requiresGrad || v.requiresGrad);
  if (inPlace && rowsContiguous(k) && rowsContiguous(v)) {
    kern.attention(q0.floatData(), k.floatData(), v.floatData(), out.floatData(), lse.floatData(), kvStart(), B, Tq, Tk, Hq, Hkv, D, Dv,
      B === 1 ? Tk * Hkv * D : k.strides[0], B === 1 ? Tk * Hkv * Dv : v.strides[0], scale, causal);
    return out;
  }
  const k0 = contiguous(k);
  const v0 = contiguous(v);
  // Training's output is read by o_proj's GEMMs and the backward: bf16 alone in bf16 precision (the tensor-core
  // kernel writes the copy; the float32 kernels write floats and end the promise). v (a projection's output) and
  // the backward's out and dO (o_proj's backward GEMM's) may be bf16-only: the kernels read their copies.
  activationForGemms(out);
  kern.attention(q0.floatData(), k0.floatData(), rawData(v0), rawData(out), lse.floatData(), kvStart(), B, Tq, Tk, Hq, Hkv, D, Dv,
    Tk * Hkv * D, Tk * Hkv * Dv, scale, causal);
  return record(out, 'attention', [q0, k0, v0], (g) => {
    const dq = empty(q.shape, q.dtype, q.device);
    const dk = empty(k.shape, k.dtype, k.device);
    const dv = empty(v.shape, v.dtype, v.device);
    kern.attentionBackward(q0.floatData(), k0.floatData(), rawData(v0), rawData(out), lse.floatData(), rawData(contiguous(g)),
      dq.floatData(), dk.floatData(), dv.floatData(), kvStart(), B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal);
    return [dq, dk, dv];
  });
}

// [B, T, H, D] with each batch row's [T, H, D] block contiguous (the batch stride may be anything).
function rowsContiguous(x: Tensor): boolean {
  const [, T, H, D] = x.shape;
  return x.strides[3] === 1 && (x.strides[2] === D || H === 1) && (x.strides[1] === H * D || T === 1);
}

bindTapeOps({ add, binaryInPlace, onesLike, contiguous, to });

// ---------------------------------------------------------------------------------------------------------
// A CUDA decode step with no host-side length: the column a step writes and the keys it attends to are read
// from device memory, so a CUDA graph recorded once replays the step at every column (the sampling engine,
// src/generate/engine.ts). The CPU decodes with copyInto and attention, which take the length from the host.
// Neither op is differentiable (decoding runs without a tape).

function cudaOnly(op: string, ...inputs: Tensor[]): void {
  for (const t of inputs) if (t.device !== 'cuda') throw new Error(`${op}: ${t} is on ${t.device}; ${op} is a CUDA decoding op (on the CPU, use copyInto and attention)`);
}

/**
 * How a KV cache holds its keys and values: float32, or bf16 packed two to a float32 word (a cache [B, capacity,
 * Hkv, D] of bf16 is a float32 tensor [B, capacity, Hkv, D / 2], element 2i in the low half of word i; made by
 * packBf16, read and written only by decodeAttention and writeColumns).
 */
export type CacheFormat = 'f32' | 'bf16';

/** Elements of the cache per float32 word. */
const elementsPerWord = (format: CacheFormat) => (format === 'bf16' ? 2 : 1);

/**
 * cache[b, column[b]] = src[b, 0] for a contiguous cache [B, capacity, ...] and src [B, 1, ...], column int32 [B];
 * into a bf16 cache (CacheFormat), rounded to nearest even.
 */
export function writeColumns(cache: Tensor, src: Tensor, column: Tensor, format: CacheFormat = 'f32'): void {
  cudaOnly('writeColumns', cache, src, column);
  const [B, capacity] = cache.shape;
  const width = (cache.size / (B * capacity)) * elementsPerWord(format);
  if (!cache.isContiguous || src.shape[0] !== B || src.size !== B * width || column.dtype !== 'i32' || column.size !== B) {
    throw new Error(`writeColumns: cache ${cache} (${format}), src ${src} and column ${column} do not fit [B, capacity, ...], [B, 1, ...] and int32 [B]`);
  }
  cudaBackend().writeColumns(deviceAddress(cache), deviceAddress(contiguous(src)), deviceAddress(contiguous(column)), B, capacity, width, format === 'bf16');
  if (cache.storage instanceof DeviceArray && cache.storage.weight) cudaBackend().registerWeight(cache.storage);
}

/** x [..., D] (D even) rounded to bf16 and packed two to a word: float32 [..., D / 2] (CacheFormat 'bf16'). */
export function packBf16(x: Tensor): Tensor {
  cudaOnly('packBf16', x);
  const D = x.shape[x.ndim - 1];
  if (x.dtype !== 'f32' || D % 2 !== 0) throw new Error(`packBf16: ${x} is not float32 with an even last dimension`);
  const out = empty([...x.shape.slice(0, -1), D / 2], 'f32', x.device);
  cudaBackend().toBf16(deviceAddress(contiguous(x)), deviceAddress(out), x.size);
  return out;
}

/**
 * Attention of one query per row, q [B, 1, Hq, D], over whole caches k and v [B, capacity, Hkv, D], row b seeing
 * the keys [kvStart[b], kvEnd[b]) (int32 [B] each): what attention(q, k[:, :end], v[:, :end], { kvStart })
 * computes for a decode step whose end is on the device. Head size 64 or 128. `format` is the caches'; with
 * outFormat 'bf16' the output is written packed in bf16 ([B, 1, Hq, D / 2] words, as packBf16 makes it), ready to
 * be the next GEMM's operand.
 */
export function decodeAttention(q: Tensor, k: Tensor, v: Tensor, kvStart: Tensor, kvEnd: Tensor, format: CacheFormat = 'f32', outFormat: CacheFormat = 'f32'): Tensor {
  cudaOnly('decodeAttention', q, k, v, kvStart, kvEnd);
  const [B, Tq, Hq, D] = q.shape;
  const [Bk, capacity, Hkv, words] = k.shape;
  if (q.ndim !== 4 || Tq !== 1 || Bk !== B || words * elementsPerWord(format) !== D || !sameShape(k.shape, v.shape) || !k.isContiguous || !v.isContiguous || kvStart.size !== B || kvEnd.size !== B) {
    throw new Error(`decodeAttention: q [${q.shape}], k [${k.shape}], v [${v.shape}] (${format}) do not fit [B, 1, Hq, D] and contiguous caches [B, capacity, Hkv, D]`);
  }
  const out = empty([B, 1, Hq, D / elementsPerWord(outFormat)], q.dtype, q.device);
  cudaBackend().decodeAttention(deviceAddress(contiguous(q)), deviceAddress(k), deviceAddress(v), deviceAddress(out), deviceAddress(contiguous(kvStart)),
    deviceAddress(contiguous(kvEnd)), B, Hq, Hkv, D, capacity, capacity * Hkv * D, capacity * Hkv * D, 1 / Math.sqrt(D), format === 'bf16', outFormat === 'bf16');
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The fused kernels of a dense model's CUDA decode step (src/models/dense-decode.ts): a residual add with
// RMSNorm, GEMMs with their bias in the epilogue over concatenated weights, RoPE with the cache-column write, and
// SwiGLU over one GEMM's gate and up. An operand or output in 'bf16' format is packed two to a float32 word, as
// packBf16 makes it (a [rows, n] bf16 matrix is a float32 tensor [rows, n / 2]), so the GEMM that reads it does not
// round it again. Like the ops above, these are CUDA-only and not differentiable.

/** Columns of a 2-d operand of `format` (a bf16 one holds two per float32 word). */
const logicalColumns = (x: Tensor, format: CacheFormat) => x.shape[x.ndim - 1] * elementsPerWord(format);

/**
 * sum = x + residual (or x itself when residual is null) and RMSNorm(sum) * weight, over rows of x [rows, dim]:
 * the normed rows in `format`, ready to be a GEMM operand. What add, rmsNorm and the GEMM's rounding compute, in
 * one kernel.
 */
export function addRmsNorm(x: Tensor, residual: Tensor | null, weight: Tensor, eps: number, format: CacheFormat = 'f32'): { sum: Tensor; normed: Tensor } {
  cudaOnly('addRmsNorm', x, weight, ...(residual ? [residual] : []));
  const dim = x.shape[x.ndim - 1];
  const rows = x.size / dim;
  if (weight.size !== dim || (residual && !sameShape(residual.shape, x.shape)) || dim % elementsPerWord(format) !== 0) {
    throw new Error(`addRmsNorm: x ${x}, residual ${residual} and weight ${weight} do not fit rows of ${dim}${format === 'bf16' ? ' (even, for bf16)' : ''}`);
  }
  const sum = residual ? empty(x.shape, 'f32', x.device) : x;
  const normed = empty([...x.shape.slice(0, -1), dim / elementsPerWord(format)], 'f32', x.device);
  cudaBackend().addRmsNorm(deviceAddress(contiguous(x)), residual ? deviceAddress(contiguous(residual)) : 0, deviceAddress(contiguous(weight)),
    residual ? deviceAddress(sum) : 0, deviceAddress(normed), rows, dim, eps, format === 'bf16');
  return { sum, normed };
}

/**
 * x [m, k] @ weight[n, k]^T + bias[n] -> float32 [m, n], the bias added by the GEMM itself; x and weight each in
 * their format ('bf16' operands need bf16 matmul precision; a float32 one is rounded as matmul rounds it there).
 */
export function decodeLinear(x: Tensor, weight: Tensor, bias: Tensor | null, formats: { x?: CacheFormat; weight?: CacheFormat } = {}): Tensor {
  cudaOnly('decodeLinear', x, weight, ...(bias ? [bias] : []));
  const xFormat = formats.x ?? 'f32';
  const wFormat = formats.weight ?? 'f32';
  const k = logicalColumns(x, xFormat);
  const [n] = weight.shape;
  if (x.ndim !== 2 || weight.ndim !== 2 || logicalColumns(weight, wFormat) !== k || (bias && bias.size !== n)) {
    throw new Error(`decodeLinear: x ${x} (${xFormat}), weight ${weight} (${wFormat}) and bias ${bias} do not fit [m, k], [n, k] and [n]`);
  }
  const m = x.shape[0];
  const y = empty([m, n], 'f32', x.device);
  cudaBackend().linear(deviceAddress(contiguous(x)), xFormat === 'bf16', deviceAddress(contiguous(weight)), wFormat === 'bf16',
    bias ? deviceAddress(contiguous(bias)) : 0, deviceAddress(y), m, n, k);
  return y;
}

/**
 * The attention input of a decode step from one projection qkv [B, (Hq + 2 Hkv) * D] (q heads, then k heads, then
 * v heads): returns q [B, 1, Hq, D] rotated at `positions` (int32 [B, 1]), and writes the rotated keys and the
 * values to column column[b] of the caches [B, capacity, Hkv, D] (in `format`): rope, rope and two writeColumns.
 */
export function ropeWriteKv(qkv: Tensor, positions: Tensor, tables: RopeTables, column: Tensor, cache: { k: Tensor; v: Tensor }, heads: { q: number; kv: number },
  format: CacheFormat = 'f32'): Tensor {
  cudaOnly('ropeWriteKv', qkv, positions, tables.cos, tables.sin, column, cache.k, cache.v);
  const [B, capacity, Hkv, words] = cache.k.shape;
  const D = words * elementsPerWord(format);
  const Hq = heads.q;
  if (Hkv !== heads.kv || qkv.ndim !== 2 || qkv.shape[0] !== B || qkv.shape[1] !== (Hq + 2 * Hkv) * D || !sameShape(cache.k.shape, cache.v.shape)
    || !cache.k.isContiguous || !cache.v.isContiguous || positions.size !== B || column.size !== B || positions.dtype !== 'i32' || column.dtype !== 'i32') {
    throw new Error(`ropeWriteKv: qkv ${qkv}, caches ${cache.k} and ${cache.v} (${format}), positions ${positions} and column ${column} do not fit ${Hq} + 2 x ${heads.kv} heads`);
  }
  const q = empty([B, 1, Hq, D], 'f32', qkv.device);
  cudaBackend().ropeWriteKv(deviceAddress(contiguous(qkv)), deviceAddress(contiguous(positions)), deviceAddress(tables.cos), deviceAddress(tables.sin),
    deviceAddress(contiguous(column)), deviceAddress(q), deviceAddress(cache.k), deviceAddress(cache.v), B, Hq, Hkv, D, tables.rotDim, tables.interleaved, capacity,
    format === 'bf16');
  if (cache.k.storage instanceof DeviceArray && cache.k.storage.weight) cudaBackend().registerWeight(cache.k.storage);
  if (cache.v.storage instanceof DeviceArray && cache.v.storage.weight) cudaBackend().registerWeight(cache.v.storage);
  return q;
}

/** swiglu(gate, up) for gateUp [rows, 2 I] holding gate then up (one GEMM's output): [rows, I] in `format`. */
export function swigluRows(gateUp: Tensor, format: CacheFormat = 'f32'): Tensor {
  cudaOnly('swigluRows', gateUp);
  const [rows, width] = gateUp.shape;
  const inter = width / 2;
  if (gateUp.ndim !== 2 || width % 2 !== 0 || inter % elementsPerWord(format) !== 0) throw new Error(`swigluRows: ${gateUp} is not [rows, 2 I]${format === 'bf16' ? ' with I even' : ''}`);
  const y = empty([rows, inter / elementsPerWord(format)], 'f32', gateUp.device);
  cudaBackend().swigluRows(deviceAddress(contiguous(gateUp)), deviceAddress(y), rows, inter, format === 'bf16');
  return y;
}

/**
 * A projection's rows (or a bias) [H D, C] (or [H D]) with each head's D rows in tiles of 8 rotation pairs: tile u
 * holds the first elements of pairs 8u..8u+7, then their second elements (pairs (i, i + D/2), or (2i, 2i + 1)
 * when interleaved); the layout whose RoPE is the GEMM's epilogue (decodeLinearRopeKv). D a multiple of 16.
 */
export function pairRopeRows(x: Tensor, D: number, interleaved: boolean): Tensor {
  const rows = x.shape[0];
  const width = x.size / rows;
  if (D % 16 !== 0 || rows % D !== 0) throw new Error(`pairRopeRows: ${x} does not hold heads of ${D} rows (D a multiple of 16)`);
  // Split halves: d = half * D/2 + 8u + i; interleaved: d = 2 (8u + i) + half. Either way, to [u, half, i].
  const split = interleaved ? reshape(x, [rows / D, D / 16, 8, 2, width]) : reshape(x, [rows / D, 2, D / 16, 8, width]);
  const paired = contiguous(permute(split, interleaved ? [0, 1, 3, 2, 4] : [0, 2, 1, 3, 4]));
  return reshape(paired, x.shape);
}

/**
 * ropeWriteKv(decodeLinear(x, qkv, bias), ...) in one kernel where the rows allow (the skinny GEMM's epilogue): x
 * [B, k] packed bf16, qkv [(Hq + 2 Hkv) D, k] packed bf16 and bias [(Hq + 2 Hkv) D] (or null) with rows as
 * pairRopeRows lays them out; RoPE over the whole head. Returns q [B, 1, Hq, D] and writes the keys and values as
 * ropeWriteKv does. bf16 matmul precision.
 */
export function decodeLinearRopeKv(x: Tensor, qkv: Tensor, bias: Tensor | null, positions: Tensor, tables: RopeTables, column: Tensor, cache: { k: Tensor; v: Tensor },
  heads: { q: number; kv: number }, format: CacheFormat = 'f32'): Tensor {
  cudaOnly('decodeLinearRopeKv', x, qkv, positions, tables.cos, tables.sin, column, cache.k, cache.v, ...(bias ? [bias] : []));
  const [B, capacity, Hkv, words] = cache.k.shape;
  const D = words * elementsPerWord(format);
  const Hq = heads.q;
  const k = logicalColumns(x, 'bf16');
  const n = (Hq + 2 * Hkv) * D;
  if (Hkv !== heads.kv || x.ndim !== 2 || x.shape[0] !== B || qkv.ndim !== 2 || qkv.shape[0] !== n || logicalColumns(qkv, 'bf16') !== k || (bias && bias.size !== n)
    || tables.rotDim !== D || D % 16 !== 0 || !sameShape(cache.k.shape, cache.v.shape) || !cache.k.isContiguous || !cache.v.isContiguous
    || positions.size !== B || column.size !== B || positions.dtype !== 'i32' || column.dtype !== 'i32') {
    throw new Error(`decodeLinearRopeKv: x ${x}, qkv ${qkv}, caches ${cache.k} and ${cache.v} (${format}), positions ${positions} and column ${column} do not fit ${Hq} + 2 x ${heads.kv} heads rotated whole (D a multiple of 16)`);
  }
  const q = empty([B, 1, Hq, D], 'f32', x.device);
  cudaBackend().linearRopeKv(deviceAddress(contiguous(x)), deviceAddress(contiguous(qkv)), bias ? deviceAddress(contiguous(bias)) : 0, deviceAddress(contiguous(positions)),
    deviceAddress(tables.cos), deviceAddress(tables.sin), deviceAddress(contiguous(column)), deviceAddress(q), deviceAddress(cache.k), deviceAddress(cache.v), B, Hq, Hkv, D,
    tables.interleaved, capacity, format === 'bf16', k);
  if (cache.k.storage instanceof DeviceArray && cache.k.storage.weight) cudaBackend().registerWeight(cache.k.storage);
  if (cache.v.storage instanceof DeviceArray && cache.v.storage.weight) cudaBackend().registerWeight(cache.v.storage);
  return q;
}

/** Gate and up weights [I, C] each as one [2 I, C] whose rows come in groups of 16: 8 gate rows, then the same 8 up rows (I a multiple of 8). */
export function groupGateUp(gate: Tensor, up: Tensor): Tensor {
  const [inter, width] = gate.shape;
  if (gate.ndim !== 2 || !sameShape(gate.shape, up.shape) || inter % 8 !== 0) throw new Error(`groupGateUp: gate ${gate} and up ${up} are not two [I, C] with I a multiple of 8`);
  return reshape(concat([reshape(gate, [inter / 8, 8, width]), reshape(up, [inter / 8, 8, width])], 1), [2 * inter, width]);
}

/**
 * swigluRows(decodeLinear(x, gateUp), 'bf16') in one kernel where the rows allow (the skinny GEMM's epilogue,
 * native/cuda/skinny_gemm.cu): x [m, k] and gateUp [2 I, k] both packed bf16, gateUp's rows grouped as groupGateUp
 * makes them; returns bf16 [m, I] packed (float32 [m, I / 2]). bf16 matmul precision.
 */
export function decodeLinearSwiglu(x: Tensor, gateUp: Tensor): Tensor {
  cudaOnly('decodeLinearSwiglu', x, gateUp);
  const k = logicalColumns(x, 'bf16');
  const [n] = gateUp.shape;
  const inter = n / 2;
  if (x.ndim !== 2 || gateUp.ndim !== 2 || logicalColumns(gateUp, 'bf16') !== k || inter % 8 !== 0) {
    throw new Error(`decodeLinearSwiglu: x ${x} and gateUp ${gateUp} (bf16) do not fit [m, k] and [2 I, k] with I a multiple of 8`);
  }
  const m = x.shape[0];
  const y = empty([m, inter / 2], 'f32', x.device);
  cudaBackend().linearSwiglu(deviceAddress(contiguous(x)), deviceAddress(contiguous(gateUp)), deviceAddress(y), m, inter, k);
  return y;
}
