/**
 * Text <-> token ids for a model directory, via @huggingface/tokenizers (pure JS).
 *
 * Sources, in order: `tokenizer.json` (+ `tokenizer_config.json` when present, for bos/eos and
 * decoding options), else GPT-2 style `vocab.json` + `merges.txt` (tokenizer-bpe-files.ts).
 * `encode(text)` adds the tokenizer's normal special tokens (one BOS at the start for Llama, `</s>`
 * for OPT), as the evaluation protocol requires; long texts for SentencePiece-style tokenizers are
 * encoded in exact pieces for speed (tokenizer-split.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InputError } from '../errors.js';
import { isObject, readJsonObject } from './json-file.js';
import { bpeSpecialTokens, bpeTokenizerJson, type BpeConventions } from './tokenizer-bpe-files.js';
import { checkPostProcessor } from './tokenizer-post-processor.js';

/** The conventions of the family config.json's model_type names (undefined when there is no config.json). */
export type BpeConventionsOf = (modelType: unknown) => BpeConventions;
import { sentencePieceSplitEncoder, type EncodeIds } from './tokenizer-split.js';

export interface TextTokenizer {
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Largest token id + 1 (the model's vocab_size may be padded beyond it). */
  readonly vocabSize: number;
  encode(text: string, options?: { addSpecialTokens?: boolean }): Int32Array;
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): string;
}

/** Builds the library tokenizer; a tokenizer.json it cannot use is an InputError naming the file. */
function createTokenizer(file: string, json: Record<string, unknown>, config: Record<string, unknown>): Tokenizer {
  try {
    return new Tokenizer(json, config);
  } catch (e) {
    throw new InputError(file, 'file', `not a usable tokenizer (${(e as Error).message})`);
  }
}

/** `bos_token` / `eos_token` in tokenizer_config.json: a string or an AddedToken object. */
export function tokenContent(value: unknown): string | null {
  const content = isObject(value) ? value.content : value;
  return typeof content === 'string' ? content : null;
}

function maxId(tokenizer: Tokenizer): number {
  let max = -1;
  for (const id of tokenizer.get_vocab(true).values()) max = Math.max(max, id);
  return max;
}

/** What differs between the two sources: the library tokenizer, how to encode, which ids are BOS/EOS. */
interface Backend {
  tokenizer: Tokenizer;
  encodeIds: EncodeIds;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** The BOS id encodeIds itself prepends (not the library), which decode must skip itself. */
  prependedBos: number | null;
}

function fromTokenizerJson(file: string, config: Record<string, unknown>): Backend {
  const json = readJsonObject(file);
  const tokenizer = createTokenizer(file, json, config);
  checkPostProcessor(file, json.post_processor, (token) => tokenizer.token_to_id(token));
  const idOf = (token: string | null) => (token === null ? null : (tokenizer.token_to_id(token) ?? null));
  return {
    tokenizer,
    encodeIds:
      sentencePieceSplitEncoder(json, config, tokenizer) ??
      ((text, addSpecialTokens) => tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids),
    bosTokenId: idOf(tokenContent(config.bos_token)),
    eosTokenId: idOf(tokenContent(config.eos_token)),
    prependedBos: null,
  };
}

/** GPT-2 style files; the BOS (OPT's `</s>`) is prepended here, see tokenizer-bpe-files.ts. */
function fromBpeFiles(dir: string, config: Record<string, unknown>, conventionsOf: BpeConventionsOf): Backend {
  const vocabFile = path.join(dir, 'vocab.json');
  const tokenizer = createTokenizer(vocabFile, bpeTokenizerJson(vocabFile, path.join(dir, 'merges.txt')), config);
  const modelConfigFile = path.join(dir, 'config.json');
  const modelConfig = fs.existsSync(modelConfigFile) ? readJsonObject(modelConfigFile) : {};
  const { bosTokenId, eosTokenId, addBos } = bpeSpecialTokens(
    config,
    modelConfig,
    conventionsOf(modelConfig.model_type),
    (t) => tokenizer.token_to_id(t),
  );
  const encodeIds: EncodeIds = (text, addSpecialTokens) => {
    const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
    return addSpecialTokens && addBos ? [bosTokenId!, ...ids] : ids;
  };
  return { tokenizer, encodeIds, bosTokenId, eosTokenId, prependedBos: addBos ? bosTokenId : null };
}

function readTokenizerConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, 'tokenizer_config.json');
  // transformers >= 4.45 no longer cleans up spaces on decode by default; keep text as it was
  return { clean_up_tokenization_spaces: false, ...(fs.existsSync(file) ? readJsonObject(file) : {}) };
}

