/**
 * Causal-LM data: documents from a plain text file (one document a non-empty line, as the HF
 * `datasets` "text" builder reads it), a JSON-lines file's `text` fields, or a parquet file's columns.
 *
 * Each document is encoded with the tokenizer's normal special tokens (BOS for Llama) and EOS appended,
 * so packed documents stay separated. Packing (HF run_clm's `group_texts`): the documents' ids are
 * concatenated and cut into blocks of exactly maxLength; the remainder shorter than a block is dropped,
 * so no block needs padding. Without packing: one example per document, cut to maxLength.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { parquetMetadata, parquetSchema } from 'hyparquet';
import { InputError } from '../errors.js';
import { checkRegularFile } from '../io/input-file.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { causalExample, type Example } from './example.js';

/** Non-empty lines of a text file: the HF "text" builder's documents, blank lines skipped. */
export function textFileDocuments(text: string): string[] {
  return text.split(/\r?\n/).filter((line) => line.trim() !== '');
}

function encodeDocument(doc: string, tokenizer: TextTokenizer): Int32Array {
  const ids = tokenizer.encode(doc);
  if (tokenizer.eosTokenId === null) return ids;
  const withEos = new Int32Array(ids.length + 1);
  withEos.set(ids);
  withEos[ids.length] = tokenizer.eosTokenId;
  return withEos;
}

/** Documents concatenated and cut into blocks of maxLength tokens, every target valid but each block's last. */
export function packDocuments(docs: string[], tokenizer: TextTokenizer, maxLength: number): Example[] {
  const encoded = docs.map((d) => encodeDocument(d, tokenizer));
  const total = encoded.reduce((n, ids) => n + ids.length, 0);
  const all = new Int32Array(total);
  let offset = 0;
  for (const ids of encoded) {
    all.set(ids, offset);
    offset += ids.length;
  }
  const blocks: Example[] = [];
  for (let start = 0; start + maxLength <= total; start += maxLength) {
    blocks.push(causalExample(all.slice(start, start + maxLength), 1));
  }
  return blocks;
}

/** One example per document, cut to maxLength; `truncated` counts the documents that were cut. */
export function documentExamples(
  docs: string[],
  tokenizer: TextTokenizer,
  maxLength: number,
): { examples: Example[]; truncated: number } {
  let truncated = 0;
  const examples = docs.map((doc) => {
    const ids = encodeDocument(doc, tokenizer);
    if (ids.length > maxLength) truncated++;
    return causalExample(ids.slice(0, maxLength), 1);
  });
  return { examples, truncated };
}

/** Top-level column names and rows of a parquet file. */
export interface ParquetTable {
  columns: string[];
  rows: Record<string, unknown>[];
}

/**
 * Reads `columns` of a parquet file, synchronously. hyparquet's row reader is async only, so it runs
 * in a worker thread while this thread waits on a shared flag (Atomics.wait), the pattern Node
 * documents for receiveMessageOnPort; the file's footer is checked here first, so a file that is not
 * parquet or lacks the columns fails with a plain InputError before any worker starts.
 */
export function readParquetTable(file: string, wanted: (columns: string[]) => string[]): ParquetTable {
  let bytes: Buffer;
  checkRegularFile(file);
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(file, 'file', code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? e})`);
  }
  const magic = (at: number) => bytes.length >= 8 && bytes.toString('latin1', at, at + 4) === 'PAR1';
  if (!magic(0) || !magic(bytes.length - 4)) {
    throw new InputError(
      file,
      'file',
      'not a parquet file (no "PAR1" magic at its start and end); expected format parquet',
    );
  }
  // a fresh ArrayBuffer of exactly the file (a Buffer may sit in a shared pool), transferred to the reader
  const buffer = new Uint8Array(bytes).buffer;
  let columns: string[];
  try {
    columns = parquetSchema(parquetMetadata(buffer)).children.map((c) => c.element.name);
  } catch (e) {
    throw new InputError(file, 'file', `unreadable parquet footer (${(e as Error).message})`);
  }
  const read = wanted(columns);
  const reply = runParquetWorker(buffer, read) as { rows?: Record<string, unknown>[]; error?: string };
  if (reply.error !== undefined || reply.rows === undefined) {
    throw new InputError(
      file,
      'file',
      `cannot read parquet columns ${read.join(', ')} (${reply.error ?? 'no reply from the reader'})`,
    );
  }
  return { columns, rows: reply.rows };
}

// CommonJS (eval workers are scripts); imports hyparquet by URL, answers once, then raises the flag.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { url, buffer, columns, flag, port } = workerData;
import(url)
  .then((hp) => hp.parquetReadObjects({ file: buffer, columns }))
  .then((rows) => port.postMessage({ rows }), (e) => port.postMessage({ error: String((e && e.message) || e) }))
  .finally(() => { Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); });
`;

/** A bound on the wait, so a reader that died before answering cannot hang the caller forever. */
const PARQUET_TIMEOUT_MS = 10 * 60 * 1000;

function runParquetWorker(buffer: ArrayBuffer, columns: string[]): unknown {
  const url = pathToFileURL(createRequire(import.meta.url).resolve('hyparquet')).href;
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { url, buffer, columns, flag, port: port2 },
    transferList: [port2, buffer],
  });
  try {
    if (Atomics.wait(flag, 0, 0, PARQUET_TIMEOUT_MS) === 'timed-out')
      return { error: `no answer within ${PARQUET_TIMEOUT_MS / 1000} s` };
    return receiveMessageOnPort(port1)?.message ?? { error: 'the reader exited without an answer' };
  } finally {
    port1.close();
    void worker.terminate();
  }
}
