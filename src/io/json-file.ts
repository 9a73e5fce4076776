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
    throw new InputError(file, field, `not valid JSON (${jsonSyntaxProblem(text, (e as Error).message)})`);
  }
}

/**
 * JSON.parse's complaint without the excerpt of the text V8 quotes in some of them (`Unexpected token 'h',
 * "hello wor"... is not valid JSON`), with the line and column where V8 gives a position.
 */
export function jsonSyntaxProblem(text: string, message: string): string {
  const position = /at position (\d+)/.exec(message);
  const said = message.startsWith('Unexpected token')
    ? 'unexpected character'
    : message.replace(/\s*(in JSON )?at position \d+.*$/s, '').replace(/,?\s*(\.\.\.)?".*$/s, '');
  const what = said.charAt(0).toLowerCase() + said.slice(1);
  if (position === null) return what;
  const lines = text.slice(0, Number(position[1])).split('\n');
  return `${what} at line ${lines.length}, column ${lines[lines.length - 1].length + 1}`;
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
