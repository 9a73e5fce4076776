/**
 * `wct eval --tasks` from dist: the JSON fields per task (n, acc and acc_norm with their stderr, bos) and the
 * model; --bos; perplexity and tasks together; the same evaluation on a packed OWQ checkpoint and with --deltas
 * over it (LAMBADA's perplexity tells the deltas were applied; the figures equal an in-process evaluation); a bad
 * task file and an unknown task as one-line errors.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateTasks } from '../../src/eval/zeroshot/run-tasks.js';
import { checkpointSha256, writeWeakDeltas } from '../../src/io/weak-deltas.js';
import { loadModel } from '../../src/models/load.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { applyWeakDeltas, packedLinearsOf, weakColumnsOf } from '../../src/models/weak-deltas.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { packedTinyStories } from '../helpers/packed.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';
import type { TaskResult } from '../../src/eval/zeroshot/evaluate-task.js';

const STORIES = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-zeroshot-e2e-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * A few LAMBADA-style documents (the OpenAI JSON lines), so that a continuous figure (perplexity) is compared. The
 * TinyStories tokenizer has multi-word tokens ('the '): tok(context + ' home') of the last document is no longer
 * than tok(context), so its continuation is empty, as lm-eval's _encode_pair makes it too.
 */
const LAMBADA = path.join(tmp, 'lambada.jsonl');
fs.writeFileSync(
  LAMBADA,
  [
    'The cat sat on the mat. The dog came and the cat ran away',
    'Sue had a cake. She gave a piece to her friend Tim',
    'They played all day and then they went home',
  ]
    .map((text) => `${JSON.stringify({ text })}\n`)
    .join(''),
);

/** A task's figures as `--json` prints them: the result less its name (the key). */
type TaskJson = Omit<TaskResult, 'task'>;
interface EvalJson {
  tasks: Record<string, TaskJson>;
  bos: boolean;
  model: string;
  ppl?: number;
  peak_rss_mib: number;
}

function evalJson(args: string[]): EvalJson {
  const r = wct(['eval', ...args, '--json'], 60_000);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as EvalJson;
}

const TASKS = ['piqa', 'arc_easy', `lambada=${LAMBADA}`].join(',');

function expectChoiceFields(t: TaskJson, bos: boolean): void {
  expect(t.n).toBe(20);
  expect(t.bos).toBe(bos);
  for (const v of [t.acc, t.acc_norm!]) expect(v >= 0 && v <= 1 && Number.isInteger(v * 20)).toBe(true);
  expect(t.acc_stderr).toBeCloseTo(Math.sqrt((t.acc * (1 - t.acc)) / 19), 12);
  expect(t.acc_norm_stderr).toBeCloseTo(Math.sqrt((t.acc_norm! * (1 - t.acc_norm!)) / 19), 12);
  expect(t.perplexity).toBeUndefined();
}

