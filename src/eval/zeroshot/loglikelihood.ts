/**
 * Log-likelihood requests as lm-evaluation-harness 0.4.x scores a causal model (TemplateLM._encode_pair, HFLM
 * _loglikelihood_tokens):
 *   - a request is (context, continuation); trailing whitespace of the context moves to the continuation;
 *   - whole = tok(context + continuation), ctx = tok(context), cont = whole[len(ctx):] — never tokenized alone, and
 *     even where whole does not begin with ctx (a tokenizer whose tokens span the boundary, as ':▁'): the model is
 *     fed ctx followed by cont, exactly as lm-eval feeds it;
 *   - the input is (ctx + cont)[-(L+1):][:-1] for a context of L positions (cut from the left when longer);
 *     ll = Σ log_softmax at the len(cont) continuation positions, greedy = every argmax is the continuation token.
 * BOS: lm-eval <= 0.4.9.1 (and the OWQ authors' harness) encode without the tokenizer's special tokens, >= 0.4.9.2
 * with them (`bos`). The requests of one question share their context: it runs once into a KV cache, rewound for
 * each continuation, so a question costs one context forward plus its continuations' tokens.
 */
import type { TextTokenizer } from '../../io/tokenizer.js';
import type { KVCache } from '../../models/kv-cache.js';
import type { CausalLM } from '../../models/model.js';
import { hostValues, keep, release, scoped } from '../../tensor/device.js';

export interface EncodedRequest {
  /** tok(context) */
  ctx: Int32Array;
  /** tok(context + continuation)[len(ctx):] */
  cont: Int32Array;
}

export interface Score {
  /** Σ log p(cont_j | everything before it) */
  ll: number;
  /** Every continuation token is the argmax of its position (an empty continuation counts as greedy). */
  greedy: boolean;
}

/** The request's tokens: ctx and cont as lm-eval's _encode_pair forms them. */
export function encodeRequest(
  tokenizer: TextTokenizer,
  context: string,
  continuation: string,
  bos: boolean,
): EncodedRequest {
  const trimmed = context.replace(/\s+$/, '');
  const [c, cont] = [trimmed, context.slice(trimmed.length) + continuation];
  const encode = (s: string) => tokenizer.encode(s, { addSpecialTokens: bos });
  const ctx = encode(c);
  return { ctx, cont: encode(c + cont).slice(ctx.length) };
}

/** Σ_j log_softmax(rows[j])[targets[j]] over rows [n, V] (in double), and whether every argmax is the target. */
function scoreRows(rows: Float32Array | Float64Array, vocab: number, targets: Int32Array): Score {
  let ll = 0;
  let greedy = true;
  for (let j = 0; j < targets.length; j++) {
    const row = rows.subarray(j * vocab, (j + 1) * vocab);
    let [max, arg] = [row[0], 0];
    for (let v = 1; v < vocab; v++) if (row[v] > max) [max, arg] = [row[v], v];
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(row[v] - max);
    ll += row[targets[j]] - max - Math.log(sum);
    greedy &&= arg === targets[j];
  }
  return { ll, greedy };
}

/** Logits [ids.length, V] of a forward over ids appended to the cache (advanced), on the host. */
async function logitsOf(model: CausalLM, ids: Int32Array, cache: KVCache): Promise<Float32Array | Float64Array> {
  const onDevice = scoped(() => keep(model.forward(ids, { batch: 1, cache }).storage));
  const values = await hostValues(onDevice);
  release(onDevice);
  return values;
}

/**
 * Scores continuations `conts` of one context `ctx` (each cont non-empty or scored 0 / greedy) with the model's
 * context of `maxLength` positions; `cache` (of at least maxLength positions) is reused and left rewound.
 */
export async function scoreContinuations(
  model: CausalLM,
  cache: KVCache,
  ctx: Int32Array,
  conts: Int32Array[],
  maxLength: number,
): Promise<Score[]> {
  const vocab = model.config.vocabSize;
  const scores: Score[] = [];
  let prefixRow: Float32Array | Float64Array | null = null; // the logits after ctx: they predict cont[0]
  for (const cont of conts) {
    if (cont.length === 0) {
      scores.push({ ll: 0, greedy: true });
      continue;
    }
    const whole = new Int32Array(ctx.length + cont.length);
    whole.set(ctx);
    whole.set(cont, ctx.length);
    if (whole.length - 1 > maxLength || ctx.length === 0) {
      // cut from the left (or no context to share): one forward of this request alone
      const input = whole.subarray(Math.max(0, whole.length - 1 - maxLength), whole.length - 1);
      cache.truncate(0);
      const logits = await logitsOf(model, input, cache);
      scores.push(scoreRows(logits.subarray((input.length - cont.length) * vocab), vocab, cont));
      cache.truncate(0);
      prefixRow = null;
      continue;
    }
    if (prefixRow === null) {
      cache.truncate(0);
      const logits = await logitsOf(model, ctx, cache);
      prefixRow = logits.slice((ctx.length - 1) * vocab);
    }
    cache.truncate(ctx.length);
    const rows = new Float64Array(cont.length * vocab);
    rows.set(prefixRow);
    if (cont.length > 1) rows.set(await logitsOf(model, cont.subarray(0, cont.length - 1), cache), vocab);
    scores.push(scoreRows(rows, vocab, cont));
  }
  cache.truncate(0);
  return scores;
}
