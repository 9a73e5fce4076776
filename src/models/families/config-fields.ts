/**
 * Typed access to the fields of a config.json for the family specs' parsers. A missing or mistyped required
 * field, or an option this project does not implement, is an InputError naming the file and the field.
 */
import { InputError } from '../../errors.js';

export class ConfigFields {
  constructor(
    readonly file: string,
    private readonly raw: Record<string, unknown>,
  ) {}

  fail(key: string, problem: string): never {
    throw new InputError(this.file, key, problem);
  }

  /** The raw value (undefined when absent), for fields whose presence alone matters. */
  value(key: string): unknown {
    return this.raw[key];
  }

  /** `dflt` makes a field optional (absent or null -> dflt). */
  private get<T>(key: string, ok: (v: unknown) => boolean, what: string, dflt?: T): T {
    const v = this.raw[key];
    if (v === undefined || (v === null && dflt !== undefined)) {
      if (dflt === undefined) this.fail(key, `missing; expected ${what}`);
      return dflt;
    }
    if (!ok(v)) this.fail(key, `expected ${what}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  count(key: string, dflt?: number): number {
    return this.get(key, (v) => Number.isSafeInteger(v) && (v as number) > 0, 'a positive integer', dflt);
  }

  number(key: string, dflt?: number): number {
    return this.get(key, (v) => typeof v === 'number' && Number.isFinite(v), 'a number', dflt);
  }

  bool(key: string, dflt?: boolean): boolean {
    return this.get(key, (v) => typeof v === 'boolean', 'true or false', dflt);
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], dflt?: T): T {
    return this.get(key, (v) => allowed.includes(v as T), `one of ${allowed.join(', ')}`, dflt);
  }

  /** A token id, null, or (eos in Llama 3) a list of ids of which the first is kept. */
  tokenId(key: string, dflt: number | null): number | null {
    const isId = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    const v = this.raw[key];
    if (v === undefined) return dflt;
    if (v === null || isId(v)) return v as number | null;
    if (Array.isArray(v) && v.length > 0 && v.every(isId)) return v[0] as number;
    this.fail(key, `expected a token id, a list of token ids, or null, got ${JSON.stringify(v)}`);
  }

  /** RoPE variants other than the plain one change the model's numbers: refuse them. */
  plainRope(key = 'rope_scaling'): void {
    const scaling = this.raw[key];
    if (scaling === undefined || scaling === null) return;
    const kind =
      typeof scaling === 'object'
        ? ((scaling as Record<string, unknown>).rope_type ?? (scaling as Record<string, unknown>).type)
        : scaling;
    if (kind !== 'default')
      this.fail(key, `${JSON.stringify(kind)} scaling is not supported (supported: null or "default")`);
  }
}
