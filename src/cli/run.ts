/**
 * Shared CLI plumbing: the handler wrapper that applies the error taxonomy (src/errors.ts). (The progress bars
 * are ./progress.ts.)
 *
 * InputError, OptionError and IoError (Node's file-system failures included) are the user's to fix: one line on
 * stderr, exit code 1. Anything else is a bug: its stack trace, a line asking for a report, exit code 70
 * (EX_SOFTWARE). The same mapping serves errors that reach yargs (failWith) and failed writes to stdout.
 */
import { asUserError, ioErrorOf, isErrnoFailure } from '../errors.js';

export const BUG_EXIT_CODE = 70;

/** Shows `err` by the taxonomy and exits: one line (exit 1) for the user's to fix, the stack (exit 70) for a bug. */
export function exitWithError(err: unknown): never {
  const user = asUserError(err);
  if (user !== null) {
    process.stderr.write(`error: ${user.message}\n`);
    process.exit(1);
  }
  const shown = err instanceof Error ? (err.stack ?? String(err)) : String(err);
  process.stderr.write(
    `${shown}\n\nThis is a bug in owq-wct, not in your input: please report it with the command you ran.\n`,
  );
  process.exit(BUG_EXIT_CODE);
}

/**
 * yargs' failure callback: a usage message (unknown option, missing argument) keeps yargs' help and message;
 * an error thrown outside a handler goes through exitWithError, not yargs' help and stack.
 */
export function failWith(msg: string | null, err: Error | undefined, y: { showHelp(level: 'error'): unknown }): void {
  if (err !== undefined) exitWithError(err);
  y.showHelp('error');
  process.stderr.write(`\n${msg}\n`);
  process.exit(1);
}

/** A failed write to stdout (a full disk, a closed pipe) is reported once, as an I/O error on stdout. */
function watchStdout(): void {
  if (process.stdout.listenerCount('error') > 0) return;
  process.stdout.on('error', (e) => {
    if (isErrnoFailure(e) && e.code === 'EPIPE') process.exit(1); // the reader went away: nothing to tell it
    exitWithError(isErrnoFailure(e) ? ioErrorOf(e, 'stdout') : e);
  });
}

export function runHandler<A>(handler: (args: A) => Promise<void> | void): (args: A) => Promise<void> {
  return async (args: A) => {
    watchStdout();
    try {
      await handler(args);
    } catch (err) {
      exitWithError(err);
    }
  };
}
