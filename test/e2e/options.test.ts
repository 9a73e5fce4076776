/**
 * Numeric options outside their range are one line naming the flag and the accepted range (exit 1), checked before
 * anything runs: seeds are 32-bit integers, counts positive integers, --top-p in (0, 1], and the prompt plus
 * --max-new-tokens (or --seqlen) within the model's max_position_embeddings, for every family.
 */
import { describe, expect, it } from 'vitest';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

const generate = (...args: string[]) => ['generate', '--model', tinyStoriesDir, '--prompt', 'Once', ...args];
const evaluate = (...args: string[]) => ['eval', '--model', tinyStoriesDir, ...args];
const initRandom = (...args: string[]) => [
  'init-random',
  '--like',
  'tinystories-656k',
  '--out',
  'never-written',
  ...args,
];

const SEED = String.raw`expected an integer in \[0, 4294967295\]`;

describe('numeric options are checked', () => {
  const cases: [string[], RegExp][] = [
    [generate('--seed', '-1'), new RegExp(`^error: --seed: ${SEED}, got -1$`)],
    [generate('--seed', '1.5'), new RegExp(`^error: --seed: ${SEED}, got 1.5$`)],
    [generate('--seed', 'abc'), new RegExp(`^error: --seed: ${SEED}, got a non-number$`)],
    [generate('--seed', '1', '--seed', '2'), /^error: --seed: given 2 times; expected one value$/],
    [generate('--max-new-tokens', '0'), /^error: --max-new-tokens: expected an integer >= 1, got 0$/],
    [
      generate('--max-new-tokens', '1e9'),
      /^error: --max-new-tokens: the prompt's \d+ tokens \+ 1000000000 new tokens exceed the model's limit of 512 positions/,
    ],
    [
      generate('--max-new-tokens', '510'),
      /^error: --max-new-tokens: the prompt's \d+ tokens \+ 510 new tokens exceed the model's limit of 512 positions/,
    ],
    [
      ['generate', '--model', tinyStoriesDir, '--prompt', 'Once upon a time '.repeat(300), '--max-new-tokens', '1'],
      /^error: --max-new-tokens: the prompt's \d{4} tokens \+ 1 new tokens exceed the model's limit of 512 positions/,
    ],
    [
      ['generate', '--model', optTinyDir, '--prompt', 'a', '--max-new-tokens', '200'],
      /^error: --max-new-tokens: the prompt's \d+ tokens \+ 200 new tokens exceed the model's limit of 128 positions/,
    ],
    [generate('--temperature', '-0.5'), /^error: --temperature: expected a number >= 0, got -0.5$/],
    [generate('--top-p', '0'), /^error: --top-p: expected a number in \(0, 1\], got 0$/],
    [generate('--top-p', '1.5'), /^error: --top-p: expected a number in \(0, 1\], got 1.5$/],
    [evaluate('--batch-size', '0'), /^error: --batch-size: expected an integer >= 1, got 0$/],
    [evaluate('--batch-size', '1.5'), /^error: --batch-size: expected an integer >= 1, got 1.5$/],
    [evaluate('--max-chunks', '0'), /^error: --max-chunks: expected an integer >= 1, got 0$/],
    [evaluate('--seqlen', '1'), /^error: --seqlen: expected an integer >= 2, got 1$/],
    [evaluate('--seqlen', '513'), /^error: --seqlen: windows of 513 tokens exceed the model's limit of 512 positions/],
    [initRandom('--layers', '1e9'), /^error: --layers: expected an integer in \[1, 1024\], got 1000000000$/],
    [initRandom('--seed', '-1'), new RegExp(`^error: --seed: ${SEED}, got -1$`)],
  ];
  for (const [args, message] of cases) {
    it(`${args.slice(0, 3).join(' ')} ... ${args.slice(-2).join(' ').slice(0, 40)}`, () =>
      expect(expectOneLineError(wct(args))).toMatch(message));
  }
});
