/**
 * Shared CLI plumbing: the handler wrapper that applies the error taxonomy (src/errors.ts) and the progress
 * bars the commands draw for the library's progress callbacks.
 *
 * InputError, OptionError and IoError (Node's file-system failures included) are the user's to fix: one line on
 * stderr, exit code 1. Anything else is a bug: its stack trace, a line asking for a report, exit code 70
 * (EX_SOFTWARE). The same mapping serves errors that reach yargs (failWith) and failed writes to stdout.
 */
import cliProgress from 'cli-progress';
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
