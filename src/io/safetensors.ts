// safetensors: read and write the format Hugging Face uses for weights (github.com/huggingface/safetensors,
// README "Format"): 8 bytes little-endian u64 N, N bytes of UTF-8 JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the byte buffer.
// Offsets are relative to the buffer start; tensors are C-ordered little-endian and must tile the buffer
// exactly (no holes, no overlaps, nothing after the last one), which the reference checks in
// `Metadata::validate` and `read_metadata` (MetadataIncompleteBuffer) and so do we.
//
// This layer works on plain records (NamedArray), not on Tensor objects: the model code maps between them.

import { open } from 'node:fs/promises';
import { UserError } from '../util/errors.ts';
import { writeAll, writeFileAtomicWith } from './atomic.ts';

/**
 * Element types in the reference's alignment order (its `Dtype` enum, "They MUST be in increasing alignment
 * order"); the writer sorts by this order, largest first, so every tensor starts at a multiple of its size.
 * The sub-byte types (F4, F6_*) are left out: their byte length is not product(shape) x size.
 */
const DTYPES_BY_ALIGNMENT = [
  'BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'I16', 'U16', 'F16', 'BF16',
  'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
] as const;

export type Dtype = (typeof DTYPES_BY_ALIGNMENT)[number];

export const DTYPE_BYTES: Record<Dtype, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, C64: 8, F64: 8, I64: 8, U64: 8,
};

/** One array as stored on disk: element type, shape, and its raw little-endian bytes. */
export interface NamedArray {
  dtype: Dtype;
  shape: number[];
  data: Uint8Array;
}

/** Arrays by name, in file order when read. */
export type TensorMap = Map<string, NamedArray>;

/** The reference refuses headers above 100 MB (README "Benefits": prevent DOS attacks); so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

// Typed-array views below reinterpret bytes in host order; the format is little-endian.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('r1ts io needs a little-endian host');

export function isDtype(name: unknown): name is Dtype {
  return typeof name === 'string' && Object.hasOwn(DTYPE_BYTES, name);
}

export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

// ---------------------------------------------------------------------------------------------------------
// Reading

/** Where one tensor lies, from a validated header. `begin`/`end` are relative to the byte buffer. */
export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Tensors sorted by offset (file order). */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string> | null;
  /** File offset of the byte buffer: 8 + N. */
  bufferStart: number;
  /** Length of the byte buffer: the end of the last tensor. */
  bufferBytes: number;
}

