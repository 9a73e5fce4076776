/**
 * Shared CLI plumbing: the handler wrapper that applies the error taxonomy (src/errors.ts). (The progress bars
 * are ./progress.ts.)
 *
 * InputError and OptionError are the user's to fix: one line on stderr, exit code 1. Anything else is a bug:
 * its stack trace, a line asking for a report, exit code 70 (EX_SOFTWARE).
 */
import { isUserError } from '../errors.js';

export const BUG_EXIT_CODE = 70;

export function runHandler<A>(handler: (args: A) => Promise<void> | void): (args: A) => Promise<void> {
  return async (args: A) => {
    try {
      await handler(args);
    } catch (err) {
      if (isUserError(err)) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exit(1);
      }
      const shown = err instanceof Error ? (err.stack ?? String(err)) : String(err);
      process.stderr.write(
        `${shown}\n\nThis is a bug in owq-wct, not in your input: please report it with the command you ran.\n`,
      );
      process.exit(BUG_EXIT_CODE);
    }
  };
}
