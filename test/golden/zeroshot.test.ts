/**
 * Zero-shot scoring against ../shared/data/golden/zeroshot-tinystories-656k.json (an independent PyTorch scorer of
 * lm-evaluation-harness 0.4.x's rules, both BOS settings) on TinyStories-656K: the requests of the first 50 documents
 * of every task and variant token for token (len(ctx_enc) and the continuation ids) with their log-likelihoods within
 * 1e-4 absolute and their greedy flags; every document's acc / acc_norm outcome for PIQA without BOS, and for the
 * first documents of the other runs (the reference gives each document's outcome; `npm run
 * zeroshot:table` runs every task in full in both settings and on the quantized models).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateTask, type DocScores } from '../../src/eval/zeroshot/evaluate-task.js';
import { encodeRequest } from '../../src/eval/zeroshot/loglikelihood.js';
import { defaultTaskDir } from '../../src/eval/zeroshot/run-tasks.js';
import { TASKS, type ChoiceDoc } from '../../src/eval/zeroshot/tasks.js';
import { loadModel } from '../../src/models/load.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

interface RefChoice {
  ll: number;
  is_greedy: boolean;
  context_tokens: number;
  cont_tokens: number[];
}
interface RefRun {
  acc: number;
  acc_norm: number;
  n: number;
  first_50_docs: { doc: number; gold: number; choices: RefChoice[] }[];
  per_doc_correct: { acc: string; acc_norm: string };
}

const golden = JSON.parse(fs.readFileSync(path.join(dataDir, 'golden/zeroshot-tinystories-656k.json'), 'utf8'));
const LL_TOL = 1e-4;
const model = loadModel(tinyStoriesDir);
const tokenizer = loadTokenizer(tinyStoriesDir);
const CHOICE_TASKS = ['piqa', 'arc_easy', 'arc_challenge', 'hellaswag'];
/** Documents whose outcomes are checked per run: all of PIQA without BOS, the first 800 of ARC without BOS, the first
 * 200 otherwise (the suite's budget; `npm run zeroshot:table` checks every count in full). */
const checkedDocs = (task: string, bos: boolean) =>
  bos || task === 'hellaswag' ? 200 : task === 'piqa' ? Number.POSITIVE_INFINITY : 800;

const docsOf = (task: string, limit?: number) =>
  TASKS[task].load(path.join(defaultTaskDir(), TASKS[task].defaultFile!), limit) as ChoiceDoc[];

/** Each document's acc and acc_norm outcome as the reference writes them ('1' = correct). */
function outcomes(docs: ChoiceDoc[], scores: DocScores[]): { acc: string; acc_norm: string } {
  const first = (v: number[]) => v.indexOf(Math.max(...v));
  let [acc, norm] = ['', ''];
  docs.forEach((doc, d) => {
    const ll = scores[d].map((s) => s.ll);
    acc += first(ll) === doc.gold ? '1' : '0';
    norm += first(ll.map((l, i) => l / [...doc.choices[i]].length)) === doc.gold ? '1' : '0';
  });
  return { acc, acc_norm: norm };
}

describe('zero-shot scoring against the reference scorer', () => {
  for (const task of CHOICE_TASKS) {
    for (const bos of [false, true]) {
      const ref: RefRun = golden.fp32[task][bos ? 'bos' : 'nobos'];
      const limit = Math.min(checkedDocs(task, bos), ref.n);
      it(`${task}, ${bos ? 'BOS' : 'no BOS'}: the first 50 documents' requests and log-likelihoods, ${limit === ref.n ? `all ${ref.n}` : `the first ${limit}`} documents' outcomes`, async () => {
        const docs = docsOf(task, limit);
        const { result, scores } = await evaluateTask(model, tokenizer, TASKS[task], docs, { bos });
        for (const { doc, choices } of ref.first_50_docs) {
          choices.forEach((c, j) => {
            const at = `doc ${doc} choice ${j}`;
            const r = encodeRequest(tokenizer, docs[doc].context, ` ${docs[doc].choices[j]}`, bos);
            expect(r.ctx.length, at).toBe(c.context_tokens);
            expect(Array.from(r.cont), at).toEqual(c.cont_tokens);
            expect(Math.abs(scores[doc][j].ll - c.ll), `${at}: ll ${scores[doc][j].ll} vs ${c.ll}`).toBeLessThan(
              LL_TOL,
            );
            expect(scores[doc][j].greedy, at).toBe(c.is_greedy);
          });
        }
        const got = outcomes(docs, scores);
        expect(got.acc).toBe(ref.per_doc_correct.acc.slice(0, limit));
        expect(got.acc_norm).toBe(ref.per_doc_correct.acc_norm.slice(0, limit));
        if (limit === ref.n) {
          expect(result.acc).toBe(ref.acc);
          expect(result.acc_norm).toBe(ref.acc_norm);
        }
      });
    }
  }
});