export interface SafetensorsFile {
  tensors: TensorMap;
  metadata: Record<string, string> | null;
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Validate a header against the file it came from. `headerBytes` are the N bytes after the length prefix and
 * `fileBytes` the total file size; `file` names the file in every error.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileBytes: number, file: string): SafetensorsHeader {
  const fail = (problem: string): never => {
    throw new UserError(`${file}: not a valid safetensors file: ${problem}`);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('the header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return fail(`the header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return fail(`the header must be a JSON object, found ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}`);
  }

  let metadata: Record<string, string> | null = null;
  const entries: [string, TensorInfo][] = [];
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        fail('"__metadata__" must be an object mapping strings to strings');
      }
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (typeof item !== 'string') fail(`"__metadata__" must map strings to strings, but "${key}" holds ${JSON.stringify(item)}`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const where = `tensor "${name}"`;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      fail(`${where} must be an object with dtype, shape and data_offsets`);
    }
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isDtype(dtype)) fail(`${where} has unknown dtype ${JSON.stringify(dtype)} (known: ${DTYPES_BY_ALIGNMENT.join(', ')})`);
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
      fail(`${where} has shape ${JSON.stringify(shape)}, expected a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger) || offsets[0] > offsets[1]) {
      fail(`${where} has data_offsets ${JSON.stringify(offsets)}, expected a pair [begin, end] of integers with begin <= end`);
    }
    const typedShape = shape as number[];
    const [begin, end] = offsets as number[];
    const expectedBytes = elementCount(typedShape) * DTYPE_BYTES[dtype as Dtype];
    if (!Number.isSafeInteger(expectedBytes)) fail(`${where} has shape ${JSON.stringify(shape)} too large to address`);
    if (end - begin !== expectedBytes) {
      fail(`${where} spans ${end - begin} bytes [${begin}, ${end}) but dtype ${dtype} and shape ${JSON.stringify(shape)} need ${expectedBytes}`);
    }
    entries.push([name, { dtype: dtype as Dtype, shape: typedShape, begin, end }]);
  }

  // Tile check, as the reference's Metadata::validate: sorted by offsets, each tensor starts where the
  // previous one ended, and the last one ends at the end of the file.
  entries.sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let cursor = 0;
  let previous = '';
  for (const [name, info] of entries) {
    if (info.begin < cursor) fail(`tensors "${previous}" and "${name}" overlap (the latter starts at byte ${info.begin}, before ${cursor})`);
    if (info.begin > cursor) fail(`bytes [${cursor}, ${info.begin}) of the data buffer belong to no tensor (a hole before "${name}")`);
    cursor = info.end;
    previous = name;
  }
  const bufferStart = 8 + headerBytes.byteLength;
  const available = fileBytes - bufferStart;
  if (cursor > available) {
    fail(`the file is truncated: the header describes ${cursor} bytes of tensor data but only ${available} follow the header`);
  }
  if (cursor < available) {
    fail(`${available - cursor} trailing bytes follow the last tensor (the data buffer must end with the last tensor)`);
  }
  return { tensors: new Map(entries), metadata, bufferStart, bufferBytes: cursor };
}

/** Read the 8-byte length and the header at the start of `file`, validated against the file's size. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const handle = await openForReading(file);
  try {
    return await readHeaderFrom(handle, file);
  } finally {
    await handle.close();
  }
}

async function openForReading(file: string) {
  try {
    return await open(file, 'r');
  } catch (error) {
    throw new UserError(`${file}: cannot open safetensors file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

async function readHeaderFrom(handle: Awaited<ReturnType<typeof open>>, file: string): Promise<SafetensorsHeader> {
  const fileBytes = (await handle.stat()).size;
  if (fileBytes < 8) throw new UserError(`${file}: not a valid safetensors file: it holds ${fileBytes} bytes, fewer than the 8-byte header length`);
  const prefix = Buffer.alloc(8);
  await readExactly(handle, prefix, 0, file);
  const headerLength = prefix.readBigUInt64LE(0);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new UserError(`${file}: not a valid safetensors file: header length ${headerLength} bytes is absurd (limit ${MAX_HEADER_BYTES})`);
  }
  const n = Number(headerLength);
  if (8 + n > fileBytes) {
    throw new UserError(`${file}: not a valid safetensors file: header length ${n} bytes is larger than the rest of the file (${fileBytes - 8} bytes)`);
  }
  const headerBytes = new Uint8Array(n);
  await readExactly(handle, headerBytes, 8, file);
  return parseSafetensorsHeader(headerBytes, fileBytes, file);
}

/** fs reads are capped near 2 GiB per call; larger buffers are filled in chunks. */
const READ_CHUNK_BYTES = 1 << 30;

async function readExactly(handle: Awaited<ReturnType<typeof open>>, target: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(READ_CHUNK_BYTES, target.byteLength - done);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) throw new UserError(`${file}: the file ended early (it shrank while being read?)`);
    done += bytesRead;
  }
}

/**
 * Read a safetensors file: the header, then the whole byte buffer in one allocation, with each tensor's
 * `data` a view into it (no second copy). The buffer starts at its own offset 0, so a tensor written by the
 * reference (aligned to its dtype within the buffer) is aligned in memory even if the header was not padded.
 * The views share one ArrayBuffer: keeping any tensor keeps the whole file's bytes alive.
 */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  const handle = await openForReading(file);
  try {
    const header = await readHeaderFrom(handle, file);
    const buffer = new Uint8Array(header.bufferBytes);
    await readExactly(handle, buffer, header.bufferStart, file);
    const tensors: TensorMap = new Map();
    for (const [name, info] of header.tensors) {
      tensors.set(name, { dtype: info.dtype, shape: info.shape, data: buffer.subarray(info.begin, info.end) });
    }
    return { tensors, metadata: header.metadata };
  } finally {
    await handle.close();
  }
}

/** Parse a whole safetensors file already in memory; `file` names it in errors. Views, no copies. */
export function decodeSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  if (bytes.byteLength < 8) throw new UserError(`${file}: not a valid safetensors file: it holds ${bytes.byteLength} bytes, fewer than the 8-byte header length`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new UserError(`${file}: not a valid safetensors file: header length ${headerLength} bytes is absurd (limit ${MAX_HEADER_BYTES})`);
  }
  const n = Number(headerLength);
  if (8 + n > bytes.byteLength) {
    throw new UserError(`${file}: not a valid safetensors file: header length ${n} bytes is larger than the rest of the file (${bytes.byteLength - 8} bytes)`);
  }
  const header = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.byteLength, file);
  const tensors: TensorMap = new Map();
  for (const [name, info] of header.tensors) {
    const start = header.bufferStart + info.begin;
    tensors.set(name, { dtype: info.dtype, shape: info.shape, data: bytes.subarray(start, start + info.end - info.begin) });
  }
  return { tensors, metadata: header.metadata };
}

