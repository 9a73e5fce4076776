/**
 * Numeric command-line options declared with their accepted range, for the commands whose options do not come from
 * the recipe schema (those are checked by the schema: src/cli/schema-flags.ts). yargs only parses numbers (`abc`
 * becomes NaN, a repeated flag a list); checkNumberOptions then refuses a value outside its range as an OptionError
 * naming the flag and the range, which src/cli/run.ts prints as one line.
 */
import type { Argv } from 'yargs';
import { OptionError } from '../errors.js';
import { showValue } from '../util/show-value.js';

export { MAX_SEED } from '../recipe/schema.js';

export interface NumberOption {
  describe: string;
  default?: number;
  /** Whole numbers only. */
  integer?: boolean;
  min: number;
  /** The minimum itself is refused: (min, max]. */
  minExclusive?: boolean;
  /** Inclusive; default: no bound (finite numbers only). */
  max?: number;
}

/** An integer option in [min, max] (max: no bound). */
export function intOption(describe: string, min: number, max?: number, dflt?: number): NumberOption {
  return { describe, integer: true, min, max, default: dflt };
}

/** "an integer in [1, 1024]", "a number in (0, 1]", "a number >= 0". */
export function rangeText(o: NumberOption): string {
  const kind = o.integer ? 'an integer' : 'a number';
  if (o.max === undefined) return `${kind} ${o.minExclusive ? '>' : '>='} ${o.min}`;
  return `${kind} in ${o.minExclusive ? '(' : '['}${o.min}, ${o.max}]`;
}

function accepts(o: NumberOption, v: unknown): boolean {
  if (typeof v !== 'number' || !Number.isFinite(v) || (o.integer && !Number.isInteger(v))) return false;
  return (o.minExclusive ? v > o.min : v >= o.min) && (o.max === undefined || v <= o.max);
}

/** Adds the options (by flag name, without the dashes) to `y`. */
export function addNumberOptions<A>(y: Argv<A>, options: Record<string, NumberOption>): Argv<A> {
  for (const [flag, o] of Object.entries(options)) {
    y = y.option(flag, {
      type: 'number',
      describe: `${o.describe} (${rangeText(o)})`,
      ...(o.default === undefined ? {} : { default: o.default }),
    }) as Argv<A>;
  }
  return y;
}

/** Throws an OptionError for the first option of `options` whose value in `args` is given and outside its range. */
export function checkNumberOptions(args: Record<string, unknown>, options: Record<string, NumberOption>): void {
  for (const [flag, o] of Object.entries(options)) {
    const v = args[flag];
    if (v === undefined) continue;
    if (Array.isArray(v)) throw new OptionError(`--${flag}`, `given ${v.length} times; expected one value`);
    if (!accepts(o, v)) throw new OptionError(`--${flag}`, `expected ${rangeText(o)}, got ${showValue(v)}`);
  }
}
