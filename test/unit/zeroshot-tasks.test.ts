/**
 * Zero-shot tasks (src/eval/zeroshot/): LAMBADA's format and scoring on documents written here (the context /
 * continuation split, greedy accuracy and perplexity recomputed from scoreContinuations' log-likelihoods, an empty
 * continuation counted and scored 0), every loader's one-line error on a bad line (file:line and the field),
 * resolveTasks' errors, acc / acc_norm / stderr on hand-made multiple-choice scores, and a run's zero-shot lines in
 * metrics.jsonl (written after the steps, dropped on a resume).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OptionError } from '../../src/errors.js';
import { evaluateTask } from '../../src/eval/zeroshot/evaluate-task.js';
import { encodeRequest, scoreContinuations, type Score } from '../../src/eval/zeroshot/loglikelihood.js';
import { resolveTasks } from '../../src/eval/zeroshot/run-tasks.js';
import { type ChoiceDoc, TASKS } from '../../src/eval/zeroshot/tasks.js';
import type { TextTokenizer } from '../../src/io/tokenizer.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { logZeroShot, RunLog } from '../../src/train/run-log.js';
import { inputErrorMessage } from '../helpers/errors.js';
import { tinyStoriesDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-zeroshot-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, lines: readonly string[]): string {
  const file = path.join(tmp, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}
const jsonl = (name: string, docs: readonly unknown[]) =>
  write(
    name,
    docs.map((d) => (typeof d === 'string' ? d : JSON.stringify(d))),
  );

/** A tokenizer of one token per character but spaces (so ' ' continues nothing: an empty continuation). */
const charTokenizer: TextTokenizer = {
  bosTokenId: 1,
  eosTokenId: 2,
  vocabSize: 2048,
  encode: (text, o) =>
    Int32Array.from([
      ...(o?.addSpecialTokens ? [1] : []),
      ...[...text].filter((c) => c !== ' ').map((c) => 3 + (c.codePointAt(0)! % 2000)),
    ]),
  decode: () => '',
};

