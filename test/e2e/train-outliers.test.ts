/**
 * Training the sparse GWQ-style outliers (train.trainable outliers / both), in process over a packed
 * TinyStories-656K base with outliers added by hand (test/helpers/outliers.ts): codes, scales, zero points, the
 * weak columns (outliers only) and the outlier positions stay bit-identical while the values move; a resumed
 * run restores them from its checkpoint; the deltas round trip (values and positions), refuse other positions
 * with one line, and a weak-only deltas file of an earlier version still loads; the trainable set's errors; the
 * comparison's label. Then `wct-train` end to end over a `wct quantize --method gwq` base: trainable outliers,
 * deltas that reload to the same validation loss and change `wct eval --deltas`, `wct compare`'s label, and the
 * recipe errors (one line naming train.trainable).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/data/dataset.js';
import { openSafetensors } from '../../src/io/safetensors-read.js';
import { checkpointSha256, writeWeakDeltas } from '../../src/io/weak-deltas.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { applyWeakDeltas, packedLinearsOf, weakColumnsOf } from '../../src/models/weak-deltas.js';
import { loadRecipe } from '../../src/recipe/load.js';
import type { TrainableSet } from '../../src/recipe/schema.js';
import { comparisonTable, methodLabel, type Comparison, type CompareRow } from '../../src/report/compare.js';
import { RunLog } from '../../src/train/run-log.js';
import { train } from '../../src/train/trainer.js';
import { wctParameters } from '../../src/train/wct.js';
import { addOutliers } from '../helpers/outliers.js';
import { packedTinyStories } from '../helpers/packed.js';
import { expectFinalErrorLine, expectOneLineError, wct } from '../helpers/cli.js';
import { dataDir, repoRoot, tinyStoriesDir } from '../helpers/paths.js';
import { testTrainConfig } from '../helpers/train-config.js';

const ALPACA = path.join(dataDir, 'instruct/alpaca/alpaca-2k.json');
const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');
const STORIES = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const TRAIN_CLI = path.join(repoRoot, 'dist/src/cli/wct-train.js');

let tmp: string;
let base: string;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-train-outliers-'));
  base = await packedTinyStories(path.join(tmp, 'base'));
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The base with two outliers per row in every packed linear (the same positions and values for the same seed). */
function withOutliers(seed = 7): CausalLM {
  const model = loadModel(base);
  addOutliers(model, { perRow: 2, seed });
  return model;
}

let cached: ReturnType<typeof loadDataset> | null = null;
const data = () =>
  (cached ??= loadDataset(
    {
      path: ALPACA,
      format: 'alpaca',
      template: 'alpaca',
      maxLength: 128,
      validation: { count: 4 },
      shuffleSeed: 0,
      packing: false,
    },
    loadTokenizer(base),
  ));

function trainSet(model: CausalLM, set: TrainableSet, run: string, steps = 3) {
  const dir = path.join(tmp, run);
  return train(
    model,
    wctParameters(model, set),
    data(),
    testTrainConfig(dir, { steps, lr: 0.01 }),
    (resumeFromStep) => new RunLog({ dir, tensorboardDir: null, resumeFromStep }),
  );
}

const bytes = (a: ArrayBufferView) => Buffer.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice());

/** Every frozen array of the model by name (and the outlier values, as `<linear>.values`). */
function snapshot(model: CausalLM): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [name, t] of model.parameters()) out.set(name, bytes(t.data));
  for (const [name, l] of packedLinearsOf(model)) {
    const p = l.packed;
    for (const [k, a] of Object.entries({ qweight: p.qweight, scales: p.scales, zeros: p.zeros, weak: p.weak }))
      out.set(`${name}.${k}`, bytes(a));
    out.set(`${name}.rowPtr`, bytes(p.outliers!.rowPtr));
    out.set(`${name}.colIdx`, bytes(p.outliers!.colIdx));
    out.set(`${name}.values`, bytes(p.outliers!.values));
  }
  return out;
}

function changed(before: Map<string, Buffer>, after: Map<string, Buffer>): string[] {
  return [...before].filter(([k, b]) => !b.equals(after.get(k)!)).map(([k]) => k);
}

