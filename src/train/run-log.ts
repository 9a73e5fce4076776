/**
 * The trainer's run log: `<dir>/metrics.jsonl`, the same scalars as TensorBoard events, and progress
 * reported to a callback on every step, with the running mean loss, and before each validation pass and
 * checkpoint save (the CLI draws it).
 *
 * metrics.jsonl holds one JSON object per logged step, in step order:
 *   {"step":12,"loss":2.31,"lr":0.0001,"grad_norm":0.8,"tokens_per_s":5400,"rss_mib":812,"val_loss":2.4}
 * `val_loss` only on the steps where validation ran; a step-0 baseline line may hold `val_loss` alone. JSON has no NaN or Infinity, so a non-finite value
 * is written as null (TensorBoard gets the value itself).
 * TensorBoard tags: train/loss, train/lr, train/grad_norm, train/tokens_per_s, train/rss_mib, val/loss.
 *
 * Zero-shot tasks (eval.tasks) add, after training, one line per evaluated model at the end of the file (logZeroShot):
 *   {"step":0,"zeroshot":"base","tasks":{"piqa":{"n":20,"acc":0.55,"acc_stderr":0.11,"acc_norm":0.5,...,"bos":false}}}
 *   {"step":150,"zeroshot":"tuned","tasks":{...}}
 * the base's at step 0 and the tuned model's at the last step, out of step order; TensorBoard tags
 * zeroshot/<task>/<metric> (acc, acc_norm, perplexity) at the same steps. A resume drops the zero-shot lines.
 *
 * Resuming from step S keeps the lines with step <= S and drops the rest (the file is rewritten to a
 * temp name and renamed), so a run killed after its last checkpoint and resumed has exactly one line per
 * step. TensorBoard gets a new event file; its viewer shows the later file's points for repeated steps.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError, namingFile } from '../errors.js';
import { makeDir } from '../io/make-dir.js';
import { EventWriter } from '../io/tfevents.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { TaskResult } from '../eval/zeroshot/evaluate-task.js';

/** One line of metrics.jsonl; the keys are the file's. */
export interface StepMetrics {
  loss: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  rss_mib: number;
  /** Present on the steps where validation ran. */
  val_loss?: number;
}

/** A line with validation only: the baseline at step 0, before any training step. */
export interface ValidationMetrics {
  val_loss: number;
}

export interface RunLogOptions {
  /** Output directory; metrics.jsonl goes here. */
  dir: string;
  /** Where event files go, or null for no TensorBoard. */
  tensorboardDir: string | null;
  /** The step of the checkpoint being resumed: later lines of an existing metrics.jsonl are dropped. */
  resumeFromStep?: number;
  /** Called at the start, after every training step, and when a validation pass or a checkpoint save begins. */
  onProgress?: (p: TrainProgress) => void;
}

/** What the trainer does next: the next step, a validation pass, a checkpoint save. */
export type TrainActivity = 'step' | 'validation' | 'checkpoint';

/** Training progress in optimizer steps. */
export interface TrainProgress {
  done: number;
  total: number;
  /** The last step's training loss (null before the first step run in this process). */
  loss: number | null;
  /** The mean training loss of the steps run in this process (null before the first). */
  meanLoss: number | null;
  activity: TrainActivity;
}

const TB_TAGS: Record<keyof StepMetrics, string> = {
  loss: 'train/loss',
  lr: 'train/lr',
  grad_norm: 'train/grad_norm',
  tokens_per_s: 'train/tokens_per_s',
  rss_mib: 'train/rss_mib',
  val_loss: 'val/loss',
};

/** Resident set size of this process in MiB, for `rss_mib`. */
export function rssMib(): number {
  return process.memoryUsage.rss() / (1 << 20);
}

export class RunLog {
  readonly metricsFile: string;
  private fd: number | null;
  private readonly events: EventWriter | null;
  /** Steps must increase: the last one logged, or the resumed checkpoint's. */
  private lastStep: number;
  private total = 0;
  private readonly resumedFrom: number;
  private done = 0;
  private lastLoss: number | null = null;
  private lossSum = 0;
  private lossSteps = 0;

  private readonly onProgress?: (p: TrainProgress) => void;

  constructor(opts: RunLogOptions) {
    this.onProgress = opts.onProgress;
    makeDir(opts.dir);
    this.metricsFile = path.join(opts.dir, 'metrics.jsonl');
    this.lastStep = -Infinity;
    this.resumedFrom = opts.resumeFromStep ?? 0;
    if (opts.resumeFromStep !== undefined) {
      truncateAfter(this.metricsFile, opts.resumeFromStep);
      this.lastStep = opts.resumeFromStep;
      this.fd = fs.openSync(this.metricsFile, 'a');
    } else {
      this.fd = fs.openSync(this.metricsFile, 'w'); // a fresh run starts a fresh file
    }
    this.events = opts.tensorboardDir === null ? null : new EventWriter(opts.tensorboardDir);
  }

  /** Reports the start of training at `doneSteps` of `totalSteps`, by default the resumed step. */
  start(totalSteps: number, doneSteps = this.resumedFrom): void {
    this.total = totalSteps;
    this.done = doneSteps;
    this.report('step');
  }

