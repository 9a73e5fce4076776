/**
 * A value from a user's file or option as an error message shows it: numbers and booleans as written, a string
 * cut to 40 characters, a list or mapping only named. Errors never echo a file's text.
 */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object' && v !== null) return 'a mapping';
  if (Number.isNaN(v)) return 'a non-number'; // a CLI flag that did not parse as a number, or YAML .nan
  return String(v);
}
