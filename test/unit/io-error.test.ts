/**
 * The I/O kind of the error taxonomy (src/errors.ts): Node's file-system failures become one line naming the
 * file, the operation and the cause in words; a failure on a file descriptor names the file it was given;
 * Node's ERR_* errors and plain errors stay bugs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { asUserError, IoError, namingFile } from '../../src/errors.js';

function failure(io: () => unknown): unknown {
  try {
    io();
  } catch (e) {
    return e;
  }
  throw new Error('expected a failure');
}

describe('I/O errors', () => {
  const dir = os.tmpdir();

  it('real failures: the file, the operation and the cause in words', () => {
    const missing = path.join(dir, 'wct-no-such-file');
    expect(asUserError(failure(() => fs.readFileSync(missing)))?.message).toBe(
      `${missing}: cannot open: no such file or directory (ENOENT)`,
    );
    expect(asUserError(failure(() => fs.writeFileSync('/dev/full/x', '')))?.message).toBe(
      '/dev/full/x: cannot open: a component of the path is not a directory (ENOTDIR)',
    );
    expect(asUserError(failure(() => fs.readFileSync(dir)))?.message).toMatch(
      /: cannot read: is a directory \(EISDIR\)$/,
    );
    expect(asUserError(failure(() => fs.mkdirSync(dir)))?.message).toBe(
      `${dir}: cannot create directory: already exists (EEXIST)`,
    );
    expect(asUserError(failure(() => fs.renameSync(missing, `${missing}.b`)))?.message).toBe(
      `${missing}: cannot rename to ${missing}.b: no such file or directory (ENOENT)`,
    );
  });

  it('codes without a real failure here (root writes where others get EACCES)', () => {
    const errno = (code: string, words: string, syscall: string) =>
      Object.assign(new Error(`${code}: ${words}, ${syscall} '/x'`), { code, syscall, path: '/x', errno: -1 });
    expect(asUserError(errno('EROFS', 'read-only file system', 'open'))?.message).toBe(
      '/x: cannot open: read-only file system (EROFS)',
    );
    expect(asUserError(errno('EACCES', 'permission denied', 'mkdir'))?.message).toBe(
      '/x: cannot create directory: permission denied (EACCES)',
    );
    expect(asUserError(errno('EMFILE', 'too many open files', 'open'))?.message).toBe(
      '/x: cannot open: too many open files in this process (EMFILE)',
    );
    expect(asUserError(errno('ESTALE', 'stale file handle', 'open'))?.message).toBe(
      '/x: cannot open: stale file handle (ESTALE)',
    );
  });

  it('a write on a descriptor names the file it was given', () => {
    const fd = fs.openSync('/dev/full', 'w');
    try {
      const e = failure(() => namingFile('out.bin', () => fs.writeSync(fd, 'x')));
      expect(e).toBeInstanceOf(IoError);
      expect((e as Error).message).toBe('out.bin: cannot write: no space left on device (ENOSPC)');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('bugs stay bugs', () => {
    expect(asUserError(failure(() => fs.readFileSync(42 as unknown as string, { encoding: 'bogus' as 'utf8' })))).toBe(
      null,
    );
    expect(asUserError(new TypeError('x is undefined'))).toBe(null);
    expect(asUserError(Object.assign(new Error('E'), { code: 'ERR_INVALID_ARG_TYPE' }))).toBe(null);
  });
});