describe('wct eval --tasks', () => {
  let fp: EvalJson;
  beforeAll(() => {
    fp = evalJson(['--model', tinyStoriesDir, '--tasks', 'piqa,arc_easy', '--limit', '20']);
  });

  it('--json: per task n, acc, acc_stderr, acc_norm, acc_norm_stderr and bos, and the model', () => {
    expect(Object.keys(fp.tasks)).toEqual(['piqa', 'arc_easy']);
    for (const t of Object.values(fp.tasks)) expectChoiceFields(t, false);
    expect(fp.bos).toBe(false);
    expect(fp.model).toBe(tinyStoriesDir);
    expect(fp.ppl).toBeUndefined();
  });

  it('--bos encodes with BOS; --data adds the perplexity beside the tasks', () => {
    const bos = evalJson(['--model', tinyStoriesDir, '--tasks', 'piqa', '--limit', '20', '--bos']);
    expect(bos.bos).toBe(true);
    expectChoiceFields(bos.tasks.piqa, true);
    const both = evalJson([
      '--model',
      tinyStoriesDir,
      '--tasks',
      'piqa,arc_easy',
      '--limit',
      '20',
      '--data',
      STORIES,
      '--seqlen',
      '128',
    ]);
    expect(both.ppl).toBeGreaterThan(1);
    const alone = evalJson(['--model', tinyStoriesDir, '--data', STORIES, '--seqlen', '128']);
    expect(both.ppl).toBe(alone.ppl);
    for (const task of ['piqa', 'arc_easy'])
      expect({ ...both.tasks[task], seconds: 0 }).toEqual({ ...fp.tasks[task], seconds: 0 });
  });

  it('a packed OWQ checkpoint, and deltas over it: the same evaluation, as in-process', async () => {
    const packed = await packedTinyStories(path.join(tmp, 'packed'));
    const deltas = path.join(tmp, 'weak_deltas.safetensors');
    const donor = loadModel(packed);
    for (const l of packedLinearsOf(donor).values())
      for (let i = 0; i < l.packed.weak.length; i++) l.packed.weak[i] *= 1.5;
    writeWeakDeltas(deltas, weakColumnsOf(donor), { baseSha256: checkpointSha256(packed), recipeHash: 'x', step: 1 });

    const base = evalJson(['--model', packed, '--tasks', TASKS, '--limit', '20']);
    const tuned = evalJson(['--model', packed, '--deltas', deltas, '--tasks', TASKS, '--limit', '20']);
    expect(tuned.model).toBe(`${packed} + deltas ${deltas}`);
    for (const r of [base, tuned]) {
      expect(Object.keys(r.tasks)).toEqual(['piqa', 'arc_easy', 'lambada']);
      expectChoiceFields(r.tasks.piqa, false);
      expectChoiceFields(r.tasks.arc_easy, false);
      expect(r.tasks.lambada).toMatchObject({ n: 3, bos: false, empty_continuations: 1 });
      expect(r.tasks.lambada.acc_norm).toBeUndefined();
    }
    // the deltas change the model, so the (continuous) perplexity
    expect(tuned.tasks.lambada.perplexity).not.toBe(base.tasks.lambada.perplexity);
    expect(base.tasks.lambada.perplexity).not.toBe(
      evalJson(['--model', tinyStoriesDir, '--tasks', `lambada=${LAMBADA}`]).tasks.lambada.perplexity,
    );

    // the CLI's figures are those of the library on the same model
    const model = loadModel(packed);
    applyWeakDeltas(model, deltas, packed);
    const files = [
      { name: 'piqa', file: path.join(dataDir, 'tasks/piqa/valid.jsonl') },
      { name: 'arc_easy', file: path.join(dataDir, 'tasks/arc/arc_easy_test.jsonl') },
      { name: 'lambada', file: LAMBADA },
    ];
    const own = await evaluateTasks(model, loadTokenizer(packed), files, { bos: false, limit: 20 });
    for (const { task, seconds: _s, ...r } of own)
      expect({ ...tuned.tasks[task], seconds: 0 }).toEqual({ ...r, seconds: 0 });
  }, 60_000);

  it('a bad task file: one line naming the file, the line and the field; exit 1', () => {
    const dir = path.join(tmp, 'tasks');
    fs.mkdirSync(path.join(dir, 'piqa'), { recursive: true });
    const file = path.join(dir, 'piqa/valid.jsonl');
    fs.writeFileSync(
      file,
      `${JSON.stringify({ goal: 'g', sol1: 'a', sol2: 'b' })}\n${JSON.stringify({ goal: 'g', sol1: ['a'], sol2: 'b' })}\n`,
    );
    fs.writeFileSync(path.join(dir, 'piqa/valid-labels.lst'), '0\n1\n');
    const line = expectOneLineError(wct(['eval', '--model', tinyStoriesDir, '--tasks', 'piqa', '--task-dir', dir]));
    expect(line).toContain(`${file}:2: sol1: expected a string, got ["a"]`);
  });

  it('an unknown task: one line naming --tasks', () => {
    const line = expectOneLineError(wct(['eval', '--model', tinyStoriesDir, '--tasks', 'nope']));
    expect(line).toMatch(/--tasks: unknown task "nope": expected piqa, arc_easy, .*lambada/);
  });
});
