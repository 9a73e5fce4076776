import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRecipeModel } from '../../src/recipe/check-model.js';
import { loadRecipe } from '../../src/recipe/load.js';
import { toQuantizeOptions } from '../../src/recipe/quantize-options.js';
import { inputErrorMessage } from '../helpers/errors.js';
import { dataDir, repoRoot } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-recipe-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Writes `text` to `name` under the temp dir and returns its path. */
function write(name: string, text: string): string {
  const file = path.join(tmp, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/** A minimal valid recipe's sections, as YAML lines. */
const MINIMAL = [
  'model:',
  '  path: model',
  'data:',
  '  path: data.json',
  '  format: alpaca',
  'train:',
  '  steps: 10',
  'output:',
  '  dir: out',
];
const minimal = (...extra: string[]) => `${[...MINIMAL, ...extra].join('\n')}\n`;

describe('shipped recipes', () => {
  const shipped = [
    'recipes/alpaca.yaml',
    'recipes/alpaca-rank8.yaml',
    'recipes/opt-tiny.yaml',
    'configs/recipes/opt-125m-alpaca.yaml',
    'configs/recipes/llama-7b-alpaca.yaml',
  ];

  it.each(shipped)('%s validates', (name) => {
    const { recipe, file, hash, raw } = loadRecipe(path.join(repoRoot, name));
    expect(file).toBe(path.join(repoRoot, name));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(raw).not.toHaveProperty('extends');
    expect(recipe.method).toBe('wct');
    expect(
      path.isAbsolute(recipe.model.path) && path.isAbsolute(recipe.data.path) && path.isAbsolute(recipe.output.dir),
    ).toBe(true);
  });

  it('recipes/ name files that exist in the shared data', () => {
    for (const name of ['alpaca.yaml', 'alpaca-rank8.yaml', 'opt-tiny.yaml']) {
      const { recipe } = loadRecipe(path.join(repoRoot, 'recipes', name));
      const files = [recipe.model.path, recipe.data.path, ...recipe.eval.final];
      if (recipe.model.quantize?.calib_tokens !== undefined) files.push(recipe.model.quantize.calib_tokens);
      for (const f of files) expect(fs.existsSync(f), f).toBe(true);
      expect(recipe.output.dir.startsWith(path.join(repoRoot, 'runs'))).toBe(true);
    }
  });

  it('alpaca.yaml: its own values over the defaults', () => {
    const { recipe } = loadRecipe(path.join(repoRoot, 'recipes/alpaca.yaml'));
    expect(recipe.model.path).toBe(path.join(dataDir, 'models/tinystories-656k'));
    expect(recipe.model.quantize).toMatchObject({
      method: 'owq',
      wbits: 3,
      target_bit: 3.1,
      tuning: 'mse',
      nsamples: 128,
      percdamp: 0.01,
    });
    expect(recipe.model.quantize?.target_rank).toBeUndefined();
    expect(recipe.model.quantize?.calib_dtype).toBe('fp32'); // the default
    const bf16 = write(
      'bf16.yaml',
      minimal().replace('  path: model', '  path: model\n  quantize: { calib_dtype: bf16 }'),
    );
    expect(toQuantizeOptions(loadRecipe(bf16).recipe.model.quantize!).calibration.dtype).toBe('bf16');
    expect(recipe.data).toMatchObject({
      format: 'alpaca',
      template: 'alpaca',
      max_length: 256,
      validation: { count: 100 },
    });
    expect(recipe.train).toMatchObject({ steps: 150, micro_batch: 4, grad_accum: 4, max_grad_norm: 0.3, seed: 0 });
    expect(recipe.train.optimizer).toEqual({
      name: 'adamw',
      lr: 1e-2,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weight_decay: 0,
    });
    expect(recipe.train.schedule).toEqual({ kind: 'constant', warmup_ratio: 0.03 });
    expect(recipe.eval).toEqual({
      every: 25,
      final: [path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt')],
    });
    expect(recipe.output).toEqual({ dir: path.join(repoRoot, 'runs/alpaca'), save_every: 25, keep: 2 });
    expect(recipe.logging).toEqual({ tensorboard: path.join(repoRoot, 'runs/alpaca/tb'), every: 10 });
  });

  it('alpaca-rank8.yaml: target_rank replaces the base target_bit', () => {
    const { recipe, hash } = loadRecipe(path.join(repoRoot, 'recipes/alpaca-rank8.yaml'));
    expect(recipe.model.quantize?.target_rank).toBe(8);
    expect(recipe.model.quantize?.target_bit).toBeUndefined();
    expect(recipe.model.quantize?.wbits).toBe(3);
    expect(recipe.output.dir).toBe(path.join(repoRoot, 'runs/alpaca-rank8'));
    expect(hash).not.toBe(loadRecipe(path.join(repoRoot, 'recipes/alpaca.yaml')).hash);
  });

  it('configs/train/wct-defaults.yaml agrees with the schema defaults', () => {
    const defaults = path.join(repoRoot, 'configs/train/wct-defaults.yaml');
    const bare = loadRecipe(write('defaults/bare.yaml', minimal()));
    const extended = loadRecipe(write('defaults/extended.yaml', minimal(`extends: ${defaults}`)));
    expect(extended.recipe).toEqual(bare.recipe);
    expect(extended.hash).toBe(bare.hash);
  });
});

describe('recipe errors', () => {
  it('malformed YAML: the parser error with its line', () => {
    const file = write('bad/malformed.yaml', 'model:\n  path: m\ntrain: [1, 2\nother: 3\n');
    expect(inputErrorMessage(() => loadRecipe(file))).toMatch(
      new RegExp(`^${file}:4: malformed YAML: .+ \\(column \\d+\\)$`),
    );
    const dup = write('bad/duplicate.yaml', minimal('train:', '  steps: 3'));
    expect(inputErrorMessage(() => loadRecipe(dup))).toMatch(
      new RegExp(`^${dup}:10: malformed YAML: Map keys must be unique`),
    );
  });

  it('an empty file or a list is not a recipe', () => {
    expect(inputErrorMessage(() => loadRecipe(write('bad/empty.yaml', '# nothing\n')))).toMatch(
      /empty.yaml:1: \(top level\): the file is empty/,
    );
    expect(inputErrorMessage(() => loadRecipe(write('bad/list.yaml', '- a\n')))).toMatch(
      /list.yaml:1: \(top level\): expected a mapping/,
    );
  });

  it('a missing recipe file', () => {
    const file = path.join(tmp, 'nope.yaml');
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(`${file}: recipe: not found`);
  });

  it('unknown keys: file, line and dotted key', () => {
    const file = write('bad/unknown.yaml', minimal('  lrr: 1e-3'));
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(`${file}:10 output.lrr: unknown key`);
    const nested = write(
      'bad/unknown-nested.yaml',
      minimal('eval:', '  every: 5', '  final: [c4]', 'logging:', '  every: 1', '  tensorbord: tb'),
    );
    expect(inputErrorMessage(() => loadRecipe(nested))).toBe(`${nested}:15 logging.tensorbord: unknown key`);
    const top = write('bad/unknown-top.yaml', minimal('optimizer: { lr: 1 }'));
    expect(inputErrorMessage(() => loadRecipe(top))).toBe(`${top}:10 optimizer: unknown key`);
  });

  it('a misspelt key is reported as unknown, not as the missing one', () => {
    const file = write(
      'bad/misspelt.yaml',
      ['model:', '  pth: m', 'data: { path: d, format: alpaca }', 'train: { steps: 1 }', 'output: { dir: o }'].join(
        '\n',
      ),
    );
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(`${file}:2 model.pth: unknown key`);
  });

  it('wrong types and values: file, line, key and what was expected', () => {
    const lr = write('bad/lr.yaml', minimal().replace('  steps: 10', '  steps: 10\n  optimizer:\n    lr: -2e-4'));
    expect(inputErrorMessage(() => loadRecipe(lr))).toBe(
      `${lr}:9 train.optimizer.lr: expected a positive number, got -0.0002`,
    );
    const str = write('bad/lr-string.yaml', minimal().replace('  steps: 10', '  steps: 10\n  optimizer: { lr: fast }'));
    expect(inputErrorMessage(() => loadRecipe(str))).toBe(
      `${str}:8 train.optimizer.lr: expected a positive number, got "fast"`,
    );
    const steps = write('bad/steps.yaml', minimal().replace('steps: 10', 'steps: 1.5'));
    expect(inputErrorMessage(() => loadRecipe(steps))).toBe(
      `${steps}:7 train.steps: expected a positive integer, got 1.5`,
    );
    const wbits = write(
      'bad/wbits.yaml',
      minimal().replace('  path: model', '  path: model\n  quantize: { wbits: 5 }'),
    );
    expect(inputErrorMessage(() => loadRecipe(wbits))).toBe(
      `${wbits}:3 model.quantize.wbits: expected 2, 3, 4 or 8, got 5`,
    );
    const embedBits = write(
      'bad/embed-bits.yaml',
      minimal().replace('  path: model', '  path: model\n  quantize: { embed_bits: 3 }'),
    );
    expect(inputErrorMessage(() => loadRecipe(embedBits))).toBe(
      `${embedBits}:3 model.quantize.embed_bits: expected 4 or 8, got 3`,
    );
    const calibDtype = write(
      'bad/calib-dtype.yaml',
      minimal().replace('  path: model', '  path: model\n  quantize: { calib_dtype: fp16 }'),
    );
    expect(inputErrorMessage(() => loadRecipe(calibDtype))).toBe(
      `${calibDtype}:3 model.quantize.calib_dtype: expected fp32 or bf16, got "fp16"`,
    );
    const fmt = write('bad/format.yaml', minimal().replace('format: alpaca', 'format: csv'));
    expect(inputErrorMessage(() => loadRecipe(fmt))).toBe(
      `${fmt}:5 data.format: expected alpaca, jsonl-text, text or parquet, got "csv"`,
    );
    const section = write('bad/section.yaml', minimal('eval: 5'));
    expect(inputErrorMessage(() => loadRecipe(section))).toBe(`${section}:10 eval: expected a mapping, got 5`);
    const betas = write(
      'bad/betas.yaml',
      minimal().replace('  steps: 10', '  steps: 10\n  optimizer:\n    betas: [0.9]'),
    );
    expect(inputErrorMessage(() => loadRecipe(betas))).toBe(
      `${betas}:9 train.optimizer.betas: expected a list of two numbers in [0, 1), got a list of 1`,
    );
    const final = write('bad/final.yaml', minimal('eval:', '  final:', '    - c4', '    - 7'));
    expect(inputErrorMessage(() => loadRecipe(final))).toBe(
      `${final}:13 eval.final[1]: expected wikitext2, c4 or a path, got 7`,
    );
  });

  it('quantizer options as wct quantize checks them', () => {
    const q = (lines: string) =>
      write('bad/quant.yaml', minimal().replace('  path: model', `  path: model\n  quantize:\n${lines}`));
    let file = q('    method: owq\n    target_bit: 3.1\n    target_rank: 8');
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(
      `${file}:6 model.quantize.target_rank: target_bit and target_rank exclude each other (set one)`,
    );
    file = q('    method: gptq\n    target_rank: 8');
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(
      `${file}:5 model.quantize.target_rank: applies to method owq only`,
    );
    file = q('    wbits: 4\n    target_bit: 3.5');
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(
      `${file}:5 model.quantize.target_bit: expected at least wbits (4)`,
    );
    file = q('    method: rtn');
    expect(loadRecipe(file).recipe.model.quantize).toMatchObject({
      method: 'rtn',
      wbits: 4,
      tuning: 'minmax',
      calib: 'c4',
      group_size: 0,
    });
    file = q('    method: owq\n    wbits: 3\n    awq_clip: false');
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(
      `${file}:6 model.quantize.awq_clip: applies to method awq only`,
    );
    file = q('    method: awq\n    wbits: 3\n    group_size: 64\n    awq_clip: false');
    expect(toQuantizeOptions(loadRecipe(file).recipe.model.quantize!)).toMatchObject({
      method: 'awq',
      awq: { scale: true, clip: false, grid: 20 },
    });
    file = q('    method: gptq');
    expect(toQuantizeOptions(loadRecipe(file).recipe.model.quantize!).awq).toEqual({
      scale: false,
      clip: false,
      grid: 20,
    });
  });

  it('alpaca-awq-scale.yaml: alpaca.yaml with the AWQ scale search before OWQ', () => {
    const { recipe } = loadRecipe(path.join(repoRoot, 'recipes/alpaca-awq-scale.yaml'));
    expect(toQuantizeOptions(recipe.model.quantize!)).toMatchObject({
      method: 'owq',
      bits: 3,
      budget: { targetBit: 3.1 },
      awq: { scale: true, clip: false },
    });
    expect(recipe.output.dir).toBe(path.join(repoRoot, 'runs/alpaca-awq-scale'));
  });

  it('missing keys: the line of the parent mapping, or 1', () => {
    const data = write('bad/no-data-path.yaml', minimal().replace('  path: data.json\n', ''));
    expect(inputErrorMessage(() => loadRecipe(data))).toBe(`${data}:3 data.path: missing (expected a path)`);
    const output = write('bad/no-output.yaml', minimal().replace('output:\n  dir: out\n', ''));
    expect(inputErrorMessage(() => loadRecipe(output))).toBe(`${output}:1 output: missing (expected a mapping)`);
    const steps = write('bad/no-steps.yaml', minimal().replace('  steps: 10', '  micro_batch: 2'));
    expect(inputErrorMessage(() => loadRecipe(steps))).toBe(`${steps}:6 train.steps: missing (set steps or epochs)`);
    const both = write('bad/both.yaml', minimal().replace('  steps: 10', '  steps: 10\n  epochs: 2'));
    expect(inputErrorMessage(() => loadRecipe(both))).toBe(
      `${both}:8 train.epochs: steps and epochs exclude each other (set one)`,
    );
  });

  it('tensorboard is a directory, null or false', () => {
    const file = write('bad/tb.yaml', minimal('logging:', '  tensorboard: 3'));
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(
      `${file}:11 logging.tensorboard: expected a directory, null or false, got 3`,
    );
  });

  it('__proto__ is an unknown key like any other, and a second document is malformed', () => {
    const file = write('bad/proto.yaml', minimal('train2: 1', '__proto__: { polluted: 1 }'));
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(`${file}:10 train2: unknown key`);
    const proto = write('bad/proto2.yaml', minimal('__proto__: { polluted: 1 }'));
    expect(inputErrorMessage(() => loadRecipe(proto))).toBe(`${proto}:10 __proto__: unknown key`);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const docs = write('bad/docs.yaml', minimal('---', 'a: 1'));
    expect(inputErrorMessage(() => loadRecipe(docs))).toMatch(/docs.yaml:10: malformed YAML: /);
  });

  it('a lora section needs a LoRA method', () => {
    const file = write('bad/lora.yaml', minimal('lora: { rank: 8 }'));
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(
      `${file}:10 lora: applies to method lora or qlora only, not wct`,
    );
  });
});

describe('extends', () => {
  it('deep-merges mappings, replaces lists and scalars, and drops the other member of an exclusive pair', () => {
    write(
      'merge/base.yaml',
      [
        'model:',
        '  path: model',
        '  quantize: { method: owq, wbits: 3, target_bit: 3.1, nsamples: 64 }',
        'data: { path: data.json, format: alpaca, validation: { fraction: 0.1 } }',
        'train:',
        '  epochs: 2',
        '  optimizer: { lr: 1e-3, weight_decay: 0.01 }',
        '  schedule: { kind: cosine, warmup_ratio: 0.1 }',
        'eval: { final: [wikitext2, c4] }',
        'output: { dir: out }',
      ].join('\n'),
    );
    const file = write(
      'merge/child.yaml',
      [
        'extends: base.yaml',
        'model:',
        '  quantize: { target_rank: 4 }',
        'data: { validation: { count: 10 } }',
        'train:',
        '  steps: 20',
        '  optimizer: { lr: 5e-4 }',
        '  schedule: { warmup_steps: 2 }',
        'eval: { final: [c4] }',
      ].join('\n'),
    );
    const { recipe, raw } = loadRecipe(file);
    expect(recipe.model.quantize).toMatchObject({ method: 'owq', wbits: 3, target_rank: 4, nsamples: 64 });
    expect(recipe.model.quantize?.target_bit).toBeUndefined();
    expect(recipe.data.validation).toEqual({ count: 10 });
    expect(recipe.train).toMatchObject({
      steps: 20,
      optimizer: { lr: 5e-4, weight_decay: 0.01 },
      schedule: { kind: 'cosine', warmup_steps: 2 },
    });
    expect(recipe.train.epochs).toBeUndefined();
    expect(recipe.train.schedule.warmup_ratio).toBeUndefined();
    expect(recipe.eval.final).toEqual(['c4']);
    expect(raw).toEqual({
      model: {
        path: path.join(tmp, 'merge/model'),
        quantize: { method: 'owq', wbits: 3, nsamples: 64, target_rank: 4 },
      },
      data: { path: path.join(tmp, 'merge/data.json'), format: 'alpaca', validation: { count: 10 } },
      train: { steps: 20, optimizer: { lr: 5e-4, weight_decay: 0.01 }, schedule: { kind: 'cosine', warmup_steps: 2 } },
      eval: { final: ['c4'] },
      output: { dir: path.join(tmp, 'merge/out') },
    });
  });

  it('both members of a pair in one file is still an error', () => {
    write('pair/base.yaml', minimal());
    const file = write('pair/child.yaml', 'extends: base.yaml\ntrain: { steps: 5, epochs: 1 }\n');
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(
      `${file}:2 train.epochs: steps and epochs exclude each other (set one)`,
    );
  });

  it('chains, and errors name the file that set the key', () => {
    write('chain/a.yaml', minimal().replace('  steps: 10', '  steps: 10\n  optimizer: { lr: 0 }'));
    write('chain/b.yaml', 'extends: a.yaml\neval: { every: 5 }\n');
    const c = write('chain/c.yaml', 'extends: b.yaml\nlogging: { every: 3 }\n');
    expect(inputErrorMessage(() => loadRecipe(c))).toBe(
      `${path.join(tmp, 'chain/a.yaml')}:8 train.optimizer.lr: expected a positive number, got 0`,
    );
    write('chain/ok.yaml', minimal());
    write('chain/mid.yaml', 'extends: ok.yaml\neval: { every: 5 }\nlogging: { bogus: 1 }\n');
    const top = write('chain/top.yaml', 'extends: mid.yaml\nlogging: { every: 3 }\n');
    expect(inputErrorMessage(() => loadRecipe(top))).toBe(
      `${path.join(tmp, 'chain/mid.yaml')}:3 logging.bogus: unknown key`,
    );
    const fixed = write('chain/fixed.yaml', 'extends: ok.yaml\neval: { every: 5 }\nlogging: { every: 3 }\n');
    expect(loadRecipe(fixed).recipe).toMatchObject({ eval: { every: 5 }, logging: { every: 3 }, train: { steps: 10 } });
  });

  it('the relative names of base files in messages', () => {
    write('rel/configs/base.yaml', 'model: { path: m, quantize: { wbits: 5 } }\n');
    const child = write(
      'rel/recipes/child.yaml',
      minimal('extends: ../configs/base.yaml').replace('model:\n  path: model\n', ''),
    );
    const display = path.relative(process.cwd(), child);
    const expected = path.normalize(path.join(path.dirname(display), '../configs/base.yaml'));
    expect(inputErrorMessage(() => loadRecipe(display))).toBe(
      `${expected}:1 model.quantize.wbits: expected 2, 3, 4 or 8, got 5`,
    );
  });

  it('cycles and missing bases', () => {
    write('cycle/a.yaml', 'extends: b.yaml\n');
    write('cycle/b.yaml', 'model: { path: m }\nextends: a.yaml\n');
    const a = path.join(tmp, 'cycle/a.yaml');
    expect(inputErrorMessage(() => loadRecipe(a))).toBe(
      `${path.join(tmp, 'cycle/b.yaml')}:2 extends: cycle: ${a} -> ${path.join(tmp, 'cycle/b.yaml')} -> ${a}`,
    );
    const self = write('cycle/self.yaml', 'extends: ./self.yaml\n');
    expect(inputErrorMessage(() => loadRecipe(self))).toMatch(
      /self.yaml:1 extends: cycle: .*self.yaml -> .*self.yaml$/,
    );
    const missing = write('cycle/missing.yaml', '\nextends: nowhere.yaml\n');
    expect(inputErrorMessage(() => loadRecipe(missing))).toBe(
      `${missing}:2 extends: ${path.join(tmp, 'cycle/nowhere.yaml')} not found`,
    );
    const notPath = write('cycle/number.yaml', 'extends: 3\n');
    expect(inputErrorMessage(() => loadRecipe(notPath))).toBe(`${notPath}:1 extends: expected a path to a base recipe`);
  });
});

describe('paths', () => {
  it('resolve against the directory of the file that set them', () => {
    write(
      'paths/configs/base.yaml',
      [
        'model: { path: ../models/m, quantize: { calib: calib.jsonl, calib_tokens: /abs/tokens.json } }',
        'data: { path: data.json, format: jsonl-text, packing: true }',
        'eval: { final: [wikitext2, c4, eval.txt] }',
        'logging: { tensorboard: tb }',
      ].join('\n'),
    );
    const file = write(
      'paths/recipes/r.yaml',
      'extends: ../configs/base.yaml\ntrain: { steps: 1 }\noutput: { dir: ../runs/r }\n',
    );
    const { recipe } = loadRecipe(file);
    const configs = path.join(tmp, 'paths/configs');
    expect(recipe.model.path).toBe(path.join(tmp, 'paths/models/m'));
    expect(recipe.model.quantize?.calib).toBe(path.join(configs, 'calib.jsonl'));
    expect(recipe.model.quantize?.calib_tokens).toBe('/abs/tokens.json');
    expect(recipe.data).toMatchObject({ path: path.join(configs, 'data.json'), template: 'none', packing: true });
    expect(recipe.eval.final).toEqual(['wikitext2', 'c4', path.join(configs, 'eval.txt')]);
    expect(recipe.logging.tensorboard).toBe(path.join(configs, 'tb'));
    expect(recipe.output.dir).toBe(path.join(tmp, 'paths/runs/r'));
  });

  it('named calibration sets stay names; tensorboard false or null is off', () => {
    const off = loadRecipe(write('paths/off.yaml', minimal('logging: { tensorboard: false }'))).recipe;
    expect(off.logging.tensorboard).toBeNull();
    expect(off.model.quantize).toBeUndefined();
    const named = loadRecipe(
      write('paths/named.yaml', minimal().replace('  path: model', '  path: model\n  quantize: { calib: wikitext2 }')),
    ).recipe;
    expect(named.model.quantize?.calib).toBe('wikitext2');
  });
});

describe('eval.tasks', () => {
  it('alpaca-zeroshot.yaml: alpaca.yaml with shipped tasks, checked when loaded', () => {
    const { recipe, hash } = loadRecipe(path.join(repoRoot, 'recipes/alpaca-zeroshot.yaml'));
    expect(recipe.eval).toMatchObject({ tasks: ['piqa', 'arc_easy', 'arc_challenge', 'hellaswag'], tasks_limit: 500 });
    expect(recipe.eval.tasks_bos).toBeUndefined();
    expect(recipe.eval.final).toEqual([path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt')]);
    for (const f of [
      'piqa/valid.jsonl',
      'arc/arc_easy_test.jsonl',
      'arc/arc_challenge_test.jsonl',
      'hellaswag/hellaswag_val.jsonl',
    ])
      expect(fs.existsSync(path.join(dataDir, 'tasks', f)), f).toBe(true);
    expect(hash).not.toBe(loadRecipe(path.join(repoRoot, 'recipes/alpaca.yaml')).hash);
  });

  it('names, NAME=PATH, limit and bos; the keys left out do not change the hash', () => {
    const file = write(
      'tasks/ok.yaml',
      minimal('eval:', '  tasks: [piqa, lambada=../l.jsonl]', '  tasks_limit: 5', '  tasks_bos: true'),
    );
    const { recipe } = loadRecipe(file);
    // NAME=PATH: PATH resolved against the directory of the recipe file that names it, as the other paths
    const lambada = `lambada=${path.resolve(path.dirname(file), '../l.jsonl')}`;
    expect(recipe.eval).toMatchObject({ tasks: ['piqa', lambada], tasks_limit: 5, tasks_bos: true });
    const bare = loadRecipe(write('tasks/bare.yaml', minimal()));
    expect(Object.keys(bare.recipe.eval).filter((k) => k.startsWith('tasks'))).toEqual([]);
    expect(loadRecipe(write('tasks/empty.yaml', minimal('eval: { tasks: [] }'))).hash).toBe(bare.hash);
    const piqa = loadRecipe(write('tasks/piqa.yaml', minimal('eval: { tasks: [piqa] }'))).hash;
    expect(piqa).not.toBe(bare.hash);
    expect(loadRecipe(write('tasks/bos-false.yaml', minimal('eval: { tasks: [piqa], tasks_bos: false }'))).hash).toBe(
      piqa,
    );
  });

  it('an unknown task, lambada without its file, a repeated task: the one-line field error', () => {
    const err = (name: string, ...lines: string[]) => {
      const file = write(`tasks/${name}.yaml`, minimal(...lines));
      return { file, message: inputErrorMessage(() => loadRecipe(file)) };
    };
    let e = err('unknown', 'eval:', '  tasks:', '    - piqa', '    - nope');
    expect(e.message).toBe(
      `${e.file}:13 eval.tasks[1]: unknown task "nope": expected piqa, arc_easy, arc_challenge, hellaswag or lambada (NAME or NAME=PATH)`,
    );
    e = err('lambada', 'eval: { tasks: [lambada] }');
    expect(e.message).toBe(
      `${e.file}:10 eval.tasks[0]: lambada is not shipped: name its file as lambada=PATH (the OpenAI JSON lines)`,
    );
    e = err('no-path', 'eval: { tasks: [lambada=] }');
    expect(e.message).toBe(`${e.file}:10 eval.tasks[0]: lambada=: expected a path after =`);
    e = err('twice', 'eval: { tasks: [piqa, piqa] }');
    expect(e.message).toBe(`${e.file}:10 eval.tasks[1]: piqa is listed twice`);
    e = err('not-list', 'eval: { tasks: piqa }');
    expect(e.message).toBe(`${e.file}:10 eval.tasks: expected a list of task names, got "piqa"`);
    e = err('limit', 'eval: { tasks: [piqa], tasks_limit: 0 }');
    expect(e.message).toBe(`${e.file}:10 eval.tasks_limit: expected a positive integer, got 0`);
    e = err('bos', 'eval: { tasks: [piqa], tasks_bos: yes please }');
    expect(e.message).toBe(`${e.file}:10 eval.tasks_bos: expected true or false, got "yes please"`);
    e = err('limit-alone', 'eval: { tasks_limit: 5 }');
    expect(e.message).toBe(`${e.file}:10 eval.tasks_limit: applies with eval.tasks only`);
    for (const { message } of [e]) expect(message).not.toContain('\n');
  });
});

describe('hash', () => {
  it('is stable across key order and style, and changes with any value', () => {
    const a = write('hash/a.yaml', minimal('eval: { every: 5, final: [c4] }'));
    const b = write(
      'hash/b.yaml',
      [
        'eval:',
        '  final:',
        '    - c4',
        '  every: 5',
        'output: { dir: out }',
        'train: { steps: 10 }',
        'data: { format: alpaca, path: data.json }',
        'model: { path: model }',
      ].join('\n'),
    );
    const ha = loadRecipe(a).hash;
    expect(loadRecipe(b).hash).toBe(ha);
    expect(loadRecipe(write('hash/c.yaml', minimal('eval: { every: 6, final: [c4] }'))).hash).not.toBe(ha);
    // an explicit default means the same recipe
    expect(loadRecipe(write('hash/d.yaml', minimal('eval: { every: 5, final: [c4] }', 'method: wct'))).hash).toBe(ha);
    // gradient checkpointing changes no result: a run may resume with it switched
    const checkpointed = minimal('eval: { every: 5, final: [c4] }').replace(
      '  steps: 10',
      '  steps: 10\n  gradient_checkpointing: true',
    );
    const e = loadRecipe(write('hash/e.yaml', checkpointed));
    expect(e.recipe.train.gradient_checkpointing).toBe(true);
    expect(e.hash).toBe(ha);
  });

  it('gradient checkpointing refuses LoRA dropout (the recomputed blocks would draw other masks)', () => {
    const lora = (dropout: string) =>
      write(
        `hash/lora-${dropout}.yaml`,
        minimal('method: lora', `lora: { dropout: ${dropout} }`).replace(
          '  steps: 10',
          '  steps: 10\n  gradient_checkpointing: true',
        ),
      );
    const file = lora('0.1');
    expect(inputErrorMessage(() => loadRecipe(file))).toBe(
      `${file}:8 train.gradient_checkpointing: needs lora.dropout 0 (the recomputed blocks would draw other dropout masks), got 0.1`,
    );
    expect(loadRecipe(lora('0')).recipe.train.gradient_checkpointing).toBe(true);
  });
});

describe('the recipe against its base model (at run start)', () => {
  const tiny = path.join(dataDir, 'models/tinystories-656k');
  const opt = path.join(dataDir, 'models/opt-tiny-random');
  const recipeFor = (name: string, model: string, ...extra: string[]) =>
    write(`base/${name}.yaml`, minimal(...extra).replace('  path: model', `  path: ${model}`));

  it('shipped recipes fit their models', () => {
    for (const name of ['alpaca.yaml', 'alpaca-rank8.yaml', 'opt-tiny.yaml'])
      expect(checkRecipeModel(loadRecipe(path.join(repoRoot, 'recipes', name))).maxPositions).toBeGreaterThan(0);
  });

  it('model.path missing or not a checkpoint says so (not "a full-precision checkpoint")', () => {
    const missing = recipeFor('missing', path.join(tmp, 'nope'));
    expect(inputErrorMessage(() => checkRecipeModel(loadRecipe(missing)))).toBe(
      `${missing}:2 model.path: ${path.join(tmp, 'nope')} does not exist`,
    );
    const empty = recipeFor('empty', tmp);
    expect(inputErrorMessage(() => checkRecipeModel(loadRecipe(empty)))).toBe(
      `${empty}:2 model.path: ${tmp} is not a checkpoint directory (it has no config.json)`,
    );
  });

  it('lengths beyond max_position_embeddings are refused, naming the file, line, key and limit', () => {
    const long = write(
      'base/long.yaml',
      minimal()
        .replace('  path: model', `  path: ${tiny}`)
        .replace('  format: alpaca', '  format: alpaca\n  max_length: 1000000'),
    );
    expect(inputErrorMessage(() => checkRecipeModel(loadRecipe(long)))).toBe(
      `${long}:6 data.max_length: 1000000 tokens exceed the model's limit of 512 positions (config.json max_position_embeddings)`,
    );
    const byDefault = recipeFor('default', opt);
    expect(inputErrorMessage(() => checkRecipeModel(loadRecipe(byDefault)))).toBe(
      `${byDefault}:3 data.max_length: 512 tokens exceed the model's limit of 128 positions (config.json max_position_embeddings); 512 is the default: set it`,
    );
    const seqlen = recipeFor('seqlen', tiny, 'eval:', '  seqlen: 1024');
    expect(inputErrorMessage(() => checkRecipeModel(loadRecipe(seqlen)))).toMatch(
      new RegExp(`^${seqlen}:11 eval.seqlen: 1024 tokens exceed the model's limit of 512 positions`),
    );
    const calib = write(
      'base/calib.yaml',
      minimal().replace('  path: model', `  path: ${tiny}\n  quantize:\n    seqlen: 2048`),
    );
    expect(inputErrorMessage(() => checkRecipeModel(loadRecipe(calib)))).toMatch(
      new RegExp(`^${calib}:4 model.quantize.seqlen: 2048 tokens exceed the model's limit of 512 positions`),
    );
  });
});
