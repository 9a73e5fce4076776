/**
 * Learning-rate schedules with linear warmup (HF transformers' get_*_schedule_with_warmup), for
 * optimizer step s in 0..total-1 (the lr used by the update that ends step s+1):
 *   warmup:   lr · s / W                      for s < W
 *   constant: lr
 *   linear:   lr · max(0, (total - s) / (total - W))
 *   cosine:   lr · 0.5 · (1 + cos(π · (s - W) / (total - W)))
 */
export type ScheduleKind = 'constant' | 'linear' | 'cosine';

export interface Schedule {
  kind: ScheduleKind;
  lr: number;
  warmupSteps: number;
  totalSteps: number;
}

export function learningRate({ kind, lr, warmupSteps: w, totalSteps: total }: Schedule, s: number): number {
  if (s < w) return (lr * s) / Math.max(1, w);
  if (kind === 'constant') return lr;
  const progress = (s - w) / Math.max(1, total - w);
  if (kind === 'linear') return lr * Math.max(0, 1 - progress);
  return lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}
