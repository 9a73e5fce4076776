/**
 * Temporary files and directories left by processes that died mid-write: `<name>.tmp-<pid>` (an atomic
 * file write, src/util/atomic-write.ts; an atomic directory write, src/io/checkpoint-write.ts, such as
 * `checkpoint-N.tmp-<pid>/`). Removed when their pid is no longer running; a live process's are never touched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { processAlive } from './process-alive.js';

const TEMP = /\.tmp-(\d+)$/;

/**
 * Removes the entries of `dir` that are temporaries of dead processes (only those named `<prefix>.tmp-<pid>`
 * when `prefix` is given); returns their paths.
 */
export function removeStaleTemps(dir: string, prefix?: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return [];
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = TEMP.exec(name);
    if (m === null || (prefix !== undefined && name !== `${prefix}.tmp-${m[1]}`)) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(path.join(dir, name));
  }
  return removed;
}
