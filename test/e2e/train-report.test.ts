/**
 * What wct-train prints: each figure of the final report says what it is (the training data's validation loss on
 * response tokens; the eval text's perplexity, what it measures, and which model each figure is for, the
 * full-precision model's beside the quantized base's), data-set names come from the recipe's paths, --json keeps
 * its fields and adds the new ones, and stderr holds one summary line per phase when it is not a terminal. eval.tasks:
 * a line per task (base -> tuned), summary.json's zeroShot equal to wct eval on the base and with the deltas,
 * metrics.jsonl's zero-shot lines, wct compare's task columns ('-' for a run without tasks), and the recipe's
 * errors (an unknown task when it loads, a bad task file before quantizing).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../src/train/run-recipe.js';
import { expectFinalErrorLine, expectOneLineError, wct } from '../helpers/cli.js';
import { dataDir, repoRoot, tinyStoriesDir } from '../helpers/paths.js';

const TRAIN_CLI = path.join(repoRoot, 'dist/src/cli/wct-train.js');
const ALPACA = path.join(dataDir, 'instruct/alpaca/alpaca-2k.json');
const STORIES = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-train-report-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recipe(name: string, model: string, quantize: boolean, method = 'wct', evalExtra = ''): string {
  const file = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(
    file,
    [
      `model: { path: ${model}${quantize ? `, quantize: { method: owq, wbits: 4, target_rank: 2, calib_tokens: ${CALIB}, nsamples: 8 }` : ''} }`,
      `method: ${method}`,
      ...(method === 'wct' ? [] : ['lora: { rank: 2, alpha: 4, dropout: 0, targets: all }']),
      `data: { path: ${ALPACA}, format: alpaca, template: alpaca, max_length: 128, validation: { count: 4 } }`,
      'train: { steps: 2, micro_batch: 2, grad_accum: 1, optimizer: { lr: 0.003 }, schedule: { kind: constant, warmup_steps: 0 } }',
      `eval: { every: 2, final: [${STORIES}], seqlen: 128${evalExtra} }`,
      `output: { dir: ${path.join(tmp, name)}, save_every: 2, keep: 1 }`,
      'logging: { tensorboard: null, every: 1 }',
    ].join('\n'),
  );
  return file;
}

function trainCli(file: string, json = false) {
  return spawnSync(process.execPath, [TRAIN_CLI, file, ...(json ? ['--json'] : [])], {
    encoding: 'utf8',
    timeout: 300_000,
    cwd: repoRoot,
  });
}

function train(file: string, json = false) {
  const r = trainCli(file, json);
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

  it('eval.tasks: a report line per task, base -> tuned, in summary.json, metrics.jsonl and wct compare', () => {
    // LAMBADA-style lines, named relative to the recipe (tmp); the TinyStories tokenizer gives both a continuation
    fs.writeFileSync(
      path.join(tmp, 'lambada.jsonl'),
      [
        'The cat sat on the mat. The dog came and the cat ran away',
        'Sue had a cake. She gave a piece to her friend Tim',
      ]
        .map((text) => `${JSON.stringify({ text })}\n`)
        .join(''),
    );
    const file = recipe(
      'tasks',
      tinyStoriesDir,
      true,
      'wct',
      ', tasks: [piqa, lambada=lambada.jsonl], tasks_limit: 10',
    );
    const r = train(file);
    const lines = r.stdout.trim().split('\n');
    const bounded = String.raw`\d\.\d{4} -> \d\.\d{4} \(± \d\.\d{4}\)`;
    expect(lines.at(-2)).toMatch(
      new RegExp(
        `^piqa zero-shot \\(10 documents, no BOS\\), quantized base -> tuned: acc ${bounded}, acc_norm ${bounded}$`,
      ),
    );
    expect(lines.at(-1)).toMatch(
      new RegExp(
        `^lambada zero-shot \\(2 documents, no BOS\\), quantized base -> tuned: acc ${bounded}, perplexity ${num} -> ${num}$`,
      ),
    );
    expect(r.stderr).toMatch(/^piqa \(quantized base, no BOS\): 10 documents in .*, acc \d\.\d{4} ± /m);
    expect(r.stderr).toMatch(/^lambada \(tuned, no BOS\): 2 documents in /m);

    const s = JSON.parse(fs.readFileSync(path.join(tmp, 'tasks', 'summary.json'), 'utf8')) as RunSummary;
    const z = s.zeroShot!;
    expect(z).toMatchObject({ bos: false, limit: 10, files: { lambada: path.join(tmp, 'lambada.jsonl') } });
    expect(z.files.piqa).toBe(path.join(dataDir, 'tasks/piqa/valid.jsonl'));
    expect(Object.keys(z.before)).toEqual(['piqa', 'lambada']);
    expect(z.after.piqa).toMatchObject({ n: 10, bos: false });
    expect(z.after.lambada).toMatchObject({ n: 2, empty_continuations: 0 });
    // the base's figures are the packed base's own, as wct eval scores it
    const base = JSON.parse(
      wct([
        'eval',
        '--model',
        path.join(tmp, 'tasks', 'base'),
        '--tasks',
        `piqa,lambada=${path.join(tmp, 'lambada.jsonl')}`,
        '--limit',
        '10',
        '--json',
      ]).stdout,
    ) as { tasks: Record<string, { seconds: number }> };
    for (const t of ['piqa', 'lambada'])
      expect({ ...z.before[t], seconds: 0 }).toEqual({ ...base.tasks[t], seconds: 0 });
    // with the deltas, the tuned figures
    const tuned = JSON.parse(
      wct([
        'eval',
        '--model',
        path.join(tmp, 'tasks', 'base'),
        '--deltas',
        s.artifact.path,
        '--tasks',
        `lambada=${path.join(tmp, 'lambada.jsonl')}`,
        '--json',
      ]).stdout,
    ) as { tasks: Record<string, { perplexity: number }> };
    expect(tuned.tasks.lambada.perplexity).toBe(z.after.lambada.perplexity);

    const metrics = fs
      .readFileSync(path.join(tmp, 'tasks', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; zeroshot?: string; tasks?: Record<string, { acc: number }> });
    const zs = metrics.filter((m) => m.zeroshot !== undefined);
    expect(zs.map((m) => [m.step, m.zeroshot])).toEqual([
      [0, 'base'],
      [2, 'tuned'],
    ]);
    expect(zs[1].tasks?.piqa).toEqual(
      expect.objectContaining({ acc: z.after.piqa.acc, acc_norm: z.after.piqa.acc_norm, n: 10, bos: false }),
    );

    const cmp = wct([
      'compare',
      path.join(tmp, 'tasks'),
      path.join(tmp, 'onthefly'),
      '--out',
      path.join(tmp, 'cmp-tasks'),
    ]);
    expect(cmp.status, cmp.stderr).toBe(0);
    const [header, , withTasks, without] = cmp.stdout.split('\n').map((l) => l.split(' | '));
    const at = header.indexOf('piqa acc (before → after)');
    expect(at).toBeGreaterThan(header.indexOf('val loss (final)'));
    expect(withTasks[at]).toBe(`${z.before.piqa.acc.toFixed(4)} → ${z.after.piqa.acc.toFixed(4)}`);
    expect(without[at]).toBe('-');
    expect(without[header.indexOf('piqa acc_norm (before → after)')]).toBe('-');
  }, 300_000);

  it('eval.tasks errors: an unknown task when the recipe loads, a bad task file before quantizing', () => {
    const unknown = recipe('unknown-task', tinyStoriesDir, true, 'wct', ', tasks: [piqa, nope]');
    expect(expectOneLineError(trainCli(unknown))).toMatch(
      new RegExp(`${unknown.replaceAll('.', '\\.')}:5 eval\\.tasks\\[1\\]: unknown task "nope": expected piqa, `),
    );
    const bad = path.join(tmp, 'bad-lambada.jsonl');
    fs.writeFileSync(bad, '{"text": "two words"}\n{"txt": "a b"}\n');
    const r = trainCli(recipe('bad-task', tinyStoriesDir, true, 'wct', ', tasks: [lambada=bad-lambada.jsonl]'));
    expect(expectFinalErrorLine(r)).toBe(`error: ${bad}:2: text: expected a string, got undefined`);
    expect(r.stderr).not.toMatch(/^quantize:/m);
  });
});