/** The model's vocab_size and the file that declares it: every id the tokenizer has must be below it. */
export interface ModelVocab {
  size: number;
  file: string;
}

/** The library tokenizer and its source: tokenizer.json, else vocab.json + merges.txt; neither is an InputError. */
function readBackend(dir: string, config: Record<string, unknown>, bpe: BpeConventionsOf): Backend & { file: string } {
  const file = path.join(dir, 'tokenizer.json');
  if (fs.existsSync(file)) return { ...fromTokenizerJson(file, config), file };
  if (fs.existsSync(path.join(dir, 'vocab.json')) || fs.existsSync(path.join(dir, 'merges.txt')))
    return { ...fromBpeFiles(dir, config, bpe), file: path.join(dir, 'vocab.json') };
  throw new InputError(
    dir,
    'tokenizer.json',
    'not found (nor vocab.json + merges.txt); expected a Hugging Face tokenizer',
  );
}

/**
 * Reads the tokenizer of a directory; missing or malformed files are InputErrors naming them, as is a tokenizer
 * with ids at or above `modelVocab.size` (the model has no embedding row for them). `bpe` says, for config.json's
 * model_type, what GPT-2 style files leave to the model family (src/models/tokenizer.ts asks the family registry).
 */
export function readTokenizer(dir: string, bpe: BpeConventionsOf, modelVocab?: ModelVocab): TextTokenizer {
  const { tokenizer, encodeIds, bosTokenId, eosTokenId, prependedBos, file } = readBackend(
    dir,
    readTokenizerConfig(dir),
    bpe,
  );
  const largest = maxId(tokenizer);
  if (modelVocab !== undefined && largest >= modelVocab.size) {
    throw new InputError(
      file,
      'vocabulary',
      `has token ids up to ${largest}, but ${modelVocab.file} says vocab_size ${modelVocab.size} (ids must be below it)`,
    );
  }
  const decodeIds = (ids: number[], skipSpecialTokens: boolean) => {
    const kept = skipSpecialTokens && ids[0] === prependedBos ? ids.slice(1) : ids;
    return kept.length === 0 ? '' : tokenizer.decode(kept, { skip_special_tokens: skipSpecialTokens });
  };
  return {
    bosTokenId,
    eosTokenId,
    vocabSize: largest + 1,
    encode: (text, { addSpecialTokens = true } = {}) => Int32Array.from(encodeIds(text, addSpecialTokens)),
    decode: (ids, { skipSpecialTokens = false } = {}) => decodeIds(Array.from(ids), skipSpecialTokens),
  };
}

/** A tokenizer's vocabulary as a converter to another format needs it (src/export/gguf-tokenizer.ts). */
export interface TokenizerVocabulary {
  /** The token of every id below the largest + 1, added tokens included; undefined where an id has none. */
  tokens: (string | undefined)[];
  /** The BPE merges in rank order (empty for a model without merges). */
  merges: [string, string][];
  /**
   * The model's kind: BPE over characters with byte fallback tokens `<0xXX>` (SentencePiece-style, `▁` for a
   * space: Llama 2, Mistral), BPE over GPT-2's byte-to-unicode alphabet (ByteLevel decoder: GPT-2, Qwen2, Llama 3),
   * or another.
   */
  kind: 'bpe-byte-fallback' | 'bpe-byte-level' | 'other';
  unkTokenId: number | null;
  /** Ids of the added tokens marked special. */
  special: ReadonlySet<number>;
}

/** The vocabulary of `dir`'s tokenizer, read as readTokenizer reads it. */
export function readTokenizerVocabulary(dir: string, bpe: BpeConventionsOf): TokenizerVocabulary {
  const { tokenizer } = readBackend(dir, readTokenizerConfig(dir), bpe);
  const tokens: (string | undefined)[] = new Array(maxId(tokenizer) + 1).fill(undefined);
  for (const [token, id] of tokenizer.get_vocab(true)) tokens[id] = token;
  const model = tokenizer.model as unknown as { merges?: [string, string][]; byte_fallback?: boolean } | null;
  const decoder = (tokenizer.decoder as unknown as { config?: { type?: unknown } } | null)?.config?.type;
  const isBpe = Array.isArray(model?.merges);
  const special = [...tokenizer.get_added_tokens_decoder()].filter(([, t]) => t.special).map(([id]) => id);
  return {
    tokens,
    merges: isBpe ? model!.merges! : [],
    kind: !isBpe
      ? 'other'
      : model!.byte_fallback
        ? 'bpe-byte-fallback'
        : decoder === 'ByteLevel'
          ? 'bpe-byte-level'
          : 'other',
    unkTokenId: tokenizer.model?.unk_token_id ?? null,
    special: new Set(special),
  };
}
