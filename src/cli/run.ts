/**
 * Shared CLI plumbing: a handler wrapper that turns expected failures (bad input, bad options) into one
 * line on stderr and exit code 1, and a progress bar on stderr.
 */
import cliProgress from 'cli-progress';
import { InputError } from '../io/errors.js';

/** Errors a user can fix: printed as one line, no stack. */
export class UsageError extends Error {}

export function runHandler<A>(handler: (args: A) => Promise<void> | void): (args: A) => Promise<void> {
  return async (args: A) => {
    try {
      await handler(args);
    } catch (err) {
      if (err instanceof InputError || err instanceof UsageError || err instanceof RangeError) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exit(1);
      }
      throw err;
    }
  };
}

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

/** A progress bar on stderr when it is a terminal; silent otherwise (keeps logs and --json clean). */
export function progressBar(label: string): Progress {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {value}/{total} | {percentage}% | ETA {eta_formatted}`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) bar.start(total, 0);
      started = true;
      bar.update(done);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
