/**
 * Calibration windows (docs/ARCHITECTURE.md section 4): nsamples windows of seqlen token ids, each cut at a random
 * start from a random document longer than seqlen, with a fixed seed (GPTQ/OWQ's C4 loader). Or the
 * exact windows of a reference run, read from a JSON file ({"windows": [[ids...], ...]}).
 */
import path from 'node:path';
import { InputError } from '../errors.js';
import { isObject, parseJson, readTextFile } from '../io/json-file.js';
import { readJsonlDocuments, sharedDataDir } from '../io/text-data.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { Rng } from '../util/rng.js';

export interface CalibrationOptions {
  nsamples: number;
  seqlen: number;
  seed: number;
}

export interface Calibration {
  /** nsamples windows of seqlen ids. */
  windows: Int32Array[];
  /** Where they came from, for quantization_config.json. */
  source: string;
}

/** The documents of a calibration source: c4 / wikitext2 (shipped files) or a .jsonl / .txt / .raw path. */
function calibrationDocuments(source: string): { file: string; docs: string[] } {
  if (source === 'c4') {
    const file = path.join(sharedDataDir(), 'text/c4/c4-en-sample.jsonl');
    return { file, docs: readJsonlDocuments(file) };
  }
  const file = source === 'wikitext2' ? path.join(sharedDataDir(), 'text/wikitext-2-raw/wiki.test.joined.txt') : source;
  const ext = path.extname(file).toLowerCase();
  if (ext === '.jsonl') return { file, docs: readJsonlDocuments(file) };
  if (ext === '.txt' || ext === '.raw') return { file, docs: [readTextFile(file)] };
  throw new InputError(file, 'calib', 'expected c4, wikitext2, or a path to a .jsonl, .txt or .raw file');
}

/** Uniform integer in [lo, hi] (inclusive, like Python's random.randint). */
function randint(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng.next() * (hi - lo + 1));
}

/**
 * Samples windows from documents longer than seqlen (each document tokenized once, on first draw, which is most
 * of the time); `onProgress` hears of every window drawn.
 */
export function sampleCalibration(
  source: string,
  tokenizer: TextTokenizer,
  { nsamples, seqlen, seed }: CalibrationOptions,
  onProgress?: (done: number, total: number) => void,
): Calibration {
  const { file, docs } = calibrationDocuments(source);
  const encoded = new Map<number, Int32Array>();
  const tokens = (i: number) => {
    let ids = encoded.get(i);
    if (ids === undefined) {
      ids = tokenizer.encode(docs[i]);
      encoded.set(i, ids);
    }
    return ids;
  };
  const longEnough = docs.map((_, i) => i).filter((i) => docs[i].length > seqlen); // cheap prefilter: a token spans >= 1 char
  if (!longEnough.some((i) => tokens(i).length > seqlen)) {
    throw new InputError(
      file,
      'calib',
      `no document has more than ${seqlen} tokens; need nsamples x seqlen = ${nsamples} x ${seqlen}`,
    );
  }
  const rng = new Rng(seed);
  const windows: Int32Array[] = [];
  while (windows.length < nsamples) {
    const ids = tokens(longEnough[randint(rng, 0, longEnough.length - 1)]);
    if (ids.length <= seqlen) continue;
    const start = randint(rng, 0, ids.length - seqlen - 1);
    windows.push(ids.slice(start, start + seqlen));
    onProgress?.(windows.length, nsamples);
  }
  return { windows, source: file };
}

/** Reads exact windows ({"windows": [[ids...], ...]}), checking there are enough of the right length. */
export function readCalibrationTokens(
  file: string,
  { nsamples, seqlen }: CalibrationOptions,
  vocabSize: number,
): Calibration {
  const raw = parseJson(file, readTextFile(file));
  if (!isObject(raw) || !Array.isArray(raw.windows))
    throw new InputError(file, 'windows', 'expected an object with a "windows" array of token-id arrays');
  const all = raw.windows as unknown[];
  if (all.length < nsamples) {
    throw new InputError(file, 'windows', `${all.length} windows, fewer than --nsamples ${nsamples}`);
  }
  const windows = all.slice(0, nsamples).map((w, i) => {
    if (!Array.isArray(w) || w.length < seqlen) {
      throw new InputError(
        file,
        `windows[${i}]`,
        `expected at least --seqlen ${seqlen} token ids, got ${Array.isArray(w) ? w.length : typeof w}`,
      );
    }
    const ids = Int32Array.from(w.slice(0, seqlen) as number[]);
    const bad = ids.findIndex((id, j) => id !== (w as number[])[j] || id < 0 || id >= vocabSize);
    if (bad >= 0) throw new InputError(file, `windows[${i}][${bad}]`, `expected a token id in [0, ${vocabSize})`);
    return ids;
  });
  return { windows, source: file };
}
