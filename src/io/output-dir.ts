/**
 * Where a command may write an output directory, and claiming it before anything is written.
 *
 * Refused with or without --force: an empty path, the filesystem root, the home directory, the current
 * directory or a parent of it, a path under a file, and a directory that is, contains or is inside one
 * of the command's inputs (model, data files, base model, calibration file, deltas, adapter, runs).
 * Paths are compared after symlinks are resolved.
 *
 * Every output directory carries MARKER_FILE (`{"tool": "owq-wct", "version", "command"}`), so an
 * existing directory can be told apart from the user's own:
 * - `replace` commands (wct quantize, merge, init-random) write the directory atomically beside it and
 *   rename it into place (src/io/checkpoint-write.ts writeDirAtomic, which writes the marker). An absent
 *   or empty directory is written; a non-empty one is replaced only with --force, and only when it carries
 *   the marker (stderr says so).
 *   Their lock is `<dir>.lock` beside the directory, since the directory itself is renamed over.
 * - `update` commands (wct-train's run directory, wct compare) write into the directory in place, again
 *   on a later run: an existing non-empty directory must carry the marker of the same command. Their lock
 *   is `<dir>/LOCK_FILE`.
 * The lock (src/io/dir-lock.ts) keeps two processes out of one directory; temporaries of dead processes
 * there (src/io/stale-temps.ts) are removed once the lock is held.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OptionError } from '../errors.js';
import { packageInfo } from '../util/package-root.js';
import { liveHolder, lockDir } from './dir-lock.js';
import { makeDir } from './make-dir.js';
import { removeStaleTemps } from './stale-temps.js';

export const MARKER_FILE = '.owq-wct.json';
export const LOCK_FILE = '.owq-wct.lock';

export interface OutputMarker {
  tool: 'owq-wct';
  version: string;
  /** The command that wrote the directory: `wct quantize`, `wct-train`. */
  command: string;
}

export interface ClaimOptions {
  /** The option or recipe key that named the directory, for messages: `--out`, `output.dir`. */
  option: string;
  /** The command writing it, as the marker records it. */
  command: string;
  /** The command's input paths; those that do not exist (c4, wikitext2, unset) are skipped. */
  inputs: readonly (string | null | undefined)[];
  mode: 'replace' | 'update';
  /** replace: --force was given. */
  force?: boolean;
  /** One-line notes for the user (stderr). */
  note: (line: string) => void;
}

export interface OutputClaim {
  /** The directory, absolute with symlinks resolved. */
  dir: string;
  /** Releases the lock (a failed command: nothing was replaced). */
  release(): void;
  /** Releases the lock once the output is written, saying so when it replaced a marked directory. */
  finish(): void;
}

/** Writes MARKER_FILE into `dir`. */
export function writeMarker(dir: string, command: string): void {
  const marker: OutputMarker = { tool: 'owq-wct', version: packageInfo().version, command };
  fs.writeFileSync(path.join(dir, MARKER_FILE), `${JSON.stringify(marker)}\n`);
}

/** The marker of `dir`, or null when it has none this tool wrote. */
export function readMarker(dir: string): OutputMarker | null {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, MARKER_FILE), 'utf8')) as Partial<OutputMarker>;
    return m.tool === 'owq-wct' && typeof m.command === 'string' ? (m as OutputMarker) : null;
  } catch {
    return null;
  }
}

/** `p` absolute with symlinks resolved as far as it exists, and the deepest part of it that exists. */
function resolveReal(p: string): { real: string; existing: string } {
  const rest: string[] = [];
  for (let a = path.resolve(p); ; a = path.dirname(a)) {
    try {
      const existing = fs.realpathSync(a);
      return { real: path.join(existing, ...rest.reverse()), existing };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || path.dirname(a) === a) throw e;
      rest.push(path.basename(a));
    }
  }
}

const within = (child: string, parent: string) =>
  child !== parent && (parent === path.sep || child.startsWith(`${parent}${path.sep}`));

