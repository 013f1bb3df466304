// The mean of a list of numbers, 0 for none: what every per-step metric and evaluation figure averages with (a
// step that drew no sample of a source reports 0, not NaN, so that metrics.jsonl stays valid JSON).
export function average(values: readonly number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
}
