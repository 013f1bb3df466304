import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  bf16BitsFromF32Bits, decodeSafetensors, encodeSafetensors, f16BitsFromF32Bits, fromFloat32, readSafetensors,
  readSafetensorsHeader, toFloat32, writeSafetensors, type NamedArray, type TensorMap,
} from '../../src/io/safetensors.ts';
import { UserError } from '../../src/util/errors.ts';
import { seededRandom, withTempDir } from './fixtures/tiny.ts';

const f32 = (shape: number[], values: number[]): NamedArray => fromFloat32(shape, Float32Array.from(values), 'F32');
const bytesOf = (text: string) => Buffer.from(text, 'utf8');

/** A file from a raw header string and buffer, the way a broken writer might make it. */
function rawFile(header: string, buffer: Uint8Array = new Uint8Array(0), headerLength = Buffer.byteLength(header)): Uint8Array {
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerLength));
  return Buffer.concat([prefix, bytesOf(header), buffer]);
}

test('writer matches the reference serializer byte for byte (safetensors tensor.rs test vectors)', () => {
  // test_serialization: 64-byte header, no padding needed, then the six floats.
  const out = encodeSafetensors(new Map([['attn.0', f32([1, 2, 3], [0, 1, 2, 3, 4, 5])]]));
  const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.equal(header.length, 64);
  assert.deepEqual(Buffer.from(out), Buffer.concat([rawFile(header), Buffer.from(Float32Array.from([0, 1, 2, 3, 4, 5]).buffer)]));
  // test_serialization_forced_alignement: 65-byte header padded with 7 spaces to 72.
  const aligned = encodeSafetensors(new Map([['attn0', f32([1, 1, 2, 3], [0, 1, 2, 3, 4, 5])]]));
  assert.equal(Buffer.from(aligned).readBigUInt64LE(0), 72n);
  assert.equal(Buffer.from(aligned.subarray(8, 80)).toString(), '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ');
  // test_empty, with and without metadata.
  assert.deepEqual(Buffer.from(encodeSafetensors(new Map())), rawFile('{}      '));
  assert.deepEqual(Buffer.from(encodeSafetensors(new Map(), { framework: 'pt' })), rawFile('{"__metadata__":{"framework":"pt"}}     '));
});

test('writer orders tensors by dtype alignment (largest first) then name, so every tensor is aligned', () => {
  const tensors: TensorMap = new Map([
    ['z_bytes', { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) }],
    ['b', f32([1], [1])],
    ['half', fromFloat32([1], Float32Array.of(1), 'BF16')],
    ['a', f32([2], [1, 2])],
    ['long', { dtype: 'I64', shape: [1], data: new Uint8Array(8) }],
    ['0', f32([1], [9])], // an integer-like name must not jump to the front of the JSON object
  ]);
  const { tensors: read } = decodeSafetensors(encodeSafetensors(tensors), 'mem');
  assert.deepEqual([...read.keys()], ['long', '0', 'a', 'b', 'half', 'z_bytes']);
  // Read the header text itself: JSON.parse would list the key "0" first whatever the file says.
  const headerText = Buffer.from(encodeSafetensors(tensors)).subarray(8).toString();
  const names = [...headerText.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
  const begins = [...headerText.matchAll(/"data_offsets":\[(\d+),/g)].map((m) => Number(m[1]));
  assert.deepEqual(names, ['long', '0', 'a', 'b', 'half', 'z_bytes']);
  assert.deepEqual(begins, [0, 8, 12, 20, 24, 26]);
});

test('round trip through a file keeps dtypes, shapes, bytes and metadata; tensors are views of one read', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'x.safetensors');
    const random = seededRandom(7);
    const values = Float32Array.from({ length: 6 * 5 }, () => random() - 0.5);
    const tensors: TensorMap = new Map([
      ['w.f32', fromFloat32([6, 5], values, 'F32')],
      ['w.bf16', fromFloat32([5, 6], values, 'BF16')],
      ['w.f16', fromFloat32([30], values, 'F16')],
      ['ids', { dtype: 'I64', shape: [2], data: new Uint8Array(new BigInt64Array([-3n, 1n << 40n]).buffer) }],
      ['scalar', f32([], [3.5])],
      ['empty', { dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) }],
    ]);
    await writeSafetensors(file, tensors, { format: 'pt', note: 'ü' });
    assert.deepEqual(await readdir(dir), ['x.safetensors'], 'no temporary file is left behind');
    const read = await readSafetensors(file);
    assert.deepEqual(read.metadata, { format: 'pt', note: 'ü' });
    assert.equal(read.tensors.size, tensors.size);
    for (const [name, array] of tensors) {
      const got = read.tensors.get(name)!;
      assert.equal(got.dtype, array.dtype, name);
      assert.deepEqual(got.shape, array.shape, name);
      assert.deepEqual(Buffer.from(got.data), Buffer.from(array.data), name);
    }
    assert.deepEqual(toFloat32(read.tensors.get('w.f32')!), values);
    assert.deepEqual([...toFloat32(read.tensors.get('ids')!)], [-3, 2 ** 40]);
    const buffers = new Set([...read.tensors.values()].map((a) => a.data.buffer));
    assert.equal(buffers.size, 1, 'all tensors share the single buffer the file was read into');
    // The file is exactly what the in-memory encoder makes, and that decodes to the same tensors.
    const onDisk = await readFile(file);
    assert.deepEqual(Buffer.from(encodeSafetensors(tensors, { format: 'pt', note: 'ü' })), onDisk);
    assert.deepEqual([...decodeSafetensors(onDisk, file).tensors.keys()], [...read.tensors.keys()]);
  });
});

