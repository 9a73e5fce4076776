/**
 * An exclusive lock on an output directory: a file holding `{"pid", "command", "started"}`, made with
 * link(2) from a complete temporary file, so it appears whole or not at all and two processes can never
 * both create it. A lock whose pid is no longer running (a run killed by a signal or kill -9) is stale:
 * the next run takes it over and says so. Locks are released by `release()` and, for whatever is still
 * held, when the process exits (process.exit included); a process killed by a signal leaves a stale one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IoError, ioErrorOf, isErrnoFailure, OptionError } from '../errors.js';
import { processAlive } from './process-alive.js';

export interface LockHolder {
  pid: number;
  command: string;
  started: string;
}

export interface DirLock {
  readonly file: string;
  release(): void;
}

const held = new Set<string>();
let exitHookInstalled = false;

/** This process's command line as a user typed it: `wct-train r.yaml`, `wct quantize --out q ...`. */
export function commandLine(): string {
  return [path.basename(process.argv[1] ?? 'node', '.js'), ...process.argv.slice(2)].join(' ');
}

function readHolder(file: string): LockHolder | null {
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockHolder>;
    return typeof h.pid === 'number' ? { pid: h.pid, command: String(h.command), started: String(h.started) } : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw e;
    return null; // not a lock this tool wrote whole: treat as stale
  }
}

function releaseAll(): void {
  for (const file of held) removeIfOurs(file);
}

function removeIfOurs(file: string): void {
  held.delete(file);
  try {
    if (readHolder(file)?.pid === process.pid) fs.unlinkSync(file);
  } catch {
    // already gone
  }
}

/**
 * Takes the lock `file` for `dir` (named as the user wrote it, under `option`), or throws an OptionError
 * naming the live process that holds it. `note` gets the one line about a stale lock taken over.
 */
export function lockDir(file: string, dir: string, option: string, note: (line: string) => void): DirLock {
  const holder: LockHolder = { pid: process.pid, command: commandLine(), started: new Date().toISOString() };
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, `${JSON.stringify(holder)}\n`);
  } catch (e) {
    // the first write in (or beside) the output directory: name the lock, not its temporary
    throw isErrnoFailure(e) ? new IoError(file, 'create the lock file', ioErrorOf(e).reason) : e;
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        fs.linkSync(tmp, file);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw e;
      }
      takeOverIfStale(file, dir, option, note);
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  held.add(file);
  if (!exitHookInstalled) process.on('exit', releaseAll);
  exitHookInstalled = true;
  return { file, release: () => removeIfOurs(file) };
}

/** Moves a stale lock out of the way (by rename: of two processes taking it over, one wins); a live one throws. */
function takeOverIfStale(file: string, dir: string, option: string, note: (line: string) => void): void {
  const current = liveHolder(file);
  if (current !== null) throw inUse(option, dir, current);
  const aside = `${file}.stale-${process.pid}`;
  try {
    fs.renameSync(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // released meanwhile: try again
    throw e;
  }
  const stale = readHolder(aside);
  if (stale !== null && processAlive(stale.pid)) {
    try {
      fs.linkSync(aside, file); // it was taken meanwhile by a live process: put it back
    } finally {
      fs.rmSync(aside, { force: true });
    }
    throw inUse(option, dir, stale);
  }
  fs.rmSync(aside, { force: true });
  note(
    stale === null
      ? `${dir}: taking over an unreadable lock file ${path.basename(file)}`
      : `${dir}: taking over the lock of pid ${stale.pid} (${stale.command}, started ${stale.started}), which is no longer running`,
  );
}

function inUse(option: string, dir: string, h: LockHolder): OptionError {
  return new OptionError(option, `${dir} is in use by pid ${h.pid} (${h.command})`);
}

/** The live holder of the lock `file`, or null when it is free or stale. */
export function liveHolder(file: string): LockHolder | null {
  try {
    const h = readHolder(file);
    return h !== null && processAlive(h.pid) ? h : null;
  } catch {
    return null;
  }
}
