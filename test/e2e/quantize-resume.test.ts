/**
 * `wct quantize --resume` on a 4-layer random Llama (llama-7b's structure at hidden size 64): a run killed (SIGKILL,
 * the WCT_TEST_EXIT_AFTER_BLOCKS hook of src/quant/quantize-checkpoint.ts) once 2 blocks are stored leaves their
 * parts in `<out>.partial/`; a rerun without --resume refuses with one error line naming --resume and --force, a resume with
 * other options refuses in one line, and the resume finishes with a model.safetensors byte-identical (sha256) to an
 * uninterrupted run's, and removes the partial state. Also with --calib-dtype bf16, whose stored inputs are BF16. A
 * malformed partial state is refused in one line.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors } from '../../src/io/safetensors.js';
import { cliPath, expectFinalErrorLine, expectOneLineError, wct } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';
import { writeRandomWindows } from '../helpers/random-windows.js';

let tmp: string;
let model: string;
let tokens: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-resume-'));
  model = path.join(tmp, 'llama4');
  const r = wct([
    'init-random',
    '--like',
    'llama-7b',
    '--layers',
    '4',
    '--hidden-size',
    '64',
    '--intermediate-size',
    '128',
    '--num-heads',
    '4',
    '--num-kv-heads',
    '4',
    '--out',
    model,
  ]);
  expect(r.status, r.stderr).toBe(0);
  // the calibration is part of the run's identity
  tokens = writeRandomWindows(tmp, 6, 24, 32000, 12345);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** The quantize command line into `out` (OWQ, 2 weak columns, the 6 windows in one batch), plus `extra`. */
const quantizeArgs = (out: string, extra: string[] = []) => [
  'quantize',
  '--model',
  model,
  '--method',
  'owq',
  '--wbits',
  '3',
  '--target-rank',
  '2',
  '--calib-tokens',
  tokens,
  '--nsamples',
  '6',
  '--seqlen',
  '24',
  '--out',
  out,
  '--json',
  ...extra,
];

/** Runs the CLI with WCT_TEST_EXIT_AFTER_BLOCKS=n: it kills itself once n blocks are stored. */
function crashAfter(n: number, args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], {
    encoding: 'utf8',
    cwd: repoRoot,
    env: { ...process.env, WCT_TEST_EXIT_AFTER_BLOCKS: String(n) },
  });
}

describe.each([['fp32'], ['bf16']])('wct quantize --resume (--calib-dtype %s)', (dtype) => {
  it('a run killed after block 2, resumed, writes the same model.safetensors as an uninterrupted run', () => {
    const flags = ['--calib-dtype', dtype];
    const whole = path.join(tmp, `whole-${dtype}`);
    const r = wct(quantizeArgs(whole, flags));
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.blocks.map((b: { block: number }) => b.block)).toEqual([0, 1, 2, 3]);
    for (const b of summary.blocks)
      for (const key of ['load_s', 'forward_s', 'hessian_s', 'transform_s', 'quantize_s', 'pack_s', 'write_s'])
        expect(b[key], key).toBeGreaterThanOrEqual(0);
    expect(fs.existsSync(`${whole}.partial`)).toBe(false);

    const out = path.join(tmp, `resumed-${dtype}`);
    const crashed = crashAfter(2, quantizeArgs(out, flags));
    expect(crashed.signal).toBe('SIGKILL');
    expect(fs.existsSync(out)).toBe(false);
    const partial = `${out}.partial`;
    const state = JSON.parse(fs.readFileSync(path.join(partial, 'state.json'), 'utf8'));
    expect(state.blocks_done).toBe(2);
    expect(fs.readdirSync(partial).sort()).toEqual([
      'block-0.safetensors',
      'block-1.safetensors',
      'inputs-2.safetensors',
      'state.json',
    ]);
    const inputs = openSafetensors(path.join(partial, 'inputs-2.safetensors'));
    expect(inputs.names().map((n) => inputs.info(n))).toEqual([
      { dtype: dtype === 'bf16' ? 'BF16' : 'F32', shape: [6, 24, 64] },
    ]);
    inputs.close();

    // the first rerun also notes that it takes over the killed run's lock
    expect(expectFinalErrorLine(wct(quantizeArgs(out, flags)))).toMatch(/^error: --resume: .*--resume.*--force/);
    const other = wct(quantizeArgs(out, [...flags, '--percdamp', '0.02', '--resume']));
    expect(expectOneLineError(other)).toMatch(/--resume: .*another model, options or calibration/);

    const resumed = wct(quantizeArgs(out, [...flags, '--resume']));
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).blocks).toHaveLength(4);
    expect(sha256(path.join(out, 'model.safetensors'))).toBe(sha256(path.join(whole, 'model.safetensors')));
    expect(fs.existsSync(partial)).toBe(false);
  }, 120_000);
});

it('a partial state that is not one this tool wrote is refused in one line naming the file and field', () => {
  const out = path.join(tmp, 'corrupt');
  fs.mkdirSync(`${out}.partial`);
  fs.writeFileSync(path.join(`${out}.partial`, 'state.json'), JSON.stringify({ key: 'k', blocks_done: -1 }));
  const r = wct(['quantize', '--model', model, '--method', 'rtn', '--wbits', '4', '--out', out, '--resume']);
  expect(expectOneLineError(r)).toMatch(/corrupt\.partial\/state\.json: blocks_done: expected a non-negative integer/);
});