describe('LAMBADA', () => {
  const docs = [
    { text: 'Once upon a time there was a little girl named Lily. She liked to play with her dog' },
    { text: 'Tom had a red ball. He threw the ball to his friend and his friend caught the ball' },
    { text: 'The sun was hot and the children went to the park to play in the' },
    { text: 'She said goodbye ' }, // last word '': continuation ' '
  ];
  const file = jsonl('lambada/lambada_test.jsonl', docs);

  it('context: all words but the last joined by spaces; continuation: a space and the last word', () => {
    const loaded = TASKS.lambada.load(file);
    expect(loaded).toEqual([
      {
        context: 'Once upon a time there was a little girl named Lily. She liked to play with her',
        continuation: ' dog',
      },
      {
        context: 'Tom had a red ball. He threw the ball to his friend and his friend caught the',
        continuation: ' ball',
      },
      { context: 'The sun was hot and the children went to the park to play in', continuation: ' the' },
      { context: 'She said goodbye', continuation: ' ' },
    ]);
    expect(TASKS.lambada.load(file, 2)).toHaveLength(2);
  });

  let model: CausalLM | null = null;
  const tinyStories = () => (model ??= loadModel(tinyStoriesDir));

  /** acc and perplexity from scoreContinuations' figures, one document at a time, as the task defines them. */
  async function byHand(tokenizer: TextTokenizer, bos: boolean) {
    const m = tinyStories();
    const cache = m.newCache(m.config.maxPositions);
    const scores: Score[] = [];
    let empty = 0;
    for (const d of TASKS.lambada.load(file) as { context: string; continuation: string }[]) {
      const { ctx, cont } = encodeRequest(tokenizer, d.context, d.continuation, bos);
      if (cont.length === 0) empty += 1;
      scores.push(...(await scoreContinuations(m, cache, ctx, [cont], m.config.maxPositions)));
    }
    cache.dispose();
    const n = scores.length;
    const acc = scores.filter((s) => s.greedy).length / n;
    return { scores, empty, acc, perplexity: Math.exp(-scores.reduce((a, s) => a + s.ll, 0) / n) };
  }

  it('acc = the share of greedy continuations, perplexity = exp(-mean ll); an empty continuation scores 0', async () => {
    const tokenizer = charTokenizer;
    const hand = await byHand(tokenizer, false);
    expect(hand.empty).toBe(1);
    expect(hand.scores[3]).toEqual({ ll: 0, greedy: true });
    for (const s of hand.scores.slice(0, 3)) expect(s.ll).toBeLessThan(0);
    const { result } = await evaluateTask(tinyStories(), tokenizer, TASKS.lambada, TASKS.lambada.load(file), {
      bos: false,
    });
    expect(result).toMatchObject({ task: 'lambada', n: 4, bos: false, empty_continuations: 1 });
    expect(result.acc).toBe(hand.acc);
    expect(result.perplexity).toBeCloseTo(hand.perplexity, 10);
    expect(result.acc_stderr).toBeCloseTo(Math.sqrt((hand.acc * (1 - hand.acc)) / 3), 12);
    expect(result.acc_norm).toBeUndefined();
  });

  it('with the model own tokenizer, and with BOS', async () => {
    const tokenizer = loadTokenizer(tinyStoriesDir);
    for (const bos of [false, true]) {
      const hand = await byHand(tokenizer, bos);
      const { result } = await evaluateTask(tinyStories(), tokenizer, TASKS.lambada, TASKS.lambada.load(file), { bos });
      expect(result.bos).toBe(bos);
      expect(result.empty_continuations).toBe(hand.empty);
      expect(result.acc).toBe(hand.acc);
      expect(result.perplexity).toBeCloseTo(hand.perplexity, 10);
    }
  });

  it('a text of one word is refused', () => {
    const bad = jsonl('lambada/one-word.jsonl', [{ text: 'two words' }, { text: 'alone' }]);
    expect(inputErrorMessage(() => TASKS.lambada.load(bad))).toBe(`${bad}:2: text: expected at least two words`);
  });
});

describe('bad lines: one line naming the file, the line and the field', () => {
  const piqaDoc = { goal: 'Open a jar', sol1: 'Twist the lid.', sol2: 'Hit it.' };

  it('piqa: a missing goal, a non-string sol1, a bad label', () => {
    const noGoal = jsonl('piqa1/valid.jsonl', [piqaDoc, { sol1: 'a', sol2: 'b' }]);
    write('piqa1/valid-labels.lst', ['0', '1']);
    expect(inputErrorMessage(() => TASKS.piqa.load(noGoal))).toBe(
      `${noGoal}:2: goal: expected a string, got undefined`,
    );
    const sol1 = jsonl('piqa2/valid.jsonl', [{ ...piqaDoc, sol1: 3 }]);
    write('piqa2/valid-labels.lst', ['0']);
    expect(inputErrorMessage(() => TASKS.piqa.load(sol1))).toBe(`${sol1}:1: sol1: expected a string, got 3`);
    const label = jsonl('piqa3/valid.jsonl', [piqaDoc, piqaDoc]);
    const labels = write('piqa3/valid-labels.lst', ['1', '2']);
    expect(inputErrorMessage(() => TASKS.piqa.load(label))).toBe(`${labels}:2: label: expected 0 or 1, got "2"`);
    expect(TASKS.piqa.load(label, 1)).toEqual([
      { context: 'Question: Open a jar\nAnswer:', choices: ['Twist the lid.', 'Hit it.'], gold: 1 },
    ]);
  });

  it('arc: answerKey not among the labels', () => {
    const choices = [
      { text: 'red', label: 'A' },
      { text: 'blue', label: 'B' },
    ];
    const file = jsonl('arc/bad.jsonl', [
      { question: { stem: 'Sky?', choices }, answerKey: 'B' },
      { question: { stem: 'Grass?', choices }, answerKey: 'C' },
    ]);
    expect(inputErrorMessage(() => TASKS.arc_easy.load(file))).toBe(
      `${file}:2: answerKey: "C" is not one of the choices' labels`,
    );
    expect(TASKS.arc_challenge.load(file, 1)).toEqual([
      { context: 'Question: Sky?\nAnswer:', choices: ['red', 'blue'], gold: 1 },
    ]);
  });

  it('hellaswag: a label out of range', () => {
    const file = jsonl('hellaswag/bad.jsonl', [{ ctx: 'A man', endings: ['a', 'b', 'c', 'd'], label: 4 }]);
    expect(inputErrorMessage(() => TASKS.hellaswag.load(file))).toBe(
      `${file}:1: label: expected an integer in [0, 4), got 4`,
    );
  });

  it('a line that is not JSON (after an empty line, which is skipped), for every loader', () => {
    for (const name of Object.keys(TASKS)) {
      const file = write(`notjson-${name}/valid.jsonl`, ['', '{"goal": ']);
      write(`notjson-${name}/valid-labels.lst`, ['0']);
      const message = inputErrorMessage(() => TASKS[name].load(file));
      expect(message).toMatch(new RegExp(`^${file.replaceAll('.', '\\.')}:2: line: not JSON \\(.*\\)$`));
      expect(message).not.toContain('\n');
    }
  });
});