  /** Reports a finished training step and its loss (every step, logged or not). */
  stepDone(step: number, loss: number): void {
    this.done = step;
    this.lastLoss = loss;
    this.lossSum += loss;
    this.lossSteps += 1;
    this.report('step');
  }

  /** Reports what the trainer begins now (a validation pass, a checkpoint save, or the next step). */
  activity(activity: TrainActivity): void {
    this.report(activity);
  }

  private report(activity: TrainActivity): void {
    const meanLoss = this.lossSteps > 0 ? this.lossSum / this.lossSteps : null;
    this.onProgress?.({ done: this.done, total: this.total, loss: this.lastLoss, meanLoss, activity });
  }

  /** Appends step's line to metrics.jsonl and its scalars to TensorBoard. */
  log(step: number, metrics: StepMetrics | ValidationMetrics): void {
    if (this.fd === null) throw new Error('RunLog: log after close');
    if (!Number.isSafeInteger(step) || step <= this.lastStep) {
      throw new Error(`RunLog: step ${step} after step ${this.lastStep}; steps must be increasing integers`);
    }
    this.lastStep = step;
    const line: Record<string, number> = { step }; // keys in TB_TAGS order, whatever the caller's order
    const wallTime = Date.now() / 1000;
    for (const key of Object.keys(TB_TAGS) as (keyof StepMetrics)[]) {
      const value = (metrics as Partial<StepMetrics>)[key];
      if (value === undefined) continue;
      line[key] = value;
      this.events?.addScalar(TB_TAGS[key], value, step, wallTime);
    }
    const fd = this.fd;
    namingFile(this.metricsFile, () => fs.writeSync(fd, `${JSON.stringify(line)}\n`));
    this.events?.flush();
  }

  /** Closes metrics.jsonl and the event file. */
  close(): void {
    this.events?.close();
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * Rewrites `file` keeping its lines with step <= `step`, verbatim. A last line without its newline is
 * the half-written line of a killed run and is dropped; any other line that is not a JSON object with
 * an integer step is an InputError.
 */
function truncateAfter(file: string, step: number): void {
  if (!fs.existsSync(file)) return;
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const partial = lines.pop() ?? ''; // '' when the file ends in a newline
  if (partial !== '' && parseStep(partial) !== null) lines.push(partial);
  const kept: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const s = parseStep(line);
    if (s === null) throw new InputError(file, `line ${i + 1}`, 'not a JSON object with an integer "step"');
    if (s <= step && !isZeroShotLine(line)) kept.push(`${line}\n`);
  });
  writeFileAtomic(file, (fd) => fs.writeFileSync(fd, kept.join('')));
}

function parseStep(line: string): number | null {
  try {
    const obj: unknown = JSON.parse(line);
    if (typeof obj !== 'object' || obj === null) return null;
    const s = (obj as { step?: unknown }).step;
    return typeof s === 'number' && Number.isSafeInteger(s) ? s : null;
  } catch {
    return null;
  }
}

/** A zero-shot line (logZeroShot): it is written again after training. */
function isZeroShotLine(line: string): boolean {
  try {
    const obj: unknown = JSON.parse(line);
    return typeof obj === 'object' && obj !== null && 'zeroshot' in obj;
  } catch {
    return false;
  }
}

/** One evaluated model's zero-shot figures: `model` names it (base, tuned), `step` places it on the curves. */
export interface ZeroShotEntry {
  step: number;
  model: string;
  tasks: Record<string, Omit<TaskResult, 'task'>>;
}

/** The figures TensorBoard gets per task. */
const ZERO_SHOT_TAGS = ['acc', 'acc_norm', 'perplexity'] as const;

/**
 * Appends one line per entry to `<dir>/metrics.jsonl` (dropping the zero-shot lines already there: a run killed
 * after writing them writes them again) and their scalars to a new TensorBoard event file (unless null).
 */
export function logZeroShot(dir: string, tensorboardDir: string | null, entries: readonly ZeroShotEntry[]): void {
  const file = path.join(dir, 'metrics.jsonl');
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n') : [];
  const kept = old.filter((line) => line.trim() !== '' && !isZeroShotLine(line)).map((line) => `${line}\n`);
  const added = entries.map((e) => {
    const tasks = Object.fromEntries(
      Object.entries(e.tasks).map(([name, { seconds: _seconds, ...figures }]) => [name, figures]),
    );
    return `${JSON.stringify({ step: e.step, zeroshot: e.model, tasks })}\n`;
  });
  writeFileAtomic(file, (fd) => fs.writeFileSync(fd, [...kept, ...added].join('')));
  if (tensorboardDir === null) return;
  const events = new EventWriter(tensorboardDir);
  for (const e of entries)
    for (const [name, figures] of Object.entries(e.tasks))
      for (const key of ZERO_SHOT_TAGS) {
        const value = figures[key];
        if (value !== undefined) events.addScalar(`zeroshot/${name}/${key}`, value, e.step);
      }
  events.close();
}
