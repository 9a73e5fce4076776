/**
 * GPT-2 style tokenizer files (`vocab.json` + `merges.txt`, as OPT ships them) -> the equivalent
 * `tokenizer.json` object, built in memory the way transformers converts GPT2Tokenizer to its
 * fast form: byte-level BPE, ByteLevel pre-tokenizer (GPT-2 regex, no prefix space), ByteLevel
 * decoder.
 *
 * BOS policy (bpeSpecialTokens), which the files leave to the model family (its spec's BpeConventions): OPT's
 * tokenizer puts its BOS `</s>` (id 2, config.json's bos_token_id) in front of every text; GPT-2's adds nothing. The ids are prepended by the caller
 * rather than by a TemplateProcessing post-processor, because the library maps a template's token
 * *string* through the vocabulary, and the GPT-2 vocab.json that opt-tiny-random ships has no
 * `</s>` (its id 2 is "#"). tokenizer_config.json, when present, overrides as in transformers.
 */
import { InputError } from '../errors.js';
import { isObject, parseJson, readTextFile } from './json-file.js';

/** Vocabulary entries that are control tokens rather than text, when present. */
const SPECIAL_CANDIDATES = ['<s>', '<pad>', '</s>', '<unk>', '<|endoftext|>'];

function readVocab(file: string): Record<string, number> {
  const vocab = parseJson(file, readTextFile(file));
  if (!isObject(vocab)) throw new InputError(file, 'file', 'expected a JSON object of token -> id');
  for (const [token, id] of Object.entries(vocab)) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) {
      throw new InputError(
        file,
        JSON.stringify(token),
        `expected a non-negative integer id, got ${JSON.stringify(id)}`,
      );
    }
  }
  return vocab as Record<string, number>;
}

/** merges.txt: an optional `#version` line, then one `left right` pair per line, in rank order. */
function readMerges(file: string, vocab: Record<string, number>): [string, string][] {
  const merges: [string, string][] = [];
  readTextFile(file)
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line === '' || (i === 0 && line.startsWith('#version'))) return;
      const parts = line.split(' ');
      if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
        throw new InputError(
          file,
          `line ${i + 1}`,
          `expected two space-separated symbols, got ${JSON.stringify(line)}`,
        );
      }
      if (!Object.hasOwn(vocab, parts[0] + parts[1])) {
        throw new InputError(
          file,
          `line ${i + 1}`,
          `merge result ${JSON.stringify(parts[0] + parts[1])} is not in vocab.json`,
        );
      }
      merges.push(parts as [string, string]);
    });
  return merges;
}

/** The tokenizer.json object for the two files; throws InputError naming a malformed file. */
export function bpeTokenizerJson(vocabFile: string, mergesFile: string): Record<string, unknown> {
  const vocab = readVocab(vocabFile);
  const merges = readMerges(mergesFile, vocab);
  return {
    added_tokens: SPECIAL_CANDIDATES.filter((t) => Object.hasOwn(vocab, t)).map((content) => ({
      id: vocab[content],
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/**
 * What GPT-2 style files leave unsaid, given by the model family: whether BOS/EOS come from config.json and BOS
 * is put before every text (OPT), or both are `<|endoftext|>` and no BOS is added (GPT-2, and no config.json).
 */
export interface BpeConventions {
  specialTokensFromConfig: boolean;
}

export interface BpeSpecialTokens {
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** Put bosTokenId before every encoded text (when special tokens are requested). */
  addBos: boolean;
}

/**
 * `tokenizerConfig`: tokenizer_config.json ({} when absent); `modelConfig`: the directory's
 * config.json ({} when absent); `idOf` looks a token string up in the vocabulary.
 */
export function bpeSpecialTokens(
  tokenizerConfig: Record<string, unknown>,
  modelConfig: Record<string, unknown>,
  conventions: BpeConventions,
  idOf: (token: string) => number | undefined,
): BpeSpecialTokens {
  const fromConfig = conventions.specialTokensFromConfig;
  const configId = (key: string) => (Number.isSafeInteger(modelConfig[key]) ? (modelConfig[key] as number) : 2);
  const fromTokenizerConfig = (key: string) => {
    const v = tokenizerConfig[key];
    const content = isObject(v) ? v.content : v;
    return typeof content === 'string' ? (idOf(content) ?? null) : undefined;
  };
  const fallback = fromConfig ? null : (idOf('<|endoftext|>') ?? null);
  const bosTokenId = fromTokenizerConfig('bos_token') ?? (fromConfig ? configId('bos_token_id') : fallback);
  const eosTokenId = fromTokenizerConfig('eos_token') ?? (fromConfig ? configId('eos_token_id') : fallback);
  const addBos = (tokenizerConfig.add_bos_token ?? fromConfig) === true && bosTokenId !== null;
  return { bosTokenId, eosTokenId, addBos };
}