describe('resolveTasks', () => {
  it("names each task's shipped file, or the file given after =", () => {
    expect(resolveTasks(['piqa', 'arc_easy', 'lambada=x/l.jsonl'], '/tasks')).toEqual([
      { name: 'piqa', file: '/tasks/piqa/valid.jsonl' },
      { name: 'arc_easy', file: '/tasks/arc/arc_easy_test.jsonl' },
      { name: 'lambada', file: path.resolve('x/l.jsonl') },
    ]);
  });

  it('an unknown task, and lambada without a path, are option errors naming the option', () => {
    const error = (entries: string[]) => {
      try {
        resolveTasks(entries, '/tasks', '--tasks');
      } catch (e) {
        expect(e).toBeInstanceOf(OptionError);
        return (e as Error).message;
      }
      throw new Error('expected an OptionError');
    };
    expect(error(['piqa', 'nope'])).toBe(
      '--tasks: unknown task "nope": expected piqa, arc_easy, arc_challenge, hellaswag, lambada (NAME or NAME=PATH)',
    );
    expect(error(['lambada'])).toBe(
      '--tasks: lambada is not shipped: name its file as lambada=PATH (the OpenAI JSON lines)',
    );
  });
});

describe('acc and acc_norm', () => {
  // charTokenizer drops spaces: 'a a' and 'aa' are the same tokens, so the same log-likelihood
  const docs: ChoiceDoc[] = [
    { context: 'Question: which?\nAnswer:', choices: ['aa', 'aa'], gold: 1 }, // a tie: the first wins both
    { context: 'Question: which?\nAnswer:', choices: ['a a', 'aa'], gold: 0 }, // acc: tie; norm: ll/3 > ll/2
    { context: 'Question: which?\nAnswer:', choices: ['aa', 'a a'], gold: 1 }, // acc: tie (0 wins); norm: choice 1
    { context: 'The cat', choices: ['sat on the mat', 'ran', '𝒜𝒜𝒜 away', 'ate'], gold: 0 },
    { context: 'She', choices: ['smiled', 'went home', '𝒜 𝒜'], gold: 2 },
    { context: 'One day', choices: ['it rained', 'the sun came out'], gold: 1 },
  ];

  /** The index of the first maximum. */
  const first = (v: number[]) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);

  it('acc: argmax ll is the gold (first maximum wins); acc_norm: ll / code points without the leading space', async () => {
    const model = loadModel(tinyStoriesDir);
    const { result, scores } = await evaluateTask(model, charTokenizer, TASKS.piqa, docs, { bos: false });
    const ll = scores.map((doc) => doc.map((s) => s.ll));
    for (const d of [0, 1, 2]) expect(ll[d][0]).toBe(ll[d][1]);
    expect(ll[1][0]).toBeLessThan(0);
    const acc = docs.map((doc, d) => Number(first(ll[d]) === doc.gold));
    const norm = docs.map((doc, d) => Number(first(ll[d].map((l, i) => l / [...doc.choices[i]].length)) === doc.gold));
    expect(acc.slice(0, 3)).toEqual([0, 1, 0]);
    expect(norm.slice(0, 3)).toEqual([0, 1, 1]);
    // '𝒜' is one code point (two UTF-16 units) and one token
    expect([...docs[3].choices[2]].length).toBe(8);
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const n = docs.length;
    expect(result).toMatchObject({ task: 'piqa', n, bos: false });
    expect(result.acc).toBeCloseTo(mean(acc), 12);
    expect(result.acc_norm).toBeCloseTo(mean(norm), 12);
    const stderr = (p: number) => Math.sqrt((p * (1 - p)) / (n - 1));
    expect(result.acc_stderr).toBeCloseTo(stderr(mean(acc)), 12);
    expect(result.acc_norm_stderr).toBeCloseTo(stderr(mean(norm)), 12);
    expect(result.perplexity).toBeUndefined();
  });

  it('one document: the stderr is NaN (n - 1 = 0)', async () => {
    const { result } = await evaluateTask(loadModel(tinyStoriesDir), charTokenizer, TASKS.piqa, docs.slice(0, 1), {
      bos: false,
    });
    expect(result.acc_stderr).toBeNaN();
  });
});