describe('outlier tuning', () => {
  let trained: CausalLM;

  it('trains only the outlier values: codes, scales, zeros, weak columns and positions stay bit-identical', async () => {
    trained = withOutliers();
    const before = snapshot(trained);
    const r = await trainSet(trained, 'outliers', 'outliers');
    expect(r.trainableParams).toBe([...packedLinearsOf(trained).values()].reduce((n, l) => n + l.outliers!.size, 0));
    const moved = changed(before, snapshot(trained));
    expect(moved.length).toBeGreaterThan(0);
    expect(
      moved.every((k) => k.endsWith('.values')),
      moved.join(', '),
    ).toBe(true);
    // the checkpoint names the outlier parameters apart from weak columns
    const ckpt = openSafetensors(path.join(tmp, 'outliers', 'checkpoint-3', 'trainer.safetensors'));
    const linear = [...packedLinearsOf(trained).keys()][0];
    expect(ckpt.names()).toContain(`${linear}.outliers.value`);
    expect(ckpt.names()).not.toContain(`${linear}.value`);
    ckpt.close();
  }, 60_000);

  it('a resumed run restores the trained values from its checkpoint', async () => {
    const fresh = withOutliers();
    const r = await trainSet(fresh, 'outliers', 'outliers');
    expect(r.resumedFrom).toBe(3);
    const [a, b] = [snapshot(trained), snapshot(fresh)];
    expect(changed(a, b)).toEqual([]);
  }, 60_000);

  it('both: the weak columns and the outlier values move, nothing else', async () => {
    const model = withOutliers();
    const before = snapshot(model);
    await trainSet(model, 'both', 'both', 2);
    const moved = changed(before, snapshot(model));
    expect(moved.some((k) => k.endsWith('.weak'))).toBe(true);
    expect(moved.some((k) => k.endsWith('.values'))).toBe(true);
    expect(
      moved.every((k) => k.endsWith('.values') || k.endsWith('.weak')),
      moved.join(', '),
    ).toBe(true);
  }, 60_000);

  it('deltas round trip the values and positions; other positions are refused in one line', () => {
    const file = path.join(tmp, 'deltas.safetensors');
    const meta = { baseSha256: checkpointSha256(base), recipeHash: 'x', step: 3 };
    writeWeakDeltas(file, weakColumnsOf(trained), { ...meta, trainable: 'outliers' });
    const st = openSafetensors(file);
    const linear = [...packedLinearsOf(trained).keys()][0];
    expect(st.metadata.trainable).toBe('outliers');
    expect(st.names()).toEqual(
      expect.arrayContaining([`${linear}.outliers`, `${linear}.outlier_row_ptr`, `${linear}.outlier_col_idx`]),
    );
    expect(st.names().some((n) => n.endsWith('.weak'))).toBe(false);
    st.close();
    const loaded = withOutliers();
    const before = snapshot(loaded);
    applyWeakDeltas(loaded, file, base);
    const after = snapshot(loaded);
    expect(changed(after, snapshot(trained))).toEqual([]);
    expect(changed(before, after).every((k) => k.endsWith('.values'))).toBe(true);
    // both: the weak columns beside the outliers, and the same values come back
    const bothFile = path.join(tmp, 'deltas-both.safetensors');
    writeWeakDeltas(bothFile, weakColumnsOf(trained), { ...meta, trainable: 'both' });
    const both = openSafetensors(bothFile);
    expect(both.names()).toEqual(expect.arrayContaining([`${linear}.weak`, `${linear}.outliers`]));
    both.close();
    const loadedBoth = withOutliers();
    applyWeakDeltas(loadedBoth, bothFile, base);
    expect(changed(snapshot(loadedBoth), snapshot(trained))).toEqual([]);
    // the same deltas over other outlier positions
    const other = withOutliers(8);
    let message = '';
    try {
      applyWeakDeltas(other, file, base);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).not.toContain('\n');
    expect(message).toMatch(
      new RegExp(
        `^${file}: ${linear.replaceAll('.', '\\.')}\\.outlier_col_idx: the outlier positions do not match the base's \\(outlier \\d+ of row \\d+ is at column \\d+, the base's at \\d+\\): deltas for other outliers$`,
      ),
    );
  });

  it("a weak-only deltas file (an earlier version's) loads over a base with outliers, which keep their values", () => {
    const file = path.join(tmp, 'weak-only.safetensors');
    const donor = loadModel(base);
    for (const l of packedLinearsOf(donor).values()) l.packed.weak.fill(0.125);
    writeWeakDeltas(file, weakColumnsOf(donor), { baseSha256: checkpointSha256(base), recipeHash: 'x', step: 1 });
    const st = openSafetensors(file);
    expect(st.metadata.trainable).toBeUndefined();
    st.close();
    const model = withOutliers();
    const before = snapshot(model);
    applyWeakDeltas(model, file, base);
    const moved = changed(before, snapshot(model));
    expect(moved.length).toBeGreaterThan(0);
    expect(moved.every((k) => k.endsWith('.weak'))).toBe(true);
  });

  it('the trainable set: outliers on a base without them, and a bad value, are refused naming train.trainable', () => {
    expect(() => wctParameters(loadModel(base), 'outliers')).toThrow(
      'train.trainable: outliers: the base has no outliers to train (quantize it with sparse outliers, or train weak_columns)',
    );
    expect(() => wctParameters(loadModel(base), 'both')).toThrow(/^train\.trainable: both: the base has no outliers/);
    const recipe = (trainable: string) => {
      const file = path.join(tmp, `recipe-${trainable || 'none'}.yaml`);
      fs.writeFileSync(
        file,
        [
          `model: { path: ${base} }`,
          `data: { path: ${ALPACA}, format: alpaca }`,
          `train: { steps: 2${trainable === '' ? '' : `, trainable: ${trainable}`} }`,
          `output: { dir: ${path.join(tmp, 'never')} }`,
        ].join('\n'),
      );
      return file;
    };
    expect(() => loadRecipe(recipe('outlier'))).toThrow(/:3 train\.trainable: expected weak_columns, outliers or both/);
    // the default, set or not, hashes as recipes did before the key existed
    expect(loadRecipe(recipe('weak_columns')).hash).toBe(loadRecipe(recipe('')).hash);
    expect(loadRecipe(recipe('outliers')).recipe.train.trainable).toBe('outliers');
    expect(loadRecipe(recipe('both')).hash).not.toBe(loadRecipe(recipe('')).hash);
  });

  it('wct compare labels a run from its trainable set', () => {
    expect(methodLabel('wct', 'weak_columns')).toBe('wct');
    expect(methodLabel('wct', 'outliers')).toBe('GWQ-style outliers');
    expect(methodLabel('wct', 'both')).toBe('WCT + outliers');
    expect(methodLabel('lora', null)).toBe('lora');
    const row = (run: string, method: CompareRow['method'], trainable: TrainableSet | null): CompareRow => ({
      run,
      dir: run,
      method,
      trainable,
      label: methodLabel(method, trainable),
      recipe: 'r.yaml',
      recipeHash: null,
      base: 'b',
      baseBits: 3,
      steps: 1,
      trainableParams: 1,
      optimizerStateBytes: 8,
      peakRssMiB: 1,
      stepSeconds: 1,
      tokensPerSecond: 1,
      valLossBefore: 2,
      valLossAfter: 1,
      valLossReloaded: 1,
      ppl: {},
      artifact: { path: 'a', bytes: 1 },
      seconds: 1,
    });
    const c: Comparison = {
      evalTexts: [],
      runs: [row('w', 'wct', 'weak_columns'), row('o', 'wct', 'outliers'), row('l', 'lora', null)],
      curves: [],
    };
    const { header, rows } = comparisonTable(c);
    expect(rows.map((r) => r[header.indexOf('method')])).toEqual(['wct', 'GWQ-style outliers', 'lora']);
  });
});

