// Learning-rate schedules: linear warmup from 0, then a decay to minLrRatio * peak at the last step. Each
// decay is a small pure function of training progress, chosen from a table by name.

export const decayShapes = {
  /** Half a cosine period (Loshchilov & Hutter 2017, SGDR eq. 5, without restarts): what GPT-3 and Llama use. */
  cosine: (progress: number) => 0.5 * (1 + Math.cos(Math.PI * progress)),
  linear: (progress: number) => 1 - progress,
  constant: (_progress: number) => 1,
} as const satisfies Record<string, (progress: number) => number>;

export type DecayShape = keyof typeof decayShapes;

export interface ScheduleConfig {
  shape: DecayShape;
  peakLr: number;
  /** Updates of linear warmup: update i (0-based) of the warmup uses peakLr * (i + 1) / warmupSteps. */
  warmupSteps: number;
  /** Total updates of the run; the decay reaches its floor at the last one. */
  totalSteps: number;
  /** The floor as a fraction of peakLr (the decay goes from 1 to this). */
  minLrRatio: number;
}

/** The schedule a trainer's config asks for with its --lr, --warmup, --schedule and --min-lr-ratio, over `totalSteps` updates. */
export function scheduleOf(config: { lr: number; warmup: number; schedule: DecayShape; minLrRatio: number }, totalSteps: number): ScheduleConfig {
  return { shape: config.schedule, peakLr: config.lr, warmupSteps: config.warmup, totalSteps, minLrRatio: config.minLrRatio };
}

/** The learning rate of update `step` (0-based). */
export function learningRate(step: number, s: ScheduleConfig): number {
  if (step < s.warmupSteps) return (s.peakLr * (step + 1)) / s.warmupSteps;
  const decaySteps = s.totalSteps - s.warmupSteps - 1;
  const progress = decaySteps <= 0 ? 1 : Math.min(1, (step - s.warmupSteps) / decaySteps);
  return s.peakLr * (s.minLrRatio + (1 - s.minLrRatio) * decayShapes[s.shape](progress));
}
