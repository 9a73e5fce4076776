/**
 * Input files are regular files (or symbolic links to one), checked before they are opened: a FIFO, a socket or
 * a device in place of a checkpoint, a config or a data file would block a read forever or stream without end.
 * Every reader of a user's file calls checkRegularFile first (readTextFile in ./json-file.ts, the safetensors
 * reader, parquet and recipe files).
 */
import fs from 'node:fs';
import { InputError } from '../errors.js';

/** What `stats` is, in words, for a file that is not a regular one. */
function kindOf(stats: fs.Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a file';
}

/**
 * Throws an InputError unless `file` exists and is a regular file (links followed). Messages name the file as
 * `shown` (default `file`); a missing file is `<shown>: <where>: not found`.
 */
export function checkRegularFile(file: string, shown = file, where = 'file'): void {
  let stats: fs.Stats;
  try {
    stats = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(shown, where, code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? e})`);
  }
  if (!stats.isFile()) throw new InputError(shown, `not a regular file (${kindOf(stats)})`);
}