describe('wct-train over a gwq base', () => {
  let gwq: string;
  beforeAll(() => {
    gwq = path.join(tmp, 'gwq');
    const r = wct([
      'quantize',
      '--model',
      tinyStoriesDir,
      '--method',
      'gwq',
      '--wbits',
      '3',
      '--outlier-ratio',
      '0.01',
      '--calib-tokens',
      CALIB,
      '--nsamples',
      '4',
      '--seqlen',
      '64',
      '--out',
      gwq,
    ]);
    expect(r.status, r.stderr).toBe(0);
  }, 120_000);

  /** A recipe over `model` (extra: more top-level lines) writing into <tmp>/<name>; `train` adds to its train mapping. */
  function recipe(name: string, model: string, train: string, extra: string[] = []): string {
    const file = path.join(tmp, `${name}.yaml`);
    fs.writeFileSync(
      file,
      [
        `model: { path: ${model} }`,
        ...extra,
        `data: { path: ${ALPACA}, format: alpaca, template: alpaca, max_length: 128, validation: { count: 8 } }`,
        `train: { steps: 4, micro_batch: 2, grad_accum: 1, optimizer: { lr: 0.003 }, schedule: { kind: constant, warmup_steps: 0 }${train} }`,
        'eval: { every: 2, final: [] }',
        `output: { dir: ${path.join(tmp, name)}, save_every: 2, keep: 1 }`,
        'logging: { tensorboard: null, every: 1 }',
      ].join('\n'),
    );
    return file;
  }
  const run = (file: string) =>
    spawnSync(process.execPath, [TRAIN_CLI, file, '--json'], { encoding: 'utf8', timeout: 300_000, cwd: repoRoot });

  it('trains the outliers, exports deltas that reload to the same loss and change wct eval --deltas', () => {
    const r = run(recipe('gwq-outliers', gwq, ', trainable: outliers'));
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.trainable).toBe('outliers');
    expect(s.train.valLossAfter).toBeLessThan(s.train.valLossBefore);
    expect(Math.abs(s.valLossReloaded - s.train.valLossAfter)).toBeLessThan(1e-6);
    const deltas = path.join(tmp, 'gwq-outliers', 'weak_deltas.safetensors');
    const st = openSafetensors(deltas);
    expect(st.names().every((n) => /\.(outliers|outlier_row_ptr|outlier_col_idx)$/.test(n))).toBe(true);
    expect(st.names().filter((n) => n.endsWith('.outliers')).length * 3).toBe(st.names().length);
    st.close();
    const ppl = (extra: string[]) =>
      JSON.parse(wct(['eval', '--model', gwq, ...extra, '--data', STORIES, '--seqlen', '128', '--json']).stdout).ppl;
    expect(ppl(['--deltas', deltas])).not.toBe(ppl([]));
    const c = JSON.parse(
      wct(['compare', path.join(tmp, 'gwq-outliers'), '--out', path.join(tmp, 'cmp'), '--json']).stdout,
    );
    expect(c.runs[0]).toMatchObject({ method: 'wct', trainable: 'outliers', label: 'GWQ-style outliers' });
    expect(fs.readFileSync(path.join(tmp, 'cmp', 'compare.md'), 'utf8')).toContain(
      '| gwq-outliers | GWQ-style outliers |',
    );
  });

  it('refuses a trainable set the base or method cannot train, in one line naming train.trainable', () => {
    const err = (file: string) => expectFinalErrorLine(run(file));
    expect(err(recipe('gwq-weak', gwq, ''))).toBe(
      `error: ${path.join(tmp, 'gwq-weak.yaml')}: train.trainable: weak_columns (the default): the base has no weak columns but sparse outliers (set train.trainable: outliers)`,
    );
    expect(err(recipe('gwq-both', gwq, ', trainable: both'))).toMatch(
      /train\.trainable: both: the base has no weak columns to train \(train outliers\)$/,
    );
    expect(err(recipe('owq-outliers', base, ', trainable: outliers'))).toMatch(
      /train\.trainable: outliers: the base has no outliers to train/,
    );
    expect(
      expectOneLineError(run(recipe('lora-outliers', tinyStoriesDir, ', trainable: outliers', ['method: lora']))),
    ).toMatch(/lora-outliers\.yaml:\d+ train\.trainable: applies to method wct only, not lora$/);
    // quantized by the run with a method that keeps no outliers: refused before quantizing
    const q = `quantize: { method: owq, wbits: 4, target_rank: 2, calib_tokens: ${CALIB}, nsamples: 4 }`;
    const onTheFly = recipe('fly-outliers', tinyStoriesDir, ', trainable: outliers');
    fs.writeFileSync(
      onTheFly,
      fs.readFileSync(onTheFly, 'utf8').replace(`path: ${tinyStoriesDir} }`, `path: ${tinyStoriesDir}, ${q} }`),
    );
    const fly = run(onTheFly);
    expect(expectOneLineError(fly)).toMatch(
      /fly-outliers\.yaml:\d+ train\.trainable: outliers: model\.quantize\.method owq keeps no outliers \(use gwq, or train weak_columns\)$/,
    );
    expect(fs.existsSync(path.join(tmp, 'fly-outliers', 'base'))).toBe(false);
  });
});
