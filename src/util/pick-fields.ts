// The named fields of an object, as a new object: how one recipe's config hands a subset of itself to another
// (distillation's defaults from rejection sampling and SFT, a resumed run's settings from its checkpoint).
export function pickFields<T extends object, K extends keyof T>(from: T, keys: readonly K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((key) => [key, from[key]])) as Pick<T, K>;
}
