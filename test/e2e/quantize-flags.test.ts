/**
 * `wct quantize`'s flags are the recipe schema's `model.quantize` fields: --help lists every field as a
 * --kebab-case flag with the schema's default, and a bad value of any kind is one line naming its flag.
 */
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { flagName } from '../../src/cli/schema-flags.js';
import { quantizeShape } from '../../src/recipe/schema.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { tinyStoriesDir } from '../helpers/paths.js';

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
    [['--method', 'awq-nope'], /^error: --method: expected rtn, gptq or owq, got "awq-nope"$/],
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
  ];
  for (const [args, message] of cases) {
    it(`${args.join(' ')}: one line naming the flag`, () =>
      expect(expectOneLineError(wct([...base, ...args]))).toMatch(message));
  }
});
