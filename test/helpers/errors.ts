import { expect } from 'vitest';
import { InputError } from '../../src/errors.js';

/** Runs `f`, expects it to throw an InputError, and returns the message. */
export function inputErrorMessage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error('expected an InputError');
}

/** The fuzz property: `f` returns, or throws a one-line InputError; anything else is rethrown. */
export function endsCleanly(f: () => unknown): boolean {
  try {
    f();
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    expect(e.message).not.toContain('\n');
  }
  return true;
}
