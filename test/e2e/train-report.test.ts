/**
 * What wct-train prints: each figure of the final report says what it is (the training data's validation loss on
 * response tokens; the eval text's perplexity, what it measures, and which model each figure is for, the
 * full-precision model's beside the quantized base's), data-set names come from the recipe's paths, --json keeps
 * its fields and adds the new ones, and stderr holds one summary line per phase when it is not a terminal.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../src/train/run-recipe.js';
import { wct } from '../helpers/cli.js';
import { dataDir, repoRoot, tinyStoriesDir } from '../helpers/paths.js';

const TRAIN_CLI = path.join(repoRoot, 'dist/src/cli/wct-train.js');
const ALPACA = path.join(dataDir, 'instruct/alpaca/alpaca-2k.json');
const STORIES = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-train-report-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recipe(name: string, model: string, quantize: boolean, method = 'wct'): string {
  const file = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(
    file,
    [
      `model: { path: ${model}${quantize ? `, quantize: { method: owq, wbits: 4, target_rank: 2, calib_tokens: ${CALIB}, nsamples: 8 }` : ''} }`,
      `method: ${method}`,
      ...(method === 'wct' ? [] : ['lora: { rank: 2, alpha: 4, dropout: 0, targets: all }']),
      `data: { path: ${ALPACA}, format: alpaca, template: alpaca, max_length: 128, validation: { count: 4 } }`,
      'train: { steps: 2, micro_batch: 2, grad_accum: 1, optimizer: { lr: 0.003 }, schedule: { kind: constant, warmup_steps: 0 } }',
      `eval: { every: 2, final: [${STORIES}], seqlen: 128 }`,
      `output: { dir: ${path.join(tmp, name)}, save_every: 2, keep: 1 }`,
      'logging: { tensorboard: null, every: 1 }',
    ].join('\n'),
  );
  return file;
}

function train(file: string, json = false) {
  const r = spawnSync(process.execPath, [TRAIN_CLI, file, ...(json ? ['--json'] : [])], {
    encoding: 'utf8',
    timeout: 300_000,
    cwd: repoRoot,
  });
  expect(r.status, r.stderr).toBe(0);
  return r;
}

const num = String.raw`\d+\.\d{3}`;

describe('wct-train report wording', () => {
  it('names the data and the metric of each figure, with the full-precision figure beside the quantized base', () => {
    const r = train(recipe('onthefly', tinyStoriesDir, true));
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^wct \(weak columns\): trained 2 steps of \d+ alpaca-2k examples \(validation 4\)/);
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^alpaca-2k validation loss \(response tokens\): \d+\.\d{4} -> \d+\.\d{4}; with the exported/,
      ),
    );
    const ppl = lines.at(-1)!;
    expect(ppl).toMatch(
      new RegExp(
        `^tinystories-valid-sample perplexity \\(held-out text, not the alpaca-2k training data: measures forgetting\\): ` +
          `full-precision (${num}), quantized base \\(4\\.\\d\\d bits\\) (${num}) -> tuned (${num})$`,
      ),
    );
    // the full-precision figure is the model's own, as wct eval measures it
    const fp = JSON.parse(
      wct(['eval', '--model', tinyStoriesDir, '--data', STORIES, '--seqlen', '128', '--json']).stdout,
    ) as { ppl: number };
    expect(ppl).toContain(`full-precision ${fp.ppl.toFixed(3)},`);
    // stderr is no terminal here: no bars, one summary per phase
    for (const phase of [
      /^quantize: 2 blocks \(owq, 4-bit\) in \d/m,
      /^evaluation tinystories-valid-sample \(quantized base\): \d+ chunks of 128 tokens in .*, perplexity /m,
      /^evaluation tinystories-valid-sample \(full precision\): /m,
      /^train: 2 steps in .*, mean loss \d+\.\d{4}$/m,
      /^validation alpaca-2k \(exported artifact reloaded\): 2 batches in .*, loss \d+\.\d{4}$/m,
      /^evaluation tinystories-valid-sample \(tuned\): /m,
    ])
      expect(r.stderr).toMatch(phase);
    expect(r.stderr).not.toContain('\r');
  }, 300_000);

  it('--json keeps its fields and adds the data name and the full-precision perplexities', () => {
    const r = train(recipe('json', tinyStoriesDir, true), true);
    const s = JSON.parse(r.stdout) as RunSummary;
    expect(Object.keys(s)).toEqual(expect.arrayContaining(['pplBefore', 'ppl', 'pplFullPrecision', 'valLossReloaded']));
    expect(s.data.name).toBe('alpaca-2k');
    expect(Object.keys(s.pplFullPrecision)).toEqual([STORIES]);
    expect(s.pplFullPrecision[STORIES]).toBeLessThan(s.pplBefore[STORIES]); // 4-bit OWQ costs some perplexity
    const cmp = path.join(tmp, 'cmp');
    expect(wct(['compare', path.join(tmp, 'json'), '--out', cmp]).status).toBe(0);
  }, 300_000);

  it('lora over a full-precision base calls the base full precision; a packed base without source says so', () => {
    const lora = train(recipe('lora', tinyStoriesDir, false, 'lora'))
      .stdout.trim()
      .split('\n')
      .at(-1)!;
    expect(lora).toMatch(new RegExp(`: full-precision base (${num}) -> tuned (${num})$`));
    const packed = train(recipe('packed', path.join(tmp, 'onthefly', 'base'), false));
    expect(packed.stdout.trim().split('\n').at(-1)).toMatch(
      new RegExp(`: quantized base \\(4\\.\\d\\d bits\\) ${num} -> tuned ${num}$`),
    );
    expect(packed.stderr).toMatch(/^full-precision perplexity not measured: .* does not name its source$/m);
  }, 300_000);
});
