/**
 * Fuzzing recipe YAML through loadRecipe (fast-check, fixed seeds, bounded runs): a valid recipe with values set to
 * fuzzed ones, keys added or removed, `extends` chains (cycles included), and its text with characters changed.
 * Every case must end in an InputError or OptionError, or in a recipe that satisfies the schema's promises; never
 * another exception or a hang, and no error message quotes a line of the file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { asUserError } from '../../src/errors.js';
import { loadRecipe } from '../../src/recipe/load.js';
import type { Recipe } from '../../src/recipe/schema.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-fuzz-recipe-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A comment no error may echo. */
const SECRET = '# SECRET-c0ffee: nothing of this line may appear in an error';

const BASE = {
  model: { path: 'model', quantize: { method: 'owq', wbits: 3, target_bit: 3.1, nsamples: 16, seed: 0 } },
  method: 'wct',
  data: { path: 'data.json', format: 'alpaca', max_length: 128, validation: { count: 10 }, shuffle_seed: 1 },
  train: {
    steps: 10,
    micro_batch: 2,
    grad_accum: 4,
    seed: 0,
    optimizer: { lr: 1e-3, betas: [0.9, 0.999] },
    schedule: { kind: 'cosine', warmup_steps: 2 },
  },
  eval: { every: 5, final: ['wikitext2'], seqlen: 64 },
  output: { dir: 'out', save_every: 5, keep: 2 },
  logging: { tensorboard: null, every: 1 },
};

/** Every path to a leaf or mapping of BASE, e.g. ['train', 'optimizer', 'lr']. */
function paths(o: unknown, at: string[] = []): string[][] {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return [at];
  return [at, ...Object.entries(o).flatMap(([k, v]) => paths(v, [...at, k]))].filter((p) => p.length > 0);
}
const PATHS = paths(BASE);

const value = fc.oneof(
  fc.integer({ min: -3, max: 100 }),
  fc.constantFrom(0, -1, 0.5, 1.5, 1e9, 2 ** 32, 2 ** 53, 1e300, Number.NaN, Infinity, -Infinity, -0),
  fc.double(),
  fc.string({ maxLength: 12 }),
  fc.constantFrom('wct', 'lora', 'qlora', 'owq', 'rtn', 'gptq', 'alpaca', 'text', 'c4', 'wikitext2', 'cosine', ''),
  fc.constantFrom(null, true, false, [], {}, [1, 2, 3], { x: 1 }, ['a', 'b']),
  fc.constant(undefined),
);

type Change = { path: string[]; key: string | null; value: unknown };
const change = fc.record({
  path: fc.constantFrom(...PATHS),
  key: fc.option(
    fc.constantFrom('target_rank', 'epochs', 'warmup_ratio', 'fraction', 'lora', 'extends', 'bogus', '__proto__'),
  ),
  value,
});

function apply(changes: Change[]): Record<string, unknown> {
  const recipe = structuredClone(BASE) as Record<string, unknown>;
  for (const c of changes) {
    const at = c.key === null ? c.path : [...c.path.slice(0, -1), c.key];
    let o = recipe as Record<string, unknown>;
    for (const k of at.slice(0, -1)) {
      if (typeof o[k] !== 'object' || o[k] === null || Array.isArray(o[k])) o[k] = {};
      o = o[k] as Record<string, unknown>;
    }
    const last = at[at.length - 1];
    if (c.value === undefined) delete o[last];
    else Object.defineProperty(o, last, { value: c.value, enumerable: true, writable: true, configurable: true });
  }
  return recipe;
}

let counter = 0;
function write(text: string): string {
  const file = path.join(tmp, `r${counter++}.yaml`);
  fs.writeFileSync(file, text);
  return file;
}

/** What a loaded recipe promises. */
function expectValid(r: Recipe): void {
  const ints = [r.train.micro_batch, r.train.grad_accum, r.data.max_length, r.output.keep, r.output.save_every];
  for (const n of ints) expect(Number.isInteger(n) && n >= 1).toBe(true);
  for (const seed of [r.train.seed, r.data.shuffle_seed, r.model.quantize?.seed ?? 0])
    expect(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32).toBe(true);
  expect(r.train.steps !== undefined || r.train.epochs !== undefined).toBe(true);
  expect(r.train.optimizer.lr > 0 && Number.isFinite(r.train.optimizer.lr)).toBe(true);
  for (const p of [r.model.path, r.data.path, r.output.dir]) expect(path.isAbsolute(p)).toBe(true);
  if (r.model.quantize !== undefined) {
    const q = r.model.quantize;
    expect(q.target_bit === undefined || q.target_rank === undefined).toBe(true);
    expect(Number.isInteger(q.nsamples) && q.nsamples >= 1 && q.nsamples <= 65536).toBe(true);
  }
}

/** loadRecipe(file) ends in a user error whose message quotes no line of the file, or in a valid recipe. */
function cleanOutcome(file: string): boolean {
  try {
    expectValid(loadRecipe(file).recipe);
  } catch (e) {
    const user = asUserError(e);
    if (user === null) throw e;
    expect(user.message).not.toContain('SECRET');
    expect(user.message.split('\n')).toHaveLength(1);
  }
  return true;
}

describe('fuzzed recipes', () => {
  it('the base recipe loads', () => {
    expect(cleanOutcome(write(`${SECRET}\n${stringify(BASE)}`))).toBe(true);
    expect(loadRecipe(write(stringify(BASE))).recipe.train.steps).toBe(10);
  });

  it('values changed, keys added or removed: a user error or a valid recipe', () => {
    fc.assert(
      fc.property(fc.array(change, { minLength: 1, maxLength: 4 }), (changes) =>
        cleanOutcome(write(`${SECRET}\n${stringify(apply(changes))}`)),
      ),
      { seed: 42, numRuns: 500 },
    );
  });

  it('extends chains, cycles and missing bases included', () => {
    const base = write(stringify({ train: { steps: 3 }, output: { dir: 'base-out' } }));
    const target = fc.constantFrom(base, 'self', 'missing.yaml', '', 'r0.yaml', '../', 5);
    fc.assert(
      fc.property(target, fc.array(change, { maxLength: 2 }), (ext, changes) => {
        const file = path.join(tmp, `r${counter++}.yaml`);
        const recipe = { ...apply(changes), extends: ext === 'self' ? path.basename(file) : ext };
        fs.writeFileSync(file, `${SECRET}\n${stringify(recipe)}`);
        return cleanOutcome(file);
      }),
      { seed: 5, numRuns: 150 },
    );
  });

  it('text with characters changed: a user error or a valid recipe', () => {
    const text = `${SECRET}\n${stringify(BASE)}`;
    const edit = fc.array(
      fc.tuple(
        fc.nat(text.length),
        fc.nat(4),
        fc.constantFrom(
          '',
          ':',
          '-',
          ' ',
          '  ',
          '\n',
          '\t',
          '[',
          ']',
          '{',
          '}',
          '"',
          "'",
          '&a',
          '*a',
          '!!str ',
          '#',
          '%',
          '@',
          '\u0000',
          '1e9',
        ),
      ),
      { minLength: 1, maxLength: 4 },
    );
    fc.assert(
      fc.property(edit, (edits) => {
        let t = text;
        for (const [at, del, insert] of edits) t = t.slice(0, at) + insert + t.slice(at + del);
        return cleanOutcome(write(t));
      }),
      { seed: 99, numRuns: 500 },
    );
  });
});
