/** Loading what a command's --model points at: the model and its tokenizer, with one-line errors. */
import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { InputError } from '../errors.js';
import { resolveModelPath } from '../io/hf-cache.js';
import { loadTokenizer, type TextTokenizer } from '../models/tokenizer.js';
import { isPackedCheckpoint } from '../io/packed-checkpoint.js';
import { loadModel } from '../models/load.js';
import { loadAdapter } from '../models/lora.js';
import { applyWeakDeltas } from '../models/weak-deltas.js';
import type { CausalLM } from '../models/model.js';

/**
 * The model of `dir` (full precision or packed; a Hugging Face id `org/name[@revision]` is its snapshot in the
 * local cache, src/io/hf-cache.ts), with weak-column deltas loaded over it when given, then
 * a PEFT LoRA adapter directory when given (LoRA over a full-precision model, QLoRA over a packed one).
 */
export function loadModelDir(
  dir: string,
  deltas?: string,
  adapter?: string,
): { model: CausalLM; tokenizer: TextTokenizer } {
  const local = resolveModelPath(dir);
  if (!fs.existsSync(local) || !fs.statSync(local).isDirectory()) {
    throw new InputError(
      dir,
      `--model: not a directory (expected a Hugging Face checkpoint directory with config.json)`,
    );
  }
  const resolved = path.resolve(local);
  const model = loadModel(resolved);
  if (deltas !== undefined) {
    if (!isPackedCheckpoint(resolved))
      throw new InputError(dir, '--deltas: weak-column deltas apply to a packed checkpoint only');
    applyWeakDeltas(model, deltas, resolved);
  }
  if (adapter !== undefined) loadAdapter(model, adapter);
  return { model, tokenizer: loadTokenizer(resolved) };
}

/** What --model accepts, for every command that takes one. */
export const MODEL_DESCRIPTION =
  'Hugging Face checkpoint directory, or a Hugging Face id org/name[@revision] in the local cache (never downloaded)';

/** The --model option and the --deltas / --adapter that load over it (`wct eval`, `wct generate`). */
export function addModelOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('model', { type: 'string', demandOption: true, describe: MODEL_DESCRIPTION })
    .option('deltas', {
      type: 'string',
      describe: 'Weak-column deltas (wct-train output) to load over a packed --model',
    })
    .option('adapter', {
      type: 'string',
      describe: 'PEFT LoRA adapter directory to load over --model (full precision or packed)',
    });
}
