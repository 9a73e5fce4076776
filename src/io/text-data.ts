/**
 * Evaluation texts (docs/ARCHITECTURE.md section 3): the named datasets in the shared data directory, or a
 * user's own file.
 *
 * - `wikitext2`: the WikiText-2 raw test rows joined with "\n\n" (wiki.test.joined.txt), tokenized
 *   once as one text.
 * - `c4`: the C4 sample's documents joined with " "; the caller truncates the tokens to
 *   256 x seqlen (GPTQ's C4 protocol).
 * - a `.txt` / `.raw` path: the file's text as is; a `.jsonl` path: each line's `text` field,
 *   joined with " ".
 */
import path from 'node:path';
import { packageRoot } from '../util/package-root.js';
import { InputError } from '../errors.js';
import { isObject, parseJson, readTextFile } from './json-file.js';

export interface EvalText {
  kind: 'wikitext2' | 'c4' | 'file';
  path: string;
  text: string;
}

/** `$WCT_DATA_DIR`, else `../shared/data` beside the package root (where tests and recipes find it). */
export function sharedDataDir(): string {
  return process.env.WCT_DATA_DIR || path.resolve(packageRoot(), '../shared/data');
}

/** The `text` field of every line of a JSON-lines file; a bad line is an InputError naming it. */
export function readJsonlDocuments(file: string): string[] {
  const texts: string[] = [];
  readTextFile(file)
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const record = parseJson(file, line, `line ${i + 1}`);
      if (!isObject(record) || typeof record.text !== 'string') {
        throw new InputError(file, `line ${i + 1}`, 'expected an object with a string "text" field');
      }
      texts.push(record.text);
    });
  return texts;
}

/** The `text` fields of a JSON-lines file joined with " " (GPTQ's C4 evaluation text). */
export function readJsonlText(file: string): string {
  return readJsonlDocuments(file).join(' ');
}

export function loadEvalText(nameOrPath: string): EvalText {
  if (nameOrPath === 'wikitext2') {
    const file = path.join(sharedDataDir(), 'text/wikitext-2-raw/wiki.test.joined.txt');
    return { kind: 'wikitext2', path: file, text: readTextFile(file) };
  }
  if (nameOrPath === 'c4') {
    const file = path.join(sharedDataDir(), 'text/c4/c4-en-sample.jsonl');
    return { kind: 'c4', path: file, text: readJsonlText(file) };
  }
  const ext = path.extname(nameOrPath).toLowerCase();
  if (ext === '.txt' || ext === '.raw') return { kind: 'file', path: nameOrPath, text: readTextFile(nameOrPath) };
  if (ext === '.jsonl') return { kind: 'file', path: nameOrPath, text: readJsonlText(nameOrPath) };
  throw new InputError(nameOrPath, 'data', 'expected wikitext2, c4, or a path to a .txt, .raw or .jsonl file');
}
