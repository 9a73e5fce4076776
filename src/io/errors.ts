/**
 * Bad user input: a file that is missing, malformed, or disagrees with another file.
 *
 * The message is one line, `<file>: <field or tensor>: <what is wrong, what was expected>`, so the
 * CLI can print it alone (no stack trace) and the user knows which file and which entry to fix.
 * `problem` may be omitted when `where` already reads as `<field>: <problem>`.
 * Programming errors (a caller passing inconsistent arguments) throw plain Error instead.
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
