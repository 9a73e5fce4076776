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

/** Awaits `f`, expects it to reject with an InputError, and returns the message. */
export async function inputErrorMessageAsync(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error('expected an InputError');
}

/** Every value an async generator yields. */
export async function collect<T>(g: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of g) out.push(x);
  return out;
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
