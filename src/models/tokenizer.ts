/**
 * The tokenizer of a model directory, read with the conventions its family gives GPT-2 style files, and checked
 * against config.json's vocab_size when the directory has one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { bpeConventions, readConfig } from './families/registry.js';

export type { TextTokenizer } from '../io/tokenizer.js';

/** Loads `<dir>`'s tokenizer; missing or malformed files are InputErrors naming them. */
export function loadTokenizer(dir: string): TextTokenizer {
  const configFile = path.join(dir, 'config.json');
  const vocab = fs.existsSync(configFile) ? { size: readConfig(dir).vocabSize, file: configFile } : undefined;
  return readTokenizer(dir, bpeConventions, vocab);
}