/** Checks the refusals that hold with or without --force; returns the directory's real path. */
export function checkOutputPath(dir: string, option: string, inputs: ClaimOptions['inputs']): string {
  if (dir.trim() === '') throw new OptionError(option, 'empty path: name the output directory');
  const { real, existing } = resolveReal(dir);
  const refuse = (why: string) => new OptionError(option, `${dir} ${why}; choose another output directory`);
  if (real === path.parse(real).root) throw refuse('is the filesystem root');
  if (real === resolveReal(os.homedir()).real) throw refuse('is your home directory');
  const cwd = resolveReal(process.cwd()).real;
  if (real === cwd) throw refuse('is the current directory');
  if (within(cwd, real)) throw refuse('contains the current directory');
  if (!fs.statSync(existing).isDirectory())
    throw refuse(existing === real ? 'is a file, not a directory' : `is under ${existing}, which is not a directory`);
  for (const input of inputs) {
    if (input === null || input === undefined || input === '' || !fs.existsSync(input)) continue;
    const inp = resolveReal(input).real;
    if (inp === real) throw refuse(`is the input ${input}`);
    if (within(inp, real)) throw refuse(`contains the input ${input}`);
    if (within(real, inp)) throw refuse(`is inside the input ${input}`);
  }
  return real;
}

/**
 * Whether a `replace` command may replace `real` (named `shown`): absent or empty, or with --force one
 * carrying the marker, which is returned. Throws otherwise.
 */
export function checkReplaceable(
  real: string,
  shown: string,
  o: Pick<ClaimOptions, 'option' | 'force'>,
): OutputMarker | null {
  if (!fs.existsSync(real) || fs.readdirSync(real).length === 0) return null; // nothing to lose
  if (!o.force) throw new OptionError(o.option, `${shown} exists (pass --force to replace it)`);
  const marker = readMarker(real);
  if (marker === null) {
    throw new OptionError(
      o.option,
      `${shown} exists and was not written by owq-wct (it has no ${MARKER_FILE}): --force replaces only a directory this tool wrote; move it away or choose another output directory`,
    );
  }
  return marker;
}

/** Checks `dir` as an output of `o.command`, locks it and removes dead processes' temporaries there. */
export function claimOutputDir(dir: string, o: ClaimOptions): OutputClaim {
  const real = checkOutputPath(dir, o.option, o.inputs);
  const running = liveHolder(path.join(real, LOCK_FILE));
  if (running !== null) throw new OptionError(o.option, `${dir} is in use by pid ${running.pid} (${running.command})`);
  if (o.mode === 'update') checkUpdatable(real, dir, o);
  makeDir(o.mode === 'update' ? real : path.dirname(real));
  const lock = lockDir(o.mode === 'update' ? path.join(real, LOCK_FILE) : `${real}.lock`, dir, o.option, o.note);
  let replaced: OutputMarker | null = null;
  try {
    if (o.mode === 'replace') replaced = checkReplaceable(real, dir, o);
    else if (readMarker(real) === null) writeMarker(real, o.command);
    const removed =
      o.mode === 'update' ? removeStaleTemps(real) : removeStaleTemps(path.dirname(real), path.basename(real));
    if (removed.length > 0)
      o.note(
        `removed ${removed.length} temporary file(s) of dead processes: ${removed.map((f) => path.basename(f)).join(', ')}`,
      );
  } catch (e) {
    lock.release();
    throw e;
  }
  return {
    dir: real,
    release: lock.release,
    finish() {
      lock.release();
      if (replaced !== null) o.note(`replaced ${dir} (written by owq-wct ${replaced.version}, ${replaced.command})`);
    },
  };
}

/** An `update` command writes into an absent or empty directory, or one its own earlier run marked. */
function checkUpdatable(real: string, shown: string, o: ClaimOptions): void {
  if (!fs.existsSync(real) || fs.readdirSync(real).length === 0) return;
  const marker = readMarker(real);
  if (marker === null) {
    throw new OptionError(
      o.option,
      `${shown} exists and was not written by owq-wct (it has no ${MARKER_FILE}); choose another output directory`,
    );
  }
  if (marker.command !== o.command)
    throw new OptionError(
      o.option,
      `${shown} was written by ${marker.command}, not ${o.command}; choose another output directory`,
    );
}
