/**
 * Inputs are regular files, checked before they are opened: a FIFO (which nothing writes to, so a read of it
 * would block forever), a directory or a device in place of any input file fails at once with one line naming
 * the file and what it is; a symbolic link to a regular file is read.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readParquetTable } from '../../src/data/text.js';
import { checkRegularFile } from '../../src/io/input-file.js';
import { readJsonObject, readTextFile } from '../../src/io/json-file.js';
import { readQuantConfig } from '../../src/io/packed-checkpoint.js';
import { readAdapterConfig } from '../../src/io/peft-adapter.js';
import { loadEvalText } from '../../src/io/text-data.js';
import { readConfig } from '../../src/models/families/registry.js';
import { readCalibrationTokens } from '../../src/quant/calibration.js';
import { loadRecipe } from '../../src/recipe/load.js';
import { inputErrorMessage } from '../helpers/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-input-file-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A directory holding a FIFO named `name`. */
function fifoDir(name: string): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(tmp, 'd'));
  const file = path.join(dir, name);
  execFileSync('mkfifo', [file]);
  return { dir, file };
}

describe('checkRegularFile', () => {
  it('names the kind of what is not a regular file', () => {
    const { file } = fifoDir('x');
    expect(inputErrorMessage(() => checkRegularFile(file))).toBe(`${file}: not a regular file (a FIFO)`);
    expect(inputErrorMessage(() => checkRegularFile(tmp))).toBe(`${tmp}: not a regular file (a directory)`);
    expect(inputErrorMessage(() => checkRegularFile('/dev/null'))).toBe(
      '/dev/null: not a regular file (a character device)',
    );
    expect(inputErrorMessage(() => checkRegularFile(path.join(tmp, 'none')))).toBe(
      `${path.join(tmp, 'none')}: file: not found`,
    );
    expect(inputErrorMessage(() => checkRegularFile(file, 'shown.yaml', 'recipe'))).toBe(
      'shown.yaml: not a regular file (a FIFO)',
    );
  });

  it('follows symbolic links: to a regular file passes, to a FIFO fails', () => {
    const target = path.join(tmp, 'target.txt');
    fs.writeFileSync(target, 'hello');
    const link = path.join(tmp, 'link.txt');
    fs.symlinkSync(target, link);
    expect(() => checkRegularFile(link)).not.toThrow();
    expect(readTextFile(link)).toBe('hello');
    const { file } = fifoDir('fifo');
    const toFifo = path.join(tmp, 'link-to-fifo');
    fs.symlinkSync(file, toFifo);
    expect(inputErrorMessage(() => readTextFile(toFifo))).toBe(`${toFifo}: not a regular file (a FIFO)`);
  });
});

describe('every reader checks first (each of these blocked forever on a FIFO)', () => {
  it('config.json, quantization_config.json, adapter_config.json, JSON files', () => {
    for (const [name, read] of [
      ['config.json', readConfig],
      ['quantization_config.json', readQuantConfig],
      ['adapter_config.json', readAdapterConfig],
    ] as const) {
      const { dir, file } = fifoDir(name);
      expect(inputErrorMessage(() => read(dir))).toBe(`${file}: not a regular file (a FIFO)`);
    }
    const { file } = fifoDir('x.json');
    expect(inputErrorMessage(() => readJsonObject(file))).toBe(`${file}: not a regular file (a FIFO)`);
  });

  it('text data, calibration tokens, parquet data and recipes', () => {
    const txt = fifoDir('data.txt').file;
    expect(inputErrorMessage(() => loadEvalText(txt))).toBe(`${txt}: not a regular file (a FIFO)`);
    const jsonl = fifoDir('data.jsonl').file;
    expect(inputErrorMessage(() => loadEvalText(jsonl))).toBe(`${jsonl}: not a regular file (a FIFO)`);
    const tokens = fifoDir('calib.json').file;
    expect(inputErrorMessage(() => readCalibrationTokens(tokens, { nsamples: 1, seqlen: 2 } as never, 10))).toBe(
      `${tokens}: not a regular file (a FIFO)`,
    );
    const parquet = fifoDir('train.parquet').file;
    expect(inputErrorMessage(() => readParquetTable(parquet, (c) => c))).toBe(
      `${parquet}: not a regular file (a FIFO)`,
    );
    const recipe = fifoDir('recipe.yaml').file;
    expect(inputErrorMessage(() => loadRecipe(recipe))).toMatch(/recipe\.yaml: not a regular file \(a FIFO\)$/);
  });
});
