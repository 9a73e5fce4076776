/**
 * The error taxonomy at the CLI boundary (src/cli/run.ts): an InputError or OptionError is one line and exit
 * code 1; anything else (here a TypeError and a stack overflow's RangeError) is a bug, printed with its stack
 * trace and a request to report it, exit code 70.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import { BUG_EXIT_CODE, failWith, runHandler } from '../../src/cli/run.js';
import { InputError, OptionError } from '../../src/errors.js';

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** Runs a handler that throws `error`; returns what it wrote to stderr and the exit code. */
async function outcome(error: unknown): Promise<{ stderr: string; code: number }> {
  let stderr = '';
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  vi.spyOn(process, 'exit').mockImplementation((code) => {
    throw new Exit(Number(code));
  });
  try {
    await runHandler(() => {
      throw error;
    })({});
  } catch (e) {
    if (e instanceof Exit) return { stderr, code: e.code };
    throw e;
  }
  throw new Error('the handler did not exit');
}

afterEach(() => vi.restoreAllMocks());

function overflow(n: number): number {
  return overflow(n + 1) + 1;
}

describe('runHandler', () => {
  it('a bad file or a bad option: one line, exit 1', async () => {
    expect(await outcome(new InputError('config.json', 'hidden_size', 'expected a positive integer'))).toEqual({
      stderr: 'error: config.json: hidden_size: expected a positive integer\n',
      code: 1,
    });
    expect(await outcome(new OptionError('--group-size', 'expected a multiple of 8'))).toEqual({
      stderr: 'error: --group-size: expected a multiple of 8\n',
      code: 1,
    });
  });

  it("an I/O failure (Node's errno error): one line naming the file, the operation and the cause, exit 1", async () => {
    let failure: unknown;
    try {
      fs.writeFileSync('/dev/full/x', '');
    } catch (e) {
      failure = e;
    }
    expect(await outcome(failure)).toEqual({
      stderr: 'error: /dev/full/x: cannot open: a component of the path is not a directory (ENOTDIR)\n',
      code: 1,
    });
  });

  it('an error that reaches yargs takes the same path: no help text', () => {
    let stderr = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr += String(chunk);
      return true;
    });
    vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new Exit(Number(code));
    });
    const showHelp = vi.fn();
    const error = Object.assign(new Error("ENOSPC: no space left on device, write '/x'"), {
      code: 'ENOSPC',
      syscall: 'write',
      path: '/x',
    });
    expect(() => failWith(null, error, { showHelp })).toThrow(new Exit(1));
    expect(stderr).toBe('error: /x: cannot write: no space left on device (ENOSPC)\n');
    expect(showHelp).not.toHaveBeenCalled();
  });

  it('a bug keeps its stack and asks for a report', async () => {
    const { stderr, code } = await outcome(new TypeError('cannot read x of undefined'));
    expect(code).toBe(BUG_EXIT_CODE);
    expect(stderr).toMatch(/^TypeError: cannot read x of undefined\n\s+at /);
    expect(stderr).toMatch(/This is a bug in owq-wct.*please report it/);
  });

  it('a stack overflow is a bug, not a user error', async () => {
    let error: unknown;
    try {
      overflow(0);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RangeError);
    const { stderr, code } = await outcome(error);
    expect(code).toBe(BUG_EXIT_CODE);
    expect(stderr).toMatch(/Maximum call stack size exceeded\n\s+at /);
  });
});
