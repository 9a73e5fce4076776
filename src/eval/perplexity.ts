/**
 * Perplexity with the GPTQ/OWQ protocol (docs/ARCHITECTURE.md section 3): the token stream cut into
 * floor(n / seqlen) non-overlapping chunks (remainder dropped); each chunk's mean next-token NLL;
 * ppl = exp(mean over chunks). All chunks have the same length, so this equals exp of the mean NLL
 * over all seqlen-1 predictions per chunk. NLLs are summed in double. A chunk whose mean NLL is not finite (NaN or
 * infinite logits) is an error naming the chunk, never a NaN perplexity. On the GPU each batch runs in a scope and
 * only its per-token NLLs come back to the host.
 */
import { IGNORE_INDEX, tokenNll } from '../autograd/index.js';
import { hostValues, keep, release, scoped } from '../tensor/device.js';
import type { CausalLM } from '../models/model.js';
import { InputError, OptionError } from '../errors.js';

export interface PerplexityResult {
  ppl: number;
  /** Tokens evaluated (chunks * seqlen). */
  tokens: number;
  chunks: number;
  seqlen: number;
  meanNll: number;
}

export interface PerplexityOptions {
  seqlen: number;
  /** Chunks per forward pass. */
  batchSize?: number;
  /** Called after each batch with the number of chunks done. */
  onProgress?: (done: number, total: number) => void;
  /** What is evaluated, for errors (a data set name or file). */
  label?: string;
}

export async function perplexity(
  model: CausalLM,
  ids: Int32Array,
  { seqlen, batchSize = 4, onProgress, label = 'evaluation' }: PerplexityOptions,
): Promise<PerplexityResult> {
  // a bug in the caller (the CLI checks --batch-size): a batch of 0 chunks would never finish
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new RangeError(`perplexity: batchSize ${batchSize}`);
  const chunks = Math.floor(ids.length / seqlen);
  if (chunks === 0)
    throw new OptionError('seqlen', `the text has ${ids.length} tokens, fewer than one chunk of ${seqlen}`);
  let chunkNllSum = 0;
  for (let first = 0; first < chunks; first += batchSize) {
    const batch = Math.min(batchSize, chunks - first);
    const input = ids.subarray(first * seqlen, (first + batch) * seqlen);
    const onDevice = scoped(() => keep(tokenNll(model.forward(input, { batch }), shiftedTargets(input, seqlen)).nll));
    const nll = await hostValues(onDevice);
    release(onDevice);
    for (let b = 0; b < batch; b++) {
      let s = 0;
      for (let t = 0; t < seqlen - 1; t++) s += nll[b * seqlen + t];
      if (!Number.isFinite(s)) throw nonFiniteChunk(label, first + b, chunks, seqlen, s);
      chunkNllSum += s / (seqlen - 1);
    }
    onProgress?.(first + batch, chunks);
  }
  const meanNll = chunkNllSum / chunks;
  return { ppl: Math.exp(meanNll), tokens: chunks * seqlen, chunks, seqlen, meanNll };
}

function nonFiniteChunk(label: string, chunk: number, chunks: number, seqlen: number, nll: number): InputError {
  return new InputError(
    label,
    `window ${chunk + 1} of ${chunks} (tokens ${chunk * seqlen}..${(chunk + 1) * seqlen - 1})`,
    `the NLL is ${nll} (the model's weights, deltas or adapter give non-finite logits)`,
  );
}

/** targets[t] = input[t + 1] within each chunk; the last position of a chunk predicts nothing. */
export function shiftedTargets(input: Int32Array, seqlen: number): Int32Array {
  const targets = new Int32Array(input.length).fill(IGNORE_INDEX);
  for (let i = 0; i + 1 < input.length; i++) if ((i + 1) % seqlen !== 0) targets[i] = input[i + 1];
  return targets;
}
