/**
 * How a long library call reports what it is doing, phase by phase (calibration sampling, quantization,
 * evaluation, training, validation, ...): it starts a labelled phase, reports done of total as units finish, and
 * ends it with a summary of what it did. The CLI draws each phase as a progress bar and prints the summaries
 * (src/cli/progress.ts); tests collect the calls. The library never writes to the terminal itself.
 */
export interface PhaseProgress {
  /** `done` of `total` units finished; `status` says what runs now (it replaces the previous status). */
  update(done: number, total: number, status?: string): void;
  /** The phase finished: `summary` counts what it did ("8 blocks"); `result` is its figure ("mean loss 1.234"). */
  end(summary: string, result?: string): void;
}

export interface Phases {
  /** Starts a phase (one runs at a time; starting one ends the bar of the previous). */
  start(label: string): PhaseProgress;
  /** A line for the user that is no phase (a note about the data, a decision taken). */
  log(line: string): void;
}

/** Phases that report nowhere. */
export const silentPhases: Phases = {
  start: () => ({ update: () => undefined, end: () => undefined }),
  log: () => undefined,
};
