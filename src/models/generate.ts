/**
 * Autoregressive generation with the KV cache (batch 1): the prompt is run once, then one token per
 * step. temperature 0 is greedy (argmax, lowest id on ties); otherwise softmax(logits / T), restricted
 * to the smallest set of most likely tokens whose mass reaches topP (nucleus sampling), sampled with a
 * seeded RNG.
 *
 * The prompt plus maxNewTokens must fit the model's positions (checked when generate is called, before anything
 * runs); logits that are not finite (NaN or infinite) stop generation with an error naming the token position.
 * Each step runs in a scope on the model's device; only the last position's logits come back to the host.
 */
import { hostValues, keep, kernelsFor, release, scoped } from '../tensor/device.js';
import { allocLike } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import { checkPositions, type CausalLM } from './model.js';
import { InputError, OptionError } from '../errors.js';

export interface GenerateOptions {
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Stop after emitting this id (not when null). */
  eosTokenId?: number | null;
}

/** The tokens generated after `prompt`, one at a time; the lengths are checked now, the model runs as they are taken. */
export function generate(model: CausalLM, prompt: Int32Array, options: GenerateOptions): AsyncGenerator<number> {
  if (prompt.length === 0)
    throw new OptionError('--prompt', 'the prompt has no tokens (give a prompt or keep the BOS token)');
  const n = options.maxNewTokens;
  checkPositions(
    model.config,
    prompt.length + n,
    '--max-new-tokens',
    `the prompt's ${prompt.length} tokens + ${n} new tokens`,
  );
  return steps(model, prompt, options);
}

async function* steps(model: CausalLM, prompt: Int32Array, options: GenerateOptions): AsyncGenerator<number> {
  const { maxNewTokens, temperature = 0, topP = 1, seed = 0, eosTokenId = null } = options;
  const cache = model.newCache(prompt.length + maxNewTokens);
  const rng = new Rng(seed);
  let input = prompt;
  try {
    for (let step = 0; step < maxNewTokens; step++) {
      const last = await lastLogits(model, input, cache);
      checkFinite(last, prompt.length + step);
      const next = temperature === 0 ? argmax(last) : sample(last, temperature, topP, rng);
      yield next;
      if (next === eosTokenId) return;
      input = Int32Array.of(next);
    }
  } finally {
    cache.dispose();
  }
}

/** The logits of the last position of a forward over `input` (appended to the cache), on the host. */
async function lastLogits(model: CausalLM, input: Int32Array, cache: ReturnType<CausalLM['newCache']>) {
  const row = scoped(() => {
    const logits = model.forward(input, { batch: 1, cache });
    const vocab = logits.shape[2];
    const out = keep(allocLike(logits.storage, vocab));
    kernelsFor(out).copy(logits.storage, logits.size - vocab, out, 0, vocab);
    return out;
  });
  const values = await hostValues(row);
  release(row);
  return values;
}

/** Logits predicting the token at `position` (0-based, prompt included) must all be finite. */
function checkFinite(logits: ArrayLike<number>, position: number): void {
  for (let i = 0; i < logits.length; i++) {
    if (!Number.isFinite(logits[i])) {
      throw new InputError(
        'model output',
        `token position ${position}`,
        `logit ${i} is ${logits[i]} (the model's weights, deltas or adapter give non-finite values)`,
      );
    }
  }
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

function sample(logits: ArrayLike<number>, temperature: number, topP: number, rng: Rng): number {
  const max = logits[argmax(logits)];
  const probs = Float64Array.from(logits, (l) => Math.exp((l - max) / temperature));
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  const total = probs.reduce((s, p) => s + p, 0);
  let kept = 0;
  let mass = 0;
  while (kept < order.length && mass < topP * total) mass += probs[order[kept++]];
  let r = rng.next() * mass;
  for (let i = 0; i < kept; i++) {
    r -= probs[order[i]];
    if (r < 0) return order[i];
  }
  return order[kept - 1];
}
