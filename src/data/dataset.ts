/**
 * Training data for WCT and the LoRA baselines: one entry point from a data spec to tokenized train and
 * validation examples, the same for every method so their comparison is fair (docs/ARCHITECTURE.md section 6).
 *
 * Formats: 'alpaca' (JSON array or JSON lines of {instruction, input?, output}, instruct.ts),
 * 'jsonl-text' (JSON lines with a `text` field), 'text' (one document a non-empty line) and 'parquet'
 * (a `text` column, else `instruction` / `output` (+ optional `input`) columns read as instructions).
 * `packing` applies to text documents only; instruction examples are always one per record, since
 * their loss mask belongs to the record.
 *
 * Examples left with no loss position (an instruction whose prompt alone fills maxLength, a one-token
 * document) are dropped and counted in `dropped`: they carry no signal, and a micro-batch of them
 * would make the mean cross-entropy undefined.
 *
 * The validation split is drawn after a seeded shuffle of the examples (Rng(shuffleSeed)), so it is
 * the same for the same spec and file and does not follow the file's order (a file sorted by topic or
 * length still gives a representative split). Both splits keep the file's order.
 */
import path from 'node:path';
import { InputError } from '../errors.js';
import { readTextFile } from '../io/json-file.js';
import { readJsonlDocuments } from '../io/text-data.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { Rng } from '../util/rng.js';
import { lossTokenCount, type Example } from './example.js';
import {
  instructionRecord,
  readInstructionRecords,
  tokenizeInstruction,
  type InstructionRecord,
  type PromptTemplate,
} from './instruct.js';

export type { Example } from './example.js';
import { documentExamples, packDocuments, readParquetTable, textFileDocuments } from './text.js';

export interface DataSpec {
  /** A file of the given format. */
  path: string;
  format: 'alpaca' | 'jsonl-text' | 'text' | 'parquet';
  /** Prompt template of instruction data ('alpaca' format, or parquet with instruction columns). */
  template: PromptTemplate;
  /** Tokens per example (per block when packing), >= 2. */
  maxLength: number;
  /** fraction: ceil(fraction * examples) go to validation (HF train_test_split's rounding); count: exactly that many. */
  validation: { fraction: number } | { count: number };
  shuffleSeed: number;
  /** Text documents only: concatenate and cut into blocks of maxLength instead of one example per document. */
  packing: boolean;
}

export interface Dataset {
  train: Example[];
  validation: Example[];
  /** Examples (instruction records, or documents when not packing) cut to maxLength. */
  truncated: number;
  /** Examples with no loss position left, not included in either split. */
  dropped: number;
  /** The data file, resolved to an absolute path. */
  source: string;
  /** Tokens in train + validation examples. */
  tokens: number;
}

function checkSpec(spec: DataSpec): void {
  if (!Number.isInteger(spec.maxLength) || spec.maxLength < 2)
    throw new RangeError(`data: maxLength must be an integer >= 2, got ${spec.maxLength}`);
  const v = spec.validation;
  if ('count' in v ? !Number.isInteger(v.count) || v.count < 0 : !(v.fraction >= 0)) {
    throw new RangeError(`data: validation must be a count >= 0 or a fraction >= 0, got ${JSON.stringify(v)}`);
  }
}

function instructionExamples(records: InstructionRecord[], spec: DataSpec, tokenizer: TextTokenizer) {
  let truncated = 0;
  const examples = records.map((r) => {
    const t = tokenizeInstruction(r, spec.template, tokenizer, spec.maxLength);
    if (t.truncated) truncated++;
    return t.example;
  });
  return { examples, truncated, count: records.length, unit: 'instruction records' };
}

function textExamples(docs: string[], spec: DataSpec, tokenizer: TextTokenizer) {
  const source = { count: docs.length, unit: 'documents' };
  if (spec.packing) return { examples: packDocuments(docs, tokenizer, spec.maxLength), truncated: 0, ...source };
  return { ...documentExamples(docs, tokenizer, spec.maxLength), ...source };
}

function parquetExamples(file: string, spec: DataSpec, tokenizer: TextTokenizer) {
  const table = readParquetTable(file, (columns) => {
    if (columns.includes('text')) return ['text'];
    if (columns.includes('instruction') && columns.includes('output'))
      return columns.filter((c) => ['instruction', 'input', 'output'].includes(c));
    throw new InputError(
      file,
      'columns',
      `found ${columns.join(', ') || 'none'}; expected a "text" column, or "instruction" and "output" (+ optional "input")`,
    );
  });
  if (!table.columns.includes('text')) {
    return instructionExamples(
      table.rows.map((row, i) => instructionRecord(file, row, `row ${i}`)),
      spec,
      tokenizer,
    );
  }
  const docs = table.rows.map((row, i) => {
    const text = row.text;
    if (typeof text !== 'string')
      throw new InputError(
        file,
        `row ${i}`,
        `"text" is ${text === null ? 'null' : `a ${typeof text}`}, expected a string`,
      );
    return text;
  });
  return textExamples(docs, spec, tokenizer);
}

function tokenizeSource(file: string, spec: DataSpec, tokenizer: TextTokenizer) {
  switch (spec.format) {
    case 'alpaca':
      return instructionExamples(readInstructionRecords(file), spec, tokenizer);
    case 'jsonl-text':
      return textExamples(readJsonlDocuments(file), spec, tokenizer);
    case 'text':
      return textExamples(textFileDocuments(readTextFile(file)), spec, tokenizer);
    case 'parquet':
      return parquetExamples(file, spec, tokenizer);
  }
}

/** Indices 0..n-1 in a Fisher-Yates order drawn from rng. */
export function shuffledIndices(n: number, rng: Rng): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** The seeded split; both parts in the original order. Asking for all examples or more is an InputError. */
export function splitExamples(
  file: string,
  examples: Example[],
  validation: DataSpec['validation'],
  seed: number,
): { train: Example[]; validation: Example[] } {
  const n = examples.length;
  const k = 'count' in validation ? validation.count : Math.ceil(validation.fraction * n);
  if (k > n) throw new InputError(file, 'validation', `${k} examples asked for, larger than the data (${n} examples)`);
  if (k === n)
    throw new InputError(file, 'validation', `takes all ${n} examples: no training examples left after the split`);
  const held = new Set(shuffledIndices(n, new Rng(seed)).slice(0, k));
  return { train: examples.filter((_, i) => !held.has(i)), validation: examples.filter((_, i) => held.has(i)) };
}

/** Reads, tokenizes and splits a data file; every problem with the file is an InputError naming it. */
export function loadDataset(spec: DataSpec, tokenizer: TextTokenizer): Dataset {
  checkSpec(spec);
  const file = spec.path;
  const { examples, truncated, count, unit } = tokenizeSource(file, spec, tokenizer);
  const kept = examples.filter((e) => lossTokenCount(e) > 0);
  if (kept.length === 0) {
    const why =
      count === 0
        ? `the file has no ${unit}`
        : examples.length === 0
          ? `its ${count} ${unit} have fewer tokens than one block of maxLength ${spec.maxLength}`
          : `none of its ${count} ${unit} has a token to train on within maxLength ${spec.maxLength}`;
    throw new InputError(file, 'data', `empty dataset: no examples (${why})`);
  }
  const split = splitExamples(file, kept, spec.validation, spec.shuffleSeed);
  const tokens = kept.reduce((n, e) => n + e.ids.length, 0);
  return { ...split, truncated, dropped: examples.length - kept.length, source: path.resolve(file), tokens };
}
