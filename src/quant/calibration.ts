/**
 * Calibration windows (docs/ARCHITECTURE.md section 4): nsamples windows of seqlen token ids, each cut at a random
 * start from a random document longer than seqlen, with a fixed seed (GPTQ/OWQ's C4 loader); or AWQ's blocks:
 * the first nsamples documents of at most 512 tokens, in file order, concatenated and cut into seqlen-token blocks
 * (llm-awq's get_calib_dataset, less its dataset shuffle). Or the exact windows of a reference run, read from a
 * JSON file ({"windows": [[ids...], ...]}, or "blocks").
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

/** llm-awq skips documents longer than this many tokens, whatever the block size. */
const AWQ_MAX_DOCUMENT_TOKENS = 512;

/**
 * AWQ's calibration: each document trimmed and tokenized (with the tokenizer's BOS), those longer than 512 tokens
 * or empty skipped, the first `nsamples` kept concatenated and cut into blocks of `seqlen` (the tail dropped).
 */
export function concatenatedCalibration(
  source: string,
  tokenizer: TextTokenizer,
  { nsamples, seqlen }: Omit<CalibrationOptions, 'seed'>,
  onProgress?: (done: number, total: number) => void,
): Calibration {
  const { file, docs } = calibrationDocuments(source);
  const kept: Int32Array[] = [];
  for (const doc of docs) {
    if (kept.length === nsamples) break;
    const ids = tokenizer.encode(doc.trim());
    if (ids.length === 0 || ids.length > AWQ_MAX_DOCUMENT_TOKENS) continue;
    kept.push(ids);
    onProgress?.(kept.length, nsamples);
  }
  const total = kept.reduce((n, ids) => n + ids.length, 0);
  if (kept.length < nsamples || total < seqlen) {
    throw new InputError(
      file,
      'calib',
      `${kept.length} documents of at most ${AWQ_MAX_DOCUMENT_TOKENS} tokens (${total} tokens); need ${nsamples} documents and at least one ${seqlen}-token block`,
    );
  }
  const all = new Int32Array(total);
  let at = 0;
  for (const ids of kept) {
    all.set(ids, at);
    at += ids.length;
  }
  const windows = Array.from({ length: Math.floor(total / seqlen) }, (_, i) => all.slice(i * seqlen, (i + 1) * seqlen));
  return { windows, source: file };
}

/**
 * Reads exact windows ({"windows": [[ids...], ...]}, or "blocks" as the AWQ reference files name them): the first
 * nsamples, or all of them when `nsamples` is null; each must have at least seqlen ids (longer ones are cut).
 */
export function readCalibrationTokens(
  file: string,
  { nsamples, seqlen }: { nsamples: number | null; seqlen: number },
  vocabSize: number,
): Calibration {
  const raw = parseJson(file, readTextFile(file));
  const key = isObject(raw) && !Array.isArray(raw.windows) && Array.isArray(raw.blocks) ? 'blocks' : 'windows';
  if (!isObject(raw) || !Array.isArray(raw[key]))
    throw new InputError(file, 'windows', 'expected an object with a "windows" (or "blocks") array of token-id arrays');
  const all = raw[key] as unknown[];
  if (all.length === 0 || (nsamples !== null && all.length < nsamples)) {
    throw new InputError(file, key, `${all.length} windows, fewer than --nsamples ${nsamples ?? 1}`);
  }
  const windows = all.slice(0, nsamples ?? all.length).map((w, i) => {
    if (!Array.isArray(w) || w.length < seqlen) {
      throw new InputError(
        file,
        `${key}[${i}]`,
        `expected at least --seqlen ${seqlen} token ids, got ${Array.isArray(w) ? w.length : typeof w}`,
      );
    }
    const ids = Int32Array.from(w.slice(0, seqlen) as number[]);
    const bad = ids.findIndex((id, j) => id !== (w as number[])[j] || id < 0 || id >= vocabSize);
    if (bad >= 0) throw new InputError(file, `${key}[${i}][${bad}]`, `expected a token id in [0, ${vocabSize})`);
    return ids;
  });
  return { windows, source: file };
}
