/**
 * Command-line flags generated from a zod shape (the recipe schema's sections), so a flag's name, type, choices,
 * default and description are written once, where the recipe field is declared. `--kebab-case` flags map to
 * snake_case fields. Values are not checked by yargs: the section goes through the schema, whose first problem is
 * reported as one line naming the flag (src/cli/run.ts), the other fields it mentions spelled as flags too.
 */
import type { Argv, Options } from 'yargs';
import * as z from 'zod';
import { OptionError } from '../errors.js';
import { firstProblem } from '../recipe/load.js';

export const flagName = (field: string): string => field.replaceAll('_', '-');

/** The innermost schema under optional / default wrappers, and the default found on the way. */
function unwrap(schema: z.ZodType): { base: z.ZodType; dflt: unknown } {
  let s = schema;
  let dflt: unknown;
  for (;;) {
    if (s instanceof z.ZodDefault) {
      dflt = s.def.defaultValue;
      s = s.def.innerType as z.ZodType;
    } else if (s instanceof z.ZodOptional) s = s.def.innerType as z.ZodType;
    else return { base: s, dflt };
  }
}

function yargsOption(schema: z.ZodType, choices: readonly (string | number)[] | undefined): Options {
  const { base, dflt } = unwrap(schema);
  const listed =
    choices ?? (base instanceof z.ZodEnum ? base.options : base instanceof z.ZodLiteral ? [...base.values] : undefined);
  const type =
    base instanceof z.ZodBoolean
      ? 'boolean'
      : base instanceof z.ZodNumber || (base instanceof z.ZodLiteral && typeof listed?.[0] === 'number')
        ? 'number'
        : 'string';
  const describe = `${schema.description ?? ''}${listed === undefined ? '' : ` (${listed.join(' | ')})`}`;
  return { type, describe, ...(dflt === undefined ? {} : { default: dflt }) };
}

/** Adds one flag per field of `shape`; `choices` lists values for fields whose schema checks them dynamically. */
export function addSchemaFlags<A>(
  y: Argv<A>,
  shape: Record<string, z.ZodType>,
  choices: Record<string, readonly string[]> = {},
): Argv<A> {
  for (const [field, schema] of Object.entries(shape))
    y = y.option(flagName(field), yargsOption(schema, choices[field])) as Argv<A>;
  return y;
}

/** The flags of `shape` as a section, parsed by `schema`; a bad value is an OptionError naming its flag. */
export function parseSchemaFlags<T>(
  args: Record<string, unknown>,
  shape: Record<string, z.ZodType>,
  schema: z.ZodType<T>,
): T {
  const section = Object.fromEntries(Object.keys(shape).map((field) => [field, args[flagName(field)]]));
  const parsed = schema.safeParse(section);
  if (parsed.success) return parsed.data;
  const { path, problem } = firstProblem(parsed.error.issues, section);
  throw new OptionError(`--${flagName(String(path[0]))}`, asFlags(problem, Object.keys(shape)));
}

/** `problem` with the fields it names (not quoted values) as flags: "--target-bit and --target-rank exclude each other". */
function asFlags(problem: string, fields: readonly string[]): string {
  return fields.reduce(
    (text, f) => text.replace(new RegExp(`(?<!["\\w-])${f}(?![\\w"-])`, 'g'), `--${flagName(f)}`),
    problem,
  );
}
