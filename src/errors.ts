/**
 * The error taxonomy. Two kinds of failure are the user's to fix and are shown as one line (exit code 1):
 *
 * - InputError: a file that is missing, malformed, or disagrees with another file. The message is
 *   `<file>: <field or tensor>: <what is wrong, what was expected>`; `problem` may be omitted when `where`
 *   already reads as `<field>: <problem>`.
 * - OptionError: a command-line option or recipe value that is out of range or contradicts another. The
 *   message is `<option>: <what is wrong, what was expected>`, the option spelled as the user wrote it
 *   (`--group-size`, or a recipe's dotted key).
 *
 * - IoError: a file or directory that could not be read or written (disk full, read-only, permission, a
 *   path component that is not a directory). The message is `<file>: cannot <operation>: <cause in words>`.
 *   Node's own failures of the file system (an ErrnoException: code `E...`, syscall, path) are the same kind:
 *   asUserError converts them.
 *
 * Everything else (RangeError, TypeError, Error, Node's ERR_* codes) is a bug in this project: src/cli/run.ts
 * shows it with its stack trace and asks for a report.
 */
export class InputError extends Error {
  override readonly name = 'InputError';

  constructor(
    readonly file: string,
    readonly where: string,
    problem?: string,
  ) {
    super(problem === undefined ? `${file}: ${where}` : `${file}: ${where}: ${problem}`);
  }
}

/** A RangeError: an option outside what the code accepts; unlike a bare RangeError it is the user's to fix. */
export class OptionError extends RangeError {
  override readonly name = 'OptionError';

  constructor(
    readonly option: string,
    readonly problem: string,
  ) {
    super(`${option}: ${problem}`);
  }
}

export class IoError extends Error {
  override readonly name = 'IoError';

  constructor(
    readonly file: string,
    readonly operation: string,
    readonly reason: string,
  ) {
    super(`${file}: cannot ${operation}: ${reason}`);
  }
}

/** A failure of a system call as Node reports it: an errno code (`ENOSPC`), the call, usually the path. */
export type ErrnoFailure = NodeJS.ErrnoException & { code: string; syscall: string; dest?: string };

export function isErrnoFailure(e: unknown): e is ErrnoFailure {
  const x = e as Partial<ErrnoFailure> | null;
  return (
    e instanceof Error && typeof x?.syscall === 'string' && typeof x.code === 'string' && /^E[A-Z0-9]+$/.test(x.code)
  );
}

/** Operations by system call, as the message says them (`cannot create directory`). */
const OPERATIONS: Record<string, string> = {
  open: 'open',
  read: 'read',
  write: 'write',
  fsync: 'write',
  close: 'close',
  mkdir: 'create directory',
  rmdir: 'remove',
  rm: 'remove',
  unlink: 'remove',
  rename: 'rename',
  link: 'create',
  copyfile: 'copy',
  stat: 'access',
  lstat: 'access',
  fstat: 'access',
  access: 'access',
  scandir: 'list directory',
  opendir: 'list directory',
  chmod: 'change the permissions of',
  ftruncate: 'truncate',
  realpath: 'resolve',
};

/** Causes in words by errno code; others take the words of Node's message (libuv's). */
const CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'already exists',
  ENOTEMPTY: 'directory not empty',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files in the system',
  EIO: 'input/output error',
  EFBIG: 'file too large',
  ENAMETOOLONG: 'file name too long',
  ELOOP: 'too many levels of symbolic links',
  EXDEV: 'on another file system',
  EBUSY: 'resource busy',
  ETXTBSY: 'text file busy',
};

/** The IoError of a Node file-system failure; `file` names it when Node did not (calls on a file descriptor). */
export function ioErrorOf(e: ErrnoFailure, file?: string): IoError {
  const words = CAUSES[e.code] ?? /^E[A-Z0-9]+: ([^,]+)/.exec(e.message)?.[1] ?? e.code;
  const operation = OPERATIONS[e.syscall] ?? e.syscall;
  const dest = typeof e.dest === 'string' ? ` to ${e.dest}` : '';
  return new IoError(e.path ?? file ?? '(unnamed file)', `${operation}${dest}`, `${words} (${e.code})`);
}

/** Runs `io` (reads or writes of `file` through a descriptor); a failure Node reports without a path names `file`. */
export function namingFile<T>(file: string, io: () => T): T {
  try {
    return io();
  } catch (e) {
    throw isErrnoFailure(e) && e.path === undefined ? ioErrorOf(e, file) : e;
  }
}

/** The failure as one the user fixes (bad files, bad options, I/O), or null for a bug. */
export function asUserError(e: unknown): InputError | OptionError | IoError | null {
  if (e instanceof InputError || e instanceof OptionError || e instanceof IoError) return e;
  return isErrnoFailure(e) ? ioErrorOf(e) : null;
}
