// --device and --precision, shared by every command that computes: checked at the edge, before any work, so
// that `--device cuda` on a machine without a GPU (or without the built library) fails at once with the reason.
import { InvalidArgumentError, type Command } from 'commander';
import { useDevice, type Device, type Precision } from '../tensor/index.ts';
import { UserError } from '../util/errors.ts';

export const DEVICE_HELP = 'where to compute: cpu, or cuda (needs `npm run build:cuda` and an NVIDIA GPU)';
export const PRECISION_HELP = 'GEMM precision: f32, or bf16 on cuda (bfloat16 operands, float32 accumulation, weights and loss)';

export function parseDevice(value: string): Device {
  if (value !== 'cpu' && value !== 'cuda') throw new InvalidArgumentError('expected cpu or cuda');
  return value;
}

export function parsePrecision(value: string): Precision {
  if (value !== 'f32' && value !== 'bf16') throw new InvalidArgumentError('expected f32 or bf16');
  return value;
}

/** Adds --device (and, for training commands, --precision) to a command. */
export function deviceOptions(command: Command, options: { precision: boolean }): Command {
  command.option('--device <device>', DEVICE_HELP, parseDevice, 'cpu');
  if (options.precision) command.option('--precision <p>', PRECISION_HELP, parsePrecision, 'f32');
  return command;
}

/** Makes `device` the default device (initialising CUDA there); a missing GPU or library is a UserError. */
export function selectDevice(device: Device, precision: Precision = 'f32'): void {
  if (precision === 'bf16' && device !== 'cuda') throw new UserError('--precision bf16 needs --device cuda (the CPU kernels compute in float32)');
  try {
    useDevice(device, precision);
  } catch (err) {
    throw new UserError((err as Error).message);
  }
}
