/**
 * `wct quantize`'s flags are the recipe schema's `model.quantize` fields: --help lists every field as a
 * --kebab-case flag with the schema's default, and a bad value of any kind is one line naming its flag.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { flagName } from '../../src/cli/schema-flags.js';
import { quantizeShape } from '../../src/recipe/schema.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { readQuantConfig } from '../../src/io/packed-checkpoint.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const TINY = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');

describe('wct quantize flags from the schema', () => {
  const help = wct(['quantize', '--help']).stdout.replace(/\s+/g, ' ');

  for (const [field, schema] of Object.entries(quantizeShape)) {
    it(`--${flagName(field)} with its description and default`, () => {
      expect(help).toContain(`--${flagName(field)}`);
      expect(help).toContain(schema.description!.replace(/\s+/g, ' ').slice(0, 30));
      if (schema instanceof z.ZodDefault)
        expect(help).toContain(`[default: ${JSON.stringify(schema.def.defaultValue)}]`);
    });
  }

  const base = ['quantize', '--model', tinyStoriesDir, '--out', 'never-written'];
  const cases: [string[], RegExp][] = [
    [['--method', 'awq-nope'], /^error: --method: expected rtn, gptq, owq, gwq or awq, got "awq-nope"$/],
    [['--method', 'owq', '--outlier-ratio', '0.01'], /^error: --outlier-ratio: applies to --method gwq only$/],
    [['--method', 'gwq', '--outlier-ratio', '1'], /^error: --outlier-ratio: expected a number in \[0, 1\), got 1$/],
    [
      ['--method', 'gwq', '--gwq-score', 'hessian'],
      /^error: --gwq-score: expected grad, fisher or taylor, got "hessian"$/,
    ],
    [['--method', 'gwq', '--sensitivity', 'fisher'], /^error: --sensitivity: applies to --method owq only$/],
    [
      ['--method', 'owq', '--grad-samples', '2'],
      /^error: --grad-samples: applies to --method gwq, and owq with --sensitivity fisher, only$/,
    ],
    [
      ['--method', 'owq', '--sensitivity', 'fisher', '--awq-scale'],
      /^error: --awq-scale: does not combine with --sensitivity fisher/,
    ],
    [['--tuning', 'best'], /^error: --tuning: expected minmax or mse, got "best"$/],
    [['--nsamples', '0'], /^error: --nsamples: expected an integer in \[1, 65536\], got 0$/],
    [['--nsamples', '1e9'], /^error: --nsamples: expected an integer in \[1, 65536\], got 1000000000$/],
    [['--percdamp', '-1'], /^error: --percdamp: expected a positive number, got -1$/],
    [['--seed', '-1'], /^error: --seed: expected an integer in \[0, 4294967295\], got -1$/],
    [['--seed', '1.5'], /^error: --seed: expected an integer in \[0, 4294967295\], got 1.5$/],
    [['--seed', 'abc'], /^error: --seed: expected an integer in \[0, 4294967295\], got a non-number$/],
    [['--method', 'rtn', '--target-rank', '4'], /^error: --target-rank: applies to --method owq only$/],
    [
      ['--target-bit', '3.1', '--target-rank', '4'],
      /^error: --target-rank: --target-bit and --target-rank exclude each other/,
    ],
    [['--wbits', '3', '--target-bit', '2.5'], /^error: --target-bit: expected at least --wbits \(3\)$/],
    [['--method', 'awq', '--target-bit', '3.1'], /^error: --target-bit: applies to --method owq only$/],
    [['--method', 'rtn', '--awq-scale'], /^error: --awq-scale: applies to --method gptq, owq or awq only$/],
    [['--method', 'owq', '--no-clip'], /^error: --awq-clip: applies to --method awq only$/],
    [['--method', 'awq', '--awq-grid', '1'], /^error: --awq-grid: expected an integer in \[2, 1000\], got 1$/],
  ];
  for (const [args, message] of cases) {
    it(`${args.join(' ')}: one line naming the flag`, () =>
      expect(expectOneLineError(wct([...base, ...args]))).toMatch(message));
  }
});

describe('wct quantize --method awq', () => {
  it("--no-scale --no-clip is AWQ's round-to-nearest: no calibration, the reference's rtn_w3_g64 perplexity", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-awq-rtn-'));
    try {
      const args = ['--method', 'awq', '--no-scale', '--no-clip', '--wbits', '3', '--group-size', '64'];
      const run = wct([
        'quantize',
        '--model',
        tinyStoriesDir,
        '--out',
        out,
        '--force',
        ...args,
        '--eval',
        TINY,
        '--json',
      ]);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stderr).not.toContain('calibration');
      const summary = JSON.parse(run.stdout);
      expect(summary.method).toBe('awq');
      expect(summary.awq_alpha).toBeUndefined();
      expect(Math.abs(summary.ppl[TINY] - 49.09809875488281) / 49.098).toBeLessThan(1e-4); // awq-tinystories-656k.md; the packed kernels' own rounding (4e-5 here) on top of the fake-quantized model's 1e-6
      expect(readQuantConfig(out).awq).toBeUndefined();
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
