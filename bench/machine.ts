// What a benchmark ran on, for its JSON: the CPU model, the cores, and the 1-minute load average (on a shared
// machine, other processes only add time, so the load says how far to trust absolute figures).
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';

export interface Machine {
  model: string;
  cores: number;
  loadAverage: number;
}

export function machine(): Machine {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? model;
  } catch {
    // not Linux: os.cpus() named it
  }
  return { model, cores: availableParallelism(), loadAverage: loadavg()[0] };
}
