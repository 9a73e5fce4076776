/**
 * RunLog: the lines of metrics.jsonl (val_loss only where validation ran), the TensorBoard scalars and
 * their tags, and resuming: later lines dropped, a half-written last line dropped, a new event file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { readEventFile } from '../../src/io/tfevents.js';
import { RunLog, type StepMetrics } from '../../src/train/run-log.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-run-log-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const tmpDir = () => path.join(tmp, `run${counter++}`);

const metricsAt = (step: number): StepMetrics => ({
  loss: 3 - step / 10,
  lr: 1e-4 * step,
  grad_norm: 0.5 + step,
  tokens_per_s: 1000 + step,
  rss_mib: 800 + step,
});

const readLines = (dir: string) =>
  fs
    .readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, number>);

/** Runs steps first..last, validating on multiples of 5. */
function run(log: RunLog, first: number, last: number): void {
  log.start(last);
  for (let s = first; s <= last; s++)
    log.log(s, s % 5 === 0 ? { ...metricsAt(s), val_loss: 4 - s / 10 } : metricsAt(s));
  log.close();
}

const eventFiles = (dir: string) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.startsWith('events.out.tfevents.'))
    .sort()
    .map((f) => path.join(dir, f));

describe('RunLog', () => {
  it('writes one metrics.jsonl line per step, with val_loss where validation ran', () => {
    const dir = tmpDir();
    run(new RunLog({ dir, tensorboardDir: null }), 1, 6);
    const lines = readLines(dir);
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines[0]).toEqual({ step: 1, ...metricsAt(1) });
    expect(lines[4]).toEqual({ step: 5, ...metricsAt(5), val_loss: 3.5 });
    expect(Object.keys(lines[4])).toEqual(['step', 'loss', 'lr', 'grad_norm', 'tokens_per_s', 'rss_mib', 'val_loss']);
    expect(lines.filter((l) => 'val_loss' in l).map((l) => l.step)).toEqual([5]);
    expect(fs.readdirSync(dir)).toEqual(['metrics.jsonl']);
  });

  it('writes a validation-only line for the step-0 baseline', () => {
    const dir = tmpDir();
    const log = new RunLog({ dir, tensorboardDir: dir });
    log.log(0, { val_loss: 4.25 });
    run(log, 1, 2);
    expect(readLines(dir)).toEqual([
      { step: 0, val_loss: 4.25 },
      { step: 1, ...metricsAt(1) },
      { step: 2, ...metricsAt(2) },
    ]);
    const first = readEventFile(eventFiles(dir)[0])[1];
    expect(first).toMatchObject({ step: 0, scalars: [{ tag: 'val/loss', value: 4.25 }] });
  });

  it('sends the same scalars to TensorBoard under train/* and val/loss', () => {
    const dir = tmpDir();
    const tb = path.join(dir, 'tb');
    run(new RunLog({ dir, tensorboardDir: tb }), 1, 5);
    const [file] = eventFiles(tb);
    const recs = readEventFile(file);
    expect(recs[0].fileVersion).toBe('brain.Event:2');
    const points = recs.slice(1).flatMap((r) => r.scalars.map((s) => ({ step: r.step, ...s })));
    const train = ['train/loss', 'train/lr', 'train/grad_norm', 'train/tokens_per_s', 'train/rss_mib'];
    expect(points).toHaveLength(5 * train.length + 1);
    const m = metricsAt(3);
    expect(points.filter((p) => p.step === 3)).toEqual(
      [m.loss, m.lr, m.grad_norm, m.tokens_per_s, m.rss_mib].map((v, i) => ({
        step: 3,
        tag: train[i],
        value: Math.fround(v),
      })),
    );
    expect(points.filter((p) => p.tag === 'val/loss')).toEqual([{ step: 5, tag: 'val/loss', value: Math.fround(3.5) }]);
  });

  it('on resume keeps the lines up to the checkpoint step, so each step has exactly one line', () => {
    const dir = tmpDir();
    const tb = path.join(dir, 'tb');
    run(new RunLog({ dir, tensorboardDir: tb }), 1, 7); // killed after step 7; last checkpoint at step 4
    run(new RunLog({ dir, tensorboardDir: tb, resumeFromStep: 4 }), 5, 9);
    const lines = readLines(dir);
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(lines[4]).toEqual({ step: 5, ...metricsAt(5), val_loss: 3.5 });
    const files = eventFiles(tb);
    expect(files).toHaveLength(2);
    const steps = readEventFile(files[1])
      .slice(1)
      .map((r) => r.step);
    expect(new Set(steps)).toEqual(new Set([5, 6, 7, 8, 9]));
  });

  it('on resume drops a half-written last line and refuses a damaged one elsewhere', () => {
    const dir = tmpDir();
    run(new RunLog({ dir, tensorboardDir: null }), 1, 3);
    const file = path.join(dir, 'metrics.jsonl');
    fs.appendFileSync(file, '{"step":4,"loss":2.');
    run(new RunLog({ dir, tensorboardDir: null, resumeFromStep: 3 }), 4, 4);
    expect(readLines(dir).map((l) => l.step)).toEqual([1, 2, 3, 4]);

    fs.writeFileSync(file, '{"step":1}\nnot json\n{"step":3}\n');
    expect(() => new RunLog({ dir, tensorboardDir: null, resumeFromStep: 3 })).toThrow(InputError);
    expect(() => new RunLog({ dir, tensorboardDir: null, resumeFromStep: 3 })).toThrow(/metrics\.jsonl: line 2:/);
  });

  it('starts a fresh metrics.jsonl when not resuming, and rejects steps that do not increase', () => {
    const dir = tmpDir();
    run(new RunLog({ dir, tensorboardDir: null }), 1, 3);
    const log = new RunLog({ dir, tensorboardDir: null, resumeFromStep: 3 });
    expect(() => log.log(3, metricsAt(3))).toThrow(/steps must be increasing/);
    log.close();
    run(new RunLog({ dir, tensorboardDir: null }), 1, 2);
    expect(readLines(dir).map((l) => l.step)).toEqual([1, 2]);
  });

  it('writes a non-finite value as null in JSON and as itself to TensorBoard', () => {
    const dir = tmpDir();
    const log = new RunLog({ dir, tensorboardDir: dir });
    log.log(0, { ...metricsAt(0), loss: NaN });
    log.close();
    expect(readLines(dir)[0].loss).toBeNull();
    const loss = readEventFile(eventFiles(dir)[0])
      .flatMap((r) => r.scalars)
      .find((s) => s.tag === 'train/loss');
    expect(loss?.value).toBeNaN();
  });
});
