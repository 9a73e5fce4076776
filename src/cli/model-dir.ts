/** Loading what a command's --model points at: the model and its tokenizer, with one-line errors. */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../io/errors.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { loadModel } from '../models/load.js';
import type { CausalLM } from '../models/model.js';

export function loadModelDir(dir: string): { model: CausalLM; tokenizer: TextTokenizer } {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new InputError(dir, `--model: not a directory (expected a Hugging Face checkpoint directory with config.json)`);
  }
  const resolved = path.resolve(dir);
  return { model: loadModel(resolved), tokenizer: loadTokenizer(resolved) };
}
