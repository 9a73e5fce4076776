/**
 * Shared CLI plumbing: the handler wrapper that applies the error taxonomy (src/errors.ts) and the progress
 * bars the commands draw for the library's progress callbacks.
 *
 * InputError and OptionError are the user's to fix: one line on stderr, exit code 1. Anything else is a bug:
 * its stack trace, a line asking for a report, exit code 70 (EX_SOFTWARE).
 */
import cliProgress from 'cli-progress';
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

export interface Progress {
  /** Moves the bar to done of total; `status` replaces the text after the count. */
  update(done: number, total: number, status?: string): void;
  stop(): void;
}

/** A progress bar on stderr when it is a terminal; silent otherwise (keeps logs and --json clean). */
export function progressBar(label: string): Progress {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {value}/{total} | {percentage}% | ETA {eta_formatted} {status}`,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, status = '') {
      if (!started) bar.start(total, 0, { status });
      started = true;
      bar.setTotal(total);
      bar.update(done, { status });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
