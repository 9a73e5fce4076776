/**
 * One zero-shot task over a model, scored as lm-evaluation-harness 0.4.x scores it (./loglikelihood.ts):
 *   multiple choice: acc = argmax_i ll_i is the gold (the first maximum wins), acc_norm = argmax_i ll_i / |choice_i|
 *     with |choice| its characters (code points) without the leading space;
 *   LAMBADA: acc = every continuation token greedy, perplexity = exp(-mean over documents of ll);
 *   stderr of a mean of 0/1 outcomes: sqrt(p (1 - p) / (n - 1)) (lm-eval's mean_stderr).
 */
import type { TextTokenizer } from '../../io/tokenizer.js';
import type { CausalLM } from '../../models/model.js';
import { encodeRequest, scoreContinuations, type Score } from './loglikelihood.js';
import type { ChoiceDoc, ContinuationDoc, TaskSpec } from './tasks.js';

export interface TaskResult {
  task: string;
  n: number;
  acc: number;
  acc_stderr: number;
  /** Multiple-choice tasks. */
  acc_norm?: number;
  acc_norm_stderr?: number;
  /** LAMBADA. */
  perplexity?: number;
  /** LAMBADA: continuations that came out empty (scored 0, counted greedy). */
  empty_continuations?: number;
  /** Whether requests were encoded with the tokenizer's BOS. */
  bos: boolean;
  seconds: number;
}

/** Each document's scores, one per choice (LAMBADA: one), in file order. */
export type DocScores = Score[];

export interface TaskRunOptions {
  bos: boolean;
  onProgress?: (done: number, total: number) => void;
}

const stderr = (p: number, n: number): number => (n > 1 ? Math.sqrt((p * (1 - p)) / (n - 1)) : Number.NaN);

/** The index of the first maximum. */
function argmax(v: number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

function choiceMetrics(docs: ChoiceDoc[], scores: DocScores[]) {
  let [acc, norm] = [0, 0];
  docs.forEach((doc, d) => {
    const ll = scores[d].map((s) => s.ll);
    if (argmax(ll) === doc.gold) acc += 1;
    if (argmax(ll.map((l, i) => l / [...doc.choices[i]].length)) === doc.gold) norm += 1;
  });
  const n = docs.length;
  return { acc: acc / n, acc_stderr: stderr(acc / n, n), acc_norm: norm / n, acc_norm_stderr: stderr(norm / n, n) };
}

function continuationMetrics(docs: ContinuationDoc[], scores: DocScores[], empty: number) {
  const n = docs.length;
  const acc = scores.filter(([s]) => s.greedy).length / n;
  const meanLl = scores.reduce((sum, [s]) => sum + s.ll, 0) / n;
  return { acc, acc_stderr: stderr(acc, n), perplexity: Math.exp(-meanLl), empty_continuations: empty };
}

/** Scores `docs` of `task` on the model (its context: config.maxPositions). */
export async function evaluateTask(
  model: CausalLM,
  tokenizer: TextTokenizer,
  task: TaskSpec<ChoiceDoc> | TaskSpec<ContinuationDoc>,
  docs: ChoiceDoc[] | ContinuationDoc[],
  { bos, onProgress }: TaskRunOptions,
): Promise<{ result: TaskResult; scores: DocScores[] }> {
  const started = performance.now();
  const maxLength = model.config.maxPositions;
  const cache = model.newCache(maxLength);
  const scores: DocScores[] = [];
  let empty = 0;
  try {
    for (const [d, doc] of docs.entries()) {
      const continuations = 'choices' in doc ? doc.choices.map((c) => ` ${c}`) : [doc.continuation];
      const requests = continuations.map((c) => encodeRequest(tokenizer, doc.context, c, bos));
      empty += requests.filter((r) => r.cont.length === 0).length;
      // every choice shares the context's tokens
      scores.push(
        await scoreContinuations(
          model,
          cache,
          requests[0].ctx,
          requests.map((r) => r.cont),
          maxLength,
        ),
      );
      onProgress?.(d + 1, docs.length);
    }
  } finally {
    cache.dispose();
  }
  const metrics =
    task.kind === 'choice'
      ? choiceMetrics(docs as ChoiceDoc[], scores)
      : continuationMetrics(docs as ContinuationDoc[], scores, empty);
  const seconds = (performance.now() - started) / 1000;
  return { result: { task: task.name, n: docs.length, ...metrics, bos, seconds }, scores };
}
