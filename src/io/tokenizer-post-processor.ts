/**
 * The shape of tokenizer.json's `post_processor` (the special tokens added around an encoded text), checked before
 * the tokenizer library sees it: the library reads it only when encoding and then fails with a bare TypeError, or
 * silently drops a special token it does not know. Each kind is checked as Hugging Face tokenizers (Rust) reads it:
 * TemplateProcessing (single / pair pieces and their special_tokens), BertProcessing and RobertaProcessing (cls,
 * sep), ByteLevel, and a Sequence of these. Every special token must be a token of the vocabulary, and the ids
 * special_tokens lists must be that token's ids.
 */
import { InputError } from '../errors.js';
import { showValue } from '../util/show-value.js';
import { isObject } from './json-file.js';

/** The id of a token in the tokenizer's vocabulary (added tokens included), or undefined. */
export type TokenIdOf = (token: string) => number | undefined;

const KINDS = ['TemplateProcessing', 'BertProcessing', 'RobertaProcessing', 'ByteLevel', 'Sequence'];

const isTypeId = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;

/** Throws an InputError naming `file` and the offending field of post_processor (`post_processor.single[2]`). */
export function checkPostProcessor(file: string, value: unknown, idOf: TokenIdOf, where = 'post_processor'): void {
  const fail = (at: string, problem: string): never => {
    throw new InputError(file, at, problem);
  };
  if (value === null || value === undefined) return;
  if (!isObject(value)) fail(where, `expected a mapping or null, got ${showValue(value)}`);
  const p = value as Record<string, unknown>;
  if (typeof p.type !== 'string' || !KINDS.includes(p.type))
    fail(`${where}.type`, `expected ${KINDS.join(', ')}, got ${showValue(p.type)}`);
  const known = (at: string, token: unknown) => {
    if (typeof token !== 'string') fail(at, `expected a token, got ${showValue(token)}`);
    const id = idOf(token as string);
    if (id === undefined) fail(at, `${showValue(token)} is not a token of the vocabulary`);
    return id as number;
  };
  switch (p.type) {
    case 'TemplateProcessing':
      checkTemplate(p, where, fail, known);
      return;
    case 'BertProcessing':
    case 'RobertaProcessing':
      for (const key of ['cls', 'sep']) {
        const pair = p[key];
        if (!Array.isArray(pair) || pair.length !== 2 || !isTypeId(pair[1]))
          fail(`${where}.${key}`, `expected [token, id], got ${showValue(pair)}`);
        const [token, id] = pair as [unknown, number];
        if (known(`${where}.${key}[0]`, token) !== id)
          fail(`${where}.${key}[1]`, `${id} is not the id of ${showValue(token)} in the vocabulary`);
      }
      return;
    case 'Sequence': {
      if (!Array.isArray(p.processors)) fail(`${where}.processors`, `expected a list, got ${showValue(p.processors)}`);
      (p.processors as unknown[]).forEach((q, i) => {
        checkPostProcessor(file, q, idOf, `${where}.processors[${i}]`);
      });
      return;
    }
    default: // ByteLevel: offsets only
      return;
  }
}

function checkTemplate(
  p: Record<string, unknown>,
  where: string,
  fail: (at: string, problem: string) => never,
  known: (at: string, token: unknown) => number,
): void {
  const special = p.special_tokens ?? {};
  if (!isObject(special)) fail(`${where}.special_tokens`, `expected a mapping, got ${showValue(special)}`);
  for (const [name, entry] of Object.entries(special as Record<string, unknown>)) {
    const at = `${where}.special_tokens.${name}`;
    const e = isObject(entry) ? entry : fail(at, `expected {id, ids, tokens}, got ${showValue(entry)}`);
    if (!Array.isArray(e.tokens) || !Array.isArray(e.ids) || e.ids.length !== e.tokens.length)
      fail(at, 'expected lists ids and tokens of the same length');
    (e.tokens as unknown[]).forEach((token, i) => {
      if (known(`${at}.tokens[${i}]`, token) !== (e.ids as unknown[])[i])
        fail(`${at}.ids[${i}]`, `${showValue((e.ids as unknown[])[i])} is not the id of ${showValue(token)}`);
    });
  }
  for (const key of ['single', 'pair']) {
    const pieces = p[key];
    if (!Array.isArray(pieces)) fail(`${where}.${key}`, `expected a list of pieces, got ${showValue(pieces)}`);
    (pieces as unknown[]).forEach((piece, i) => {
      const at = `${where}.${key}[${i}]`;
      const body = isObject(piece) ? (piece.SpecialToken ?? piece.Sequence) : undefined;
      if (!isObject(body) || !isTypeId(body.type_id))
        fail(at, 'expected {SpecialToken: {id, type_id}} or {Sequence: {id, type_id}}');
      const b = body as Record<string, unknown>;
      if ((piece as Record<string, unknown>).SpecialToken === undefined) {
        if (b.id !== 'A' && b.id !== 'B') fail(`${at}.Sequence.id`, `expected A or B, got ${showValue(b.id)}`);
        return;
      }
      if (typeof b.id !== 'string' || !Object.hasOwn(special as object, b.id))
        fail(`${at}.SpecialToken.id`, `${showValue(b.id)} is not one of special_tokens`);
      known(`${at}.SpecialToken.id`, b.id);
    });
  }
}
