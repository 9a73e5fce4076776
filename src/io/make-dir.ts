/**
 * Creating a directory and its missing parents, one mkdir at a time from the deepest existing ancestor.
 *
 * Not `fs.mkdirSync(dir, { recursive: true })`: Node's recursive mkdir reports a read-only file system
 * (EROFS) as ENOENT, and where mkdir answers ENOENT although the parent exists (procfs: `/proc/x`) it
 * retries forever at 100% CPU. Here each failure is the system's own answer for the one directory that
 * could not be made.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IoError, isErrnoFailure } from '../errors.js';

/** Makes `dir` and its missing parents; an existing directory is left as it is. */
export function makeDir(dir: string): void {
  const missing: string[] = [];
  for (let p = path.resolve(dir); ; p = path.dirname(p)) {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (st?.isDirectory()) break;
    if (st !== undefined) throw new IoError(p, 'create a directory in it', 'not a directory (ENOTDIR)');
    missing.push(p);
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      if (isErrnoFailure(e) && e.code === 'EEXIST' && fs.statSync(d).isDirectory()) continue; // made meanwhile
      if (isErrnoFailure(e) && e.code === 'ENOENT')
        throw new IoError(d, 'create directory', 'this file system does not allow it (ENOENT, the parent exists)');
      throw e;
    }
  }
}