describe("a run's zero-shot lines in metrics.jsonl", () => {
  const figures = {
    n: 2,
    acc: 0.5,
    acc_stderr: Math.sqrt(0.25),
    acc_norm: 1,
    acc_norm_stderr: 0,
    bos: false,
    seconds: 1,
  };
  const lines = (dir: string) =>
    fs
      .readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('after the steps, the base at step 0 and the tuned model at the last step; written once; dropped on resume', () => {
    const dir = path.join(tmp, 'run');
    const log = new RunLog({ dir, tensorboardDir: null });
    log.log(0, { val_loss: 2 });
    log.log(1, { loss: 1.9, lr: 1e-3, grad_norm: 1, tokens_per_s: 10, rss_mib: 1 });
    log.log(2, { loss: 1.8, lr: 1e-3, grad_norm: 1, tokens_per_s: 10, rss_mib: 1 });
    log.close();
    const entries = [
      { step: 0, model: 'base', tasks: { piqa: figures } },
      { step: 2, model: 'tuned', tasks: { piqa: { ...figures, acc: 1, acc_stderr: Number.NaN } } },
    ];
    logZeroShot(dir, path.join(tmp, 'tb'), entries);
    logZeroShot(dir, null, entries); // a run killed after writing them writes them again: still one pair
    const { seconds: _s, ...kept } = figures;
    expect(lines(dir).slice(3)).toEqual([
      { step: 0, zeroshot: 'base', tasks: { piqa: kept } },
      { step: 2, zeroshot: 'tuned', tasks: { piqa: { ...kept, acc: 1, acc_stderr: null } } },
    ]);
    expect(lines(dir)).toHaveLength(5);
    expect(fs.readdirSync(path.join(tmp, 'tb')).length).toBe(1);
    // resuming from step 2 keeps the steps up to 2 and drops the zero-shot lines (the run writes them again)
    new RunLog({ dir, tensorboardDir: null, resumeFromStep: 2 }).close();
    expect(lines(dir).map((l) => l.step)).toEqual([0, 1, 2]);
    expect(lines(dir).some((l) => 'zeroshot' in l)).toBe(false);
  });
});
