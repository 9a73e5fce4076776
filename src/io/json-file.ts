import fs from 'node:fs';
import { InputError } from '../errors.js';
import { checkRegularFile } from './input-file.js';

/** Reads a whole text file; a missing or unreadable file, or one that is not a regular file, is an InputError naming it. */
export function readTextFile(file: string): string {
  checkRegularFile(file);
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(file, 'file', code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? e})`);
  }
}

/** Parses `text` (the contents of `file`) as JSON; a syntax error is an InputError naming the file. */
export function parseJson(file: string, text: string, field = 'file'): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(file, field, `not valid JSON (${(e as Error).message})`);
  }
}

/** Reads `file` and returns its top-level JSON object (an array or scalar is an InputError). */
export function readJsonObject(file: string): Record<string, unknown> {
  const value = parseJson(file, readTextFile(file));
  if (!isObject(value)) throw new InputError(file, 'file', 'expected a JSON object at the top level');
  return value;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
