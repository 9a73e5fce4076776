/** The tokenizer of a model directory, read with the conventions its family gives GPT-2 style files. */
import { readTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { bpeConventions } from './families/registry.js';

export type { TextTokenizer } from '../io/tokenizer.js';

/** Loads `<dir>`'s tokenizer; missing or malformed files are InputErrors naming them. */
export function loadTokenizer(dir: string): TextTokenizer {
  return readTokenizer(dir, bpeConventions);
}
