/**
 * `wct-train` end to end on a short recipe over a packed TinyStories-656K base: the loss drops, the
 * exported deltas reload to the same validation loss, everything but the weak columns stays bit-identical,
 * the TensorBoard events parse back, a kill -9 run resumes to the same final loss, `wct compare` reads both
 * runs' summaries, and deltas made for another base are refused.
 */
import { testTrainConfig } from '../helpers/train-config.js';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/data/dataset.js';
import { readEventFile } from '../../src/io/tfevents.js';
import type { Comparison } from '../../src/report/compare.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { loadModel } from '../../src/models/load.js';
import { packedLinearsOf } from '../../src/models/weak-deltas.js';
import { RunLog } from '../../src/train/run-log.js';
import { TrainingDiverged, train as trainModel, type TrainConfig } from '../../src/train/trainer.js';
import { weakParameters } from '../../src/train/wct.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { dataDir, repoRoot, tinyStoriesDir } from '../helpers/paths.js';

const TRAIN_CLI = path.join(repoRoot, 'dist/src/cli/wct-train.js');
const ALPACA = path.join(dataDir, 'instruct/alpaca/alpaca-2k.json');
const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');

let tmp: string;
let base: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-train-'));
  base = path.join(tmp, 'base');
  const r = wct([
    'quantize',
    '--model',
    tinyStoriesDir,
    '--method',
    'owq',
    '--wbits',
    '3',
    '--target-rank',
    '4',
    '--calib-tokens',
    CALIB,
    '--nsamples',
    '16',
    '--out',
    base,
  ]);
  expect(r.status, r.stderr).toBe(0);
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recipe(name: string, steps = 8): string {
  const file = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(
    file,
    [
      `model: { path: ${base} }`,
      'method: wct',
      `data: { path: ${ALPACA}, format: alpaca, template: alpaca, max_length: 128, validation: { count: 16 } }`,
      `train: { steps: ${steps}, micro_batch: 2, grad_accum: 2, optimizer: { lr: 0.003 }, schedule: { kind: constant, warmup_steps: 0 } }`,
      'eval: { every: 4, final: [] }',
      `output: { dir: ${path.join(tmp, name)}, save_every: 2, keep: 2 }`,
      `logging: { tensorboard: ${path.join(tmp, name, 'tb')}, every: 1 }`,
    ].join('\n'),
  );
  return file;
}

