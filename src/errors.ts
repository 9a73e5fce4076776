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
 * Everything else (RangeError, TypeError, Error) is a bug in this project: src/cli/run.ts shows it with its
 * stack trace and asks for a report.
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

/** True for the failures a user fixes (bad files, bad options); false for bugs. */
export function isUserError(e: unknown): e is InputError | OptionError {
  return e instanceof InputError || e instanceof OptionError;
}