test('a header written unpadded (as MLX does) still reads, with aligned tensor views', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'unpadded.safetensors');
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    assert.notEqual(header.length % 8, 0);
    await writeFile(file, rawFile(header, Buffer.from(Float32Array.of(1.5, -2).buffer)));
    const { tensors } = await readSafetensors(file);
    const a = tensors.get('a')!;
    assert.equal(a.data.byteOffset % 4, 0);
    assert.deepEqual([...toFloat32(a)], [1.5, -2]);
  });
});

const F32_A = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}';
const EIGHT = new Uint8Array(8);

/** Each malformed file and a fragment its error must contain (besides the file's path). */
const BAD_FILES: [string, Uint8Array, RegExp][] = [
  ['shorter than 8 bytes', new Uint8Array([1, 2, 3]), /holds 3 bytes, fewer than the 8-byte header length/],
  ['header longer than the file', rawFile(`{${F32_A}}`, EIGHT, 5000), /header length 5000 bytes is larger than the rest of the file/],
  ['absurd header length', rawFile('{}', new Uint8Array(0), 200_000_000), /header length 200000000 bytes is absurd/],
  ['header not JSON', rawFile('{"a": [1, 2'), /header is not valid JSON/],
  ['header not UTF-8', Buffer.concat([rawFile('{}  ').subarray(0, 8), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]), /not valid UTF-8/],
  ['header an array', rawFile('[1, 2]'), /header must be a JSON object, found an array/],
  ['unknown dtype', rawFile('{"a":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}}', EIGHT), /tensor "a" has unknown dtype "F7"/],
  ['negative dimension', rawFile('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', EIGHT), /tensor "a" has shape \[-2\], expected a list of non-negative integers/],
  ['fractional dimension', rawFile('{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}', EIGHT), /shape \[1.5\]/],
  ['shape not a list', rawFile('{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}', EIGHT), /tensor "a" has shape 2/],
  ['offsets not a pair', rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}', EIGHT), /tensor "a" has data_offsets \[8\], expected a pair/],
  ['offsets reversed', rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}', EIGHT), /data_offsets \[8,0\]/],
  ['byte length mismatch', rawFile('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', EIGHT), /tensor "a" spans 8 bytes \[0, 8\) but dtype F32 and shape \[3\] need 12/],
  ['overlapping tensors', rawFile(`{${F32_A},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, EIGHT), /tensors "a" and "b" overlap/],
  ['hole between tensors', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', new Uint8Array(12)), /bytes \[4, 8\) of the data buffer belong to no tensor/],
  ['hole at the start', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', EIGHT), /bytes \[0, 4\) of the data buffer belong to no tensor/],
  ['trailing garbage', rawFile(`{${F32_A}}`, new Uint8Array(11)), /3 trailing bytes follow the last tensor/],
  ['truncated data', rawFile(`{${F32_A}}`, new Uint8Array(5)), /truncated: the header describes 8 bytes of tensor data but only 5 follow/],
  ['metadata not strings', rawFile('{"__metadata__":{"epoch":3}}'), /"__metadata__" must map strings to strings, but "epoch" holds 3/],
];

for (const [problem, bytes, message] of BAD_FILES) {
  test(`rejects a file with ${problem}, naming the file`, async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, 'bad.safetensors');
      await writeFile(file, bytes);
      const named = (error: unknown) => error instanceof UserError && error.message.startsWith(`${file}: `) && message.test(error.message);
      await assert.rejects(readSafetensors(file), named);
      await assert.rejects(readSafetensorsHeader(file), named);
      assert.throws(() => decodeSafetensors(bytes, file), named);
    });
  });
}

test('a missing file is a UserError naming it', async () => {
  await assert.rejects(readSafetensors('/nonexistent/w.safetensors'), (e: unknown) => e instanceof UserError && /\/nonexistent\/w.safetensors: cannot open.*ENOENT/.test(e.message));
});

function f32Bits(value: number): number {
  return new Uint32Array(Float32Array.of(value).buffer)[0];
}

test('every BF16 and F16 value survives decode then encode exactly (NaN stays NaN)', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  for (const dtype of ['BF16', 'F16'] as const) {
    const decoded = toFloat32({ dtype, shape: [65536], data: new Uint8Array(all.buffer) });
    const encoded = new Uint16Array(fromFloat32([65536], decoded, dtype).data.buffer);
    for (let bits = 0; bits < 65536; bits++) {
      if (Number.isNaN(decoded[bits])) assert.ok(Number.isNaN(toFloat32({ dtype, shape: [1], data: new Uint8Array(Uint16Array.of(encoded[bits]).buffer) })[0]));
      else assert.equal(encoded[bits], bits, `${dtype} 0x${bits.toString(16)}`);
    }
  }
});

test('float32 to BF16 and F16 rounds to nearest, ties to even, worked by hand', () => {
  const bf16 = (x: number) => bf16BitsFromF32Bits(f32Bits(x));
  const f16 = (x: number) => f16BitsFromF32Bits(f32Bits(x));
  // bfloat16 keeps 7 mantissa bits: the spacing above 1 is 2^-7.
  assert.equal(bf16(1), 0x3f80);
  assert.equal(bf16(1 + 2 ** -8), 0x3f80); // halfway between 1 and 1+2^-7: to the even one, 1
  assert.equal(bf16(1 + 3 * 2 ** -8), 0x3f82); // halfway between 1+2^-7 (odd) and 1+2^-6: up
  assert.equal(bf16(1 + 2 ** -8 + 2 ** -20), 0x3f81); // just above halfway: up
  assert.equal(bf16(-2), 0xc000);
  assert.equal(bf16(Infinity), 0x7f80);
  // binary16: 10 mantissa bits, largest finite 65504, smallest subnormal 2^-24.
  assert.equal(f16(1), 0x3c00);
  assert.equal(f16(1 + 2 ** -11), 0x3c00);
  assert.equal(f16(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f16(65504), 0x7bff);
  assert.equal(f16(65519), 0x7bff);
  assert.equal(f16(65520), 0x7c00); // halfway to 65536: ties to even overflows to infinity
  assert.equal(f16(-1e6), 0xfc00);
  assert.equal(f16(2 ** -24), 0x0001);
  assert.equal(f16(2 ** -25), 0x0000); // halfway between 0 and 2^-24: to even, 0
  assert.equal(f16(1.5 * 2 ** -25), 0x0001);
  assert.equal(f16(3 * 2 ** -25), 0x0002); // 1.5 x 2^-24: between 1 and 2 subnormal steps, to even 2
  assert.equal(f16(2 ** -14 - 2 ** -25), 0x0400); // rounds up from the largest subnormal into the smallest normal
  assert.equal(f16(-0), 0x8000);
  assert.equal(f16(NaN), 0x7e00);
});

test('F16 and BF16 encoding picks the nearest representable value for random inputs', () => {
  const random = seededRandom(3);
  const values = Float32Array.from({ length: 20000 }, () => (random() - 0.5) * 2 ** Math.floor(random() * 40 - 28));
  for (const dtype of ['F16', 'BF16'] as const) {
    const encoded = new Uint16Array(fromFloat32([values.length], values, dtype).data.buffer);
    const decode = (bits: number) => toFloat32({ dtype, shape: [1], data: new Uint8Array(Uint16Array.of(bits).buffer) })[0];
    for (let i = 0; i < values.length; i++) {
      const error = Math.abs(decode(encoded[i]) - values[i]);
      for (const neighbour of [encoded[i] - 1, encoded[i] + 1]) {
        const other = decode(neighbour & 0xffff);
        if (Math.sign(other) === Math.sign(values[i]) || other === 0) assert.ok(error <= Math.abs(other - values[i]), `${dtype} ${values[i]}`);
      }
    }
  }
});

test('toFloat32 decodes F64 and integers, and reads unaligned views', () => {
  assert.deepEqual([...toFloat32({ dtype: 'F64', shape: [2], data: new Uint8Array(Float64Array.of(0.1, -3).buffer) })], [Math.fround(0.1), -3]);
  assert.deepEqual([...toFloat32({ dtype: 'I32', shape: [2], data: new Uint8Array(Int32Array.of(-7, 9).buffer) })], [-7, 9]);
  assert.deepEqual([...toFloat32({ dtype: 'U8', shape: [2], data: Uint8Array.of(0, 255) })], [0, 255]);
  const shifted = new Uint8Array(9);
  shifted.set(new Uint8Array(Float32Array.of(1.25, -4).buffer), 1);
  assert.deepEqual([...toFloat32({ dtype: 'F32', shape: [2], data: shifted.subarray(1) })], [1.25, -4]);
  const half = new Uint8Array(5);
  half.set(fromFloat32([2], Float32Array.of(0.5, 3), 'BF16').data, 1);
  assert.deepEqual([...toFloat32({ dtype: 'BF16', shape: [2], data: half.subarray(1) })], [0.5, 3]);
  const decoded = toFloat32({ dtype: 'F32', shape: [1], data: shifted.subarray(1, 5) });
  decoded[0] = 99;
  assert.deepEqual([...toFloat32({ dtype: 'F32', shape: [1], data: shifted.subarray(1, 5) })], [1.25], 'the result never aliases the input');
});