/** Runs the built wct-train on a recipe with --json. */
function train(file: string) {
  const r = spawnSync(process.execPath, [TRAIN_CLI, file, '--json'], {
    encoding: 'utf8',
    timeout: 300_000,
    cwd: repoRoot,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function metrics(run: string): Record<string, number>[] {
  return fs
    .readFileSync(path.join(tmp, run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

const smallData = (tokenizer: ReturnType<typeof loadTokenizer>) =>
  loadDataset(
    {
      path: ALPACA,
      format: 'alpaca',
      template: 'alpaca',
      maxLength: 128,
      validation: { count: 8 },
      shuffleSeed: 0,
      packing: false,
    },
    tokenizer,
  );

/** Three optimizer steps in this process, logging into <tmp>/<run>. */
function trainInProcess(
  model: ReturnType<typeof loadModel>,
  data: ReturnType<typeof smallData>,
  run: string,
  o: Partial<TrainConfig>,
) {
  const dir = path.join(tmp, run);
  return trainModel(
    model,
    weakParameters(model),
    data,
    testTrainConfig(dir, o),
    (resumeFromStep) => new RunLog({ dir, tensorboardDir: null, resumeFromStep }),
  );
}

describe('wct-train', () => {
  it('trains, exports deltas that reload to the same validation loss, logs metrics and TensorBoard events', () => {
    const r = train(recipe('a'));
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.train.valLossAfter).toBeLessThan(s.train.valLossBefore);
    expect(Math.abs(s.valLossReloaded - s.train.valLossAfter)).toBeLessThan(1e-6);
    expect(r.stderr).toMatch(/examples longer than data.max_length 128 were truncated/);
    const lines = metrics('a');
    expect(lines.map((l) => l.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(lines[4].val_loss).toBeGreaterThan(0);
    const tb = path.join(tmp, 'a', 'tb');
    const events = readEventFile(path.join(tb, fs.readdirSync(tb)[0]));
    const losses = events.flatMap((e) =>
      e.scalars.filter((x) => x.tag === 'train/loss').map((x) => ({ step: e.step, value: x.value })),
    );
    expect(losses.map((x) => x.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(losses[7].value).toBeCloseTo(lines[8].loss, 5);
    // the deltas over the base change the model; over another base they are refused
    const deltas = path.join(tmp, 'a', 'weak_deltas.safetensors');
    const text = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
    const plain = JSON.parse(wct(['eval', '--model', base, '--data', text, '--json']).stdout).ppl;
    const tuned = JSON.parse(wct(['eval', '--model', base, '--deltas', deltas, '--data', text, '--json']).stdout).ppl;
    expect(tuned).not.toBe(plain);
    const other = path.join(tmp, 'other');
    expect(wct(['quantize', '--model', tinyStoriesDir, '--method', 'rtn', '--wbits', '4', '--out', other]).status).toBe(
      0,
    );
    expect(expectOneLineError(wct(['eval', '--model', other, '--deltas', deltas, '--data', text]))).toMatch(
      /weak_deltas.safetensors: __metadata__.base_sha256: made for another base/,
    );
  });

  it('resumes after kill -9 to the same final loss as an uninterrupted run', async () => {
    const file = recipe('b');
    const child = spawn(process.execPath, [TRAIN_CLI, file], { cwd: repoRoot, stdio: 'ignore' });
    const checkpoint = path.join(tmp, 'b', 'checkpoint-2');
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (fs.existsSync(checkpoint)) {
          clearInterval(timer);
          child.kill('SIGKILL');
          resolve();
        }
      }, 20);
      child.on('exit', () => {
        clearInterval(timer);
        if (!fs.existsSync(path.join(tmp, 'b', 'checkpoint-2')))
          reject(new Error('wct-train exited before its first checkpoint'));
        resolve();
      });
    });
    await new Promise((resolve) => child.on('exit', resolve).on('close', resolve));
    const r = train(file);
    expect(r.status, r.stderr).toBe(0);
    const resumed = metrics('b');
    expect(resumed.map((l) => l.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const uninterrupted = metrics('a');
    expect(Math.abs(resumed[8].loss - uninterrupted[8].loss)).toBeLessThan(1e-6);
    expect(Math.abs(resumed[8].val_loss - uninterrupted[8].val_loss)).toBeLessThan(1e-6);
  });

  it('`wct compare` reads the summaries wct-train wrote (the resumed run has no validation loss before)', () => {
    const r = wct(['compare', path.join(tmp, 'a'), path.join(tmp, 'b'), '--out', path.join(tmp, 'compare'), '--json']);
    expect(r.status, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout) as Comparison;
    const rows = c.runs.map((row) => [row.run, row.method, row.valLossBefore === null]);
    expect(rows).toEqual([
      ['a', 'wct', false],
      ['b', 'wct', true],
    ]);
  });

  it('changes only the weak columns', async () => {
    const model = loadModel(base);
    const tokenizer = loadTokenizer(base);
    const frozen = new Map<string, Uint8Array>();
    const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
    for (const [name, t] of model.parameters()) frozen.set(name, bytes(t.data));
    for (const [name, l] of packedLinearsOf(model)) {
      frozen.set(`${name}.qweight`, bytes(l.packed.qweight));
      frozen.set(`${name}.scales`, bytes(l.packed.scales));
      frozen.set(`${name}.zeros`, bytes(l.packed.zeros));
    }
    const weakBefore = [...packedLinearsOf(model).values()].map((l) => l.packed.weak.slice());
    const data = smallData(tokenizer);
    await trainInProcess(model, data, 'c', { lr: 0.01 });
    for (const [name, t] of model.parameters()) expect(Buffer.compare(bytes(t.data), frozen.get(name)!), name).toBe(0);
    const layers = [...packedLinearsOf(model)];
    for (const [name, l] of layers) {
      expect(Buffer.compare(bytes(l.packed.qweight), frozen.get(`${name}.qweight`)!)).toBe(0);
      expect(Buffer.compare(bytes(l.packed.scales), frozen.get(`${name}.scales`)!)).toBe(0);
      expect(Buffer.compare(bytes(l.packed.zeros), frozen.get(`${name}.zeros`)!)).toBe(0);
    }
    expect(layers.some(([, l], i) => l.packed.weak.some((x, j) => x !== weakBefore[i][j]))).toBe(true);
  });

  it('stops on a non-finite loss, naming the step and keeping the last good checkpoint', async () => {
    const model = loadModel(base);
    const data = smallData(loadTokenizer(base));
    let error: unknown = null;
    try {
      await trainInProcess(model, data, 'nan', { lr: 1e38, maxGradNorm: Infinity });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrainingDiverged);
    expect((error as Error).message).toMatch(
      /step \d+: non-finite (loss|gradient norm); the last good state is .*checkpoint-\d+/,
    );
  });

  it('rejects a bad recipe or data file with one line', () => {
    const bad = path.join(tmp, 'bad.yaml');
    fs.writeFileSync(bad, fs.readFileSync(recipe('d'), 'utf8').replace('micro_batch: 2', 'micro_bach: 2'));
    expect(
      expectOneLineError(spawnSync(process.execPath, [TRAIN_CLI, bad], { encoding: 'utf8', cwd: repoRoot })),
    ).toMatch(/bad.yaml:4 train.micro_bach: unknown key/);
    const missing = path.join(tmp, 'missing.yaml');
    fs.writeFileSync(missing, fs.readFileSync(recipe('e'), 'utf8').replace(ALPACA, path.join(tmp, 'nope.json')));
    expect(
      expectOneLineError(spawnSync(process.execPath, [TRAIN_CLI, missing], { encoding: 'utf8', cwd: repoRoot })),
    ).toMatch(/nope.json/);
  });
});