// ---------------------------------------------------------------------------------------------------------
// Writing

function checkArray(name: string, array: NamedArray): void {
  if (!isDtype(array.dtype)) throw new Error(`safetensors: tensor "${name}" has unknown dtype ${JSON.stringify(array.dtype)}`);
  if (!array.shape.every(isNonNegativeInteger)) throw new Error(`safetensors: tensor "${name}" has bad shape ${JSON.stringify(array.shape)}`);
  const expected = elementCount(array.shape) * DTYPE_BYTES[array.dtype];
  if (array.data.byteLength !== expected) {
    throw new Error(`safetensors: tensor "${name}" holds ${array.data.byteLength} bytes, but ${array.dtype} ${JSON.stringify(array.shape)} needs ${expected}`);
  }
}

const utf8Order = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * The header bytes (padded) and the tensor order for a set of arrays, as the reference `prepare` makes them:
 * sorted by dtype alignment, largest first, then by name (byte order); compact JSON with `__metadata__`
 * first; padded with spaces to a multiple of 8 so that the buffer starts 8-aligned in the file.
 */
export function encodeSafetensorsHeader(
  tensors: TensorMap,
  metadata: Record<string, string> | null = null,
): { header: Uint8Array; order: [string, NamedArray][] } {
  for (const [name, array] of tensors) checkArray(name, array);
  const rank = (dtype: Dtype) => DTYPES_BY_ALIGNMENT.indexOf(dtype);
  const order = [...tensors].sort(([nameA, a], [nameB, b]) => rank(b.dtype) - rank(a.dtype) || utf8Order(nameA, nameB));
  // Built by hand, not JSON.stringify(object): JS objects list integer-like keys ("0", "1") first.
  const fields: string[] = [];
  if (metadata !== null) {
    const items = Object.entries(metadata).map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(String(value))}`);
    fields.push(`"__metadata__":{${items.join(',')}}`);
  }
  let offset = 0;
  for (const [name, array] of order) {
    const end = offset + array.data.byteLength;
    fields.push(`${JSON.stringify(name)}:{"dtype":"${array.dtype}","shape":[${array.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  let json = `{${fields.join(',')}}`;
  const length = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (length % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const header = new Uint8Array(8 + body.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.byteLength), true);
  header.set(body, 8);
  return { header, order };
}

/** Serialize to one buffer in memory (small files and tests; large ones go through writeSafetensors). */
export function encodeSafetensors(tensors: TensorMap, metadata: Record<string, string> | null = null): Uint8Array {
  const { header, order } = encodeSafetensorsHeader(tensors, metadata);
  const total = order.reduce((sum, [, array]) => sum + array.data.byteLength, header.byteLength);
  const out = new Uint8Array(total);
  out.set(header, 0);
  let offset = header.byteLength;
  for (const [, array] of order) {
    out.set(array.data, offset);
    offset += array.data.byteLength;
  }
  return out;
}

/**
 * Write a safetensors file atomically (temporary file in the same folder, fsync, rename, fsync folder):
 * a reader sees the previous file or the complete new one. Tensor bytes stream to disk without being joined.
 */
export async function writeSafetensors(file: string, tensors: TensorMap, metadata: Record<string, string> | null = null): Promise<void> {
  const { header, order } = encodeSafetensorsHeader(tensors, metadata);
  await writeFileAtomicWith(file, async (handle) => {
    await writeAll(handle, header);
    for (const [, array] of order) await writeAll(handle, array.data);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Conversions between stored element types and Float32Array

let f16Table: Float32Array | null = null;

/** All 65536 half-precision values as float32 (IEEE 754 binary16: 1 sign, 5 exponent, 10 mantissa bits). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    let value: number;
    if (exponent === 0) value = mantissa * 2 ** -24; // subnormal
    else if (exponent === 31) value = mantissa ? NaN : Infinity;
    else value = (1 + mantissa / 1024) * 2 ** (exponent - 15);
    f16Table[bits] = sign * value;
  }
  return f16Table;
}

/** The array's bytes as a typed array of `Kind`, viewed when aligned and copied otherwise. */
function viewAs<T>(data: Uint8Array, bytesPerElement: number, make: (buffer: ArrayBufferLike, offset: number, length: number) => T): T {
  const length = data.byteLength / bytesPerElement;
  if (data.byteOffset % bytesPerElement === 0) return make(data.buffer, data.byteOffset, length);
  return make(data.slice().buffer, 0, length);
}

/**
 * Decode any real dtype to a new Float32Array (it never aliases `a.data`). F64 and the 32/64-bit integers
 * round to the nearest float32; F16 and BF16 are exact.
 */
export function toFloat32(a: NamedArray): Float32Array {
  return decodeFloat32Into(a, new Float32Array(elementCount(a.shape)));
}

/**
 * Decodes any real dtype into `out` (exactly its element count long) and returns it: how a checkpoint is read
 * straight into a parameter's own storage (Module.loadState), with no intermediate array per tensor.
 */
export function decodeFloat32Into(a: NamedArray, out: Float32Array): Float32Array {
  const count = elementCount(a.shape);
  if (a.data.byteLength !== count * DTYPE_BYTES[a.dtype]) {
    throw new Error(`toFloat32: ${a.data.byteLength} bytes do not hold ${a.dtype} ${JSON.stringify(a.shape)}`);
  }
  if (out.length !== count) throw new Error(`toFloat32: ${a.dtype} ${JSON.stringify(a.shape)} decoded into ${out.length} floats`);
  const from = (values: ArrayLike<number>): Float32Array => {
    for (let i = 0; i < count; i++) out[i] = values[i];
    return out;
  };
  switch (a.dtype) {
    case 'F32':
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(a.data);
      return out;
    case 'BF16': {
      // bfloat16 is the top half of a float32 (same sign and 8-bit exponent, 7 mantissa bits).
      const bits = viewAs(a.data, 2, (b, o, n) => new Uint16Array(b, o, n));
      const words = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) words[i] = bits[i] << 16;
      return out;
    }
    case 'F16': {
      const bits = viewAs(a.data, 2, (b, o, n) => new Uint16Array(b, o, n));
      const table = halfTable();
      for (let i = 0; i < count; i++) out[i] = table[bits[i]];
      return out;
    }
    case 'F64': return from(viewAs(a.data, 8, (b, o, n) => new Float64Array(b, o, n)));
    case 'I64': {
      const values = viewAs(a.data, 8, (b, o, n) => new BigInt64Array(b, o, n));
      for (let i = 0; i < count; i++) out[i] = Number(values[i]);
      return out;
    }
    case 'U64': {
      const values = viewAs(a.data, 8, (b, o, n) => new BigUint64Array(b, o, n));
      for (let i = 0; i < count; i++) out[i] = Number(values[i]);
      return out;
    }
    case 'I32': return from(viewAs(a.data, 4, (b, o, n) => new Int32Array(b, o, n)));
    case 'U32': return from(viewAs(a.data, 4, (b, o, n) => new Uint32Array(b, o, n)));
    case 'I16': return from(viewAs(a.data, 2, (b, o, n) => new Int16Array(b, o, n)));
    case 'U16': return from(viewAs(a.data, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case 'I8': return from(new Int8Array(a.data.buffer, a.data.byteOffset, count));
    case 'U8':
    case 'BOOL': return from(a.data);
    case 'F8_E5M2':
    case 'F8_E4M3':
    case 'F8_E8M0':
    case 'C64':
      throw new Error(`toFloat32: dtype ${a.dtype} is not supported`);
    default:
      return a.dtype satisfies never;
  }
}

/** float32 bits to bfloat16 bits, rounding to nearest even as torch's `.to(torch.bfloat16)` does. */
export function bf16BitsFromF32Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff; // NaN stays a quiet NaN
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 bits to binary16 bits, rounding to nearest even; overflow gives infinity, underflow zero or a subnormal. */
export function f16BitsFromF32Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Result is subnormal (value = h x 2^-24): shift the 24-bit significand right by 14 - halfExponent.
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    const rest = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    let half = significand >>> shift;
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  const rest = mantissa & 0x1fff;
  let half = (halfExponent << 10) | (mantissa >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // a carry into the exponent is still correct
  return sign | half;
}

/** Encode float32 values as F32 (copied), BF16 or F16 (rounded to nearest even). */
export function fromFloat32(shape: number[], data: Float32Array, dtype: 'F32' | 'BF16' | 'F16'): NamedArray {
  if (data.length !== elementCount(shape)) throw new Error(`fromFloat32: ${data.length} values do not fill shape ${JSON.stringify(shape)}`);
  if (dtype === 'F32') {
    return { dtype, shape: [...shape], data: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) };
  }
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  const convert = dtype === 'BF16' ? bf16BitsFromF32Bits : f16BitsFromF32Bits;
  for (let i = 0; i < out.length; i++) out[i] = convert(bits[i]);
  return { dtype, shape: [...shape], data: new Uint8Array(out.buffer) };
}
