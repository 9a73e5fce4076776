/**
 * Perplexity on a named data set or a local file with the GPTQ protocol (docs/ARCHITECTURE.md section 3): the text
 * tokenized once, C4 truncated to 256 chunks, chunks of seqlen (default max_position_embeddings).
 */
import type { TextTokenizer } from '../io/tokenizer.js';
import { loadEvalText } from '../io/text-data.js';
import { checkPositions, type CausalLM } from '../models/model.js';
import { perplexity, type PerplexityResult } from './perplexity.js';
import { OptionError } from '../errors.js';
import { bindingElementsOn } from '../tensor/device.js';
import type { PhaseProgress } from '../util/phases.js';

/** Logit floats per forward pass we allow (64 Mi floats = 256 MiB). */
const LOGIT_BUDGET = 64 * 1024 * 1024;
/** GPTQ's C4 evaluation keeps the first 256 chunks' worth of tokens. */
const C4_CHUNKS = 256;

export interface EvalDataOptions {
  seqlen?: number;
  /** Chunks per forward pass (default: as many as fit LOGIT_BUDGET). */
  batchSize?: number;
  /** Only the first N chunks of the text (after C4's 256-chunk cut); absent: every whole chunk. */
  maxChunks?: number;
  onProgress?: (done: number, total: number) => void;
  /** A phase the caller started (its label names the data set): tokenizing, chunks done, and the perplexity. */
  phase?: PhaseProgress;
}

function anyParameter(model: CausalLM) {
  const first = model.parameters().values().next();
  if (first.done) throw new Error('evaluate: the model has no parameters');
  return first.value;
}

/** Throws an OptionError naming --seqlen when it is not an integer in [2, max_position_embeddings]. */
export function checkSeqlen(model: CausalLM, seqlen: number): void {
  if (!(Number.isInteger(seqlen) && seqlen >= 2)) throw new OptionError('--seqlen', 'expected an integer >= 2');
  checkPositions(model.config, seqlen, '--seqlen', `windows of ${seqlen} tokens`);
}

export async function evaluateData(
  model: CausalLM,
  tokenizer: TextTokenizer,
  data: string,
  o: EvalDataOptions = {},
): Promise<PerplexityResult> {
  const seqlen = o.seqlen ?? model.config.maxPositions;
  checkSeqlen(model, seqlen);
  o.phase?.update(0, 0, 'tokenizing');
  const text = loadEvalText(data);
  let ids = tokenizer.encode(text.text);
  if (text.kind === 'c4') ids = ids.subarray(0, C4_CHUNKS * seqlen);
  if (o.maxChunks !== undefined) ids = ids.subarray(0, o.maxChunks * seqlen);
  const budget = Math.min(LOGIT_BUDGET, bindingElementsOn(anyParameter(model).storage));
  const batchSize = o.batchSize ?? Math.max(1, Math.floor(budget / (seqlen * model.config.vocabSize)));
  const onProgress = (done: number, total: number) => {
    o.onProgress?.(done, total);
    o.phase?.update(done, total, 'chunks');
  };
  const result = await perplexity(model, ids, { seqlen, batchSize, onProgress, label: data });
  o.phase?.end(`${result.chunks} chunks of ${seqlen} tokens`, `perplexity ${result.ppl.toFixed(3)}`);
  return result;
}
