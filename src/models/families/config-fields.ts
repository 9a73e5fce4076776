/**
 * Typed access to the fields of a config.json for the family specs' parsers. A missing or mistyped required
 * field, a size outside SIZE_LIMITS, or an option this project does not implement, is an InputError naming the
 * file, the field and what is accepted, the value shown short (src/util/show-value.ts).
 */
import { InputError } from '../../errors.js';
import { showValue } from '../../util/show-value.js';

/**
 * The largest sizes a config.json may declare, checked before anything is allocated. Each is at least 8 times the
 * largest released model's (Llama 3.1 405B: 126 layers, hidden_size 16384, intermediate_size 53248, 128 heads;
 * Gemma: vocab_size 256000; Qwen2.5-1M: 1010000 positions), so only a typo (`num_hidden_layers: 1e9`) is refused.
 */
export const SIZE_LIMITS = {
  /** num_hidden_layers */
  layers: 1024,
  /** hidden_size, word_embed_proj_dim */
  width: 1 << 17,
  /** intermediate_size, ffn_dim */
  mlpWidth: 1 << 19,
  /** num_attention_heads, num_key_value_heads */
  heads: 1024,
  /** head_dim */
  headDim: 2048,
  /** vocab_size */
  vocab: 1 << 22,
  /** max_position_embeddings, sliding_window */
  positions: 1 << 24,
} as const;

export class ConfigFields {
  constructor(
    readonly file: string,
    private readonly raw: Record<string, unknown>,
    /** Prepended to keys in errors (a nested object's `parent.`). */
    private readonly prefix = '',
  ) {}

  fail(key: string, problem: string): never {
    throw new InputError(this.file, `${this.prefix}${key}`, problem);
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
    if (!ok(v)) this.fail(key, `expected ${what}, got ${showValue(v)}`);
    return v as T;
  }

  /** A size: an integer in [1, max] (max: one of SIZE_LIMITS). */
  size(key: string, max: number, dflt?: number): number {
    return this.get(
      key,
      (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max,
      `an integer in [1, ${max}]`,
      dflt,
    );
  }

  /** A finite number greater than 0 (an epsilon). */
  positive(key: string, dflt?: number): number {
    return this.get(key, (v) => typeof v === 'number' && Number.isFinite(v) && v > 0, 'a finite number > 0', dflt);
  }

  /** A finite number of at least `min` (RoPE's base: below 1 its frequencies theta^(-2i/d) grow, near 0 they overflow). */
  atLeast(key: string, min: number, dflt?: number): number {
    return this.get(
      key,
      (v) => typeof v === 'number' && Number.isFinite(v) && v >= min,
      `a finite number >= ${min}`,
      dflt,
    );
  }

  bool(key: string, dflt?: boolean): boolean {
    return this.get(key, (v) => typeof v === 'boolean', 'true or false', dflt);
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], dflt?: T): T {
    return this.get(key, (v) => allowed.includes(v as T), `one of ${allowed.join(', ')}`, dflt);
  }

  /** A token id below vocabSize, null, or (eos in Llama 3) a list of such ids of which the first is kept. */
  tokenId(key: string, dflt: number | null, vocabSize: number): number | null {
    const isId = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocabSize;
    const v = this.raw[key];
    if (v === undefined) return dflt;
    if (v === null || isId(v)) return v as number | null;
    if (Array.isArray(v) && v.length > 0 && v.every(isId)) return v[0] as number;
    this.fail(
      key,
      `expected a token id in [0, ${vocabSize - 1}] (vocab_size ${vocabSize}), a list of them, or null, got ${showValue(v)}`,
    );
  }

  /** The object under `key` (e.g. rope_scaling) as fields of their own, named `key.field` in errors. */
  nested(key: string): ConfigFields {
    const v = this.raw[key];
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      this.fail(key, `expected an object, got ${showValue(v)}`);
    return new ConfigFields(this.file, v as Record<string, unknown>, `${this.prefix}${key}.`);
  }
}
