/**
 * A model directory's tokenizer as GGUF metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`), read through the
 * project's tokenizer reader (src/io/tokenizer.ts) and laid out as llama.cpp's convert_hf_to_gguf.py lays it out:
 * - SentencePiece-style BPE (tokenizer.json with byte_fallback: Llama 2, Mistral, TinyStories): model "llama",
 *   pre "default", every token with a score and a type (BYTE for `<0xXX>`, CONTROL for special tokens, NORMAL). The
 *   converter gives every token of such a tokenizer.json the score -1000, which leaves llama.cpp's SentencePiece
 *   merger (it merges the adjacent pair whose merged token scores highest) no order; here a token a merge makes
 *   scores minus that merge's rank, so the highest-ranked merge goes first as in BPE; other tokens score below
 *   every merge.
 * - Byte-level BPE (GPT-2's alphabet: Qwen2, Qwen3, Llama 3): model "gpt2", the merges, pre "qwen2" for the qwen2
 *   and qwen3 architectures (Qwen3's tokenizer is Qwen2's) and "llama-bpe" (Llama 3's pre-tokenizer) for llama;
 *   types CONTROL for special tokens, NORMAL.
 * Ids past the tokenizer up to config.json's vocab_size are `[PAD<id>]` tokens of type UNUSED, as the converter
 * pads them. BOS / EOS are the reader's; add_bos_token / add_eos_token say whether the reader's encode adds them;
 * unk is the model's; pad is tokenizer_config.json's pad_token. The chat template is tokenizer_config.json's
 * `chat_template` string, else chat_template.jinja, as the converter takes it. Another tokenizer model is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.js';
import type { GgufValue } from './gguf-write.js';
import { readJsonObject, readTextFile } from '../io/json-file.js';
import { type BpeConventionsOf, readTokenizer, readTokenizerVocabulary, tokenContent } from '../io/tokenizer.js';

/** llama.cpp's token types (gguf-py TokenType). */
const TOKEN_TYPE = { NORMAL: 1, CONTROL: 3, UNUSED: 5, BYTE: 6 } as const;

/** The pre-tokenizer llama.cpp applies to a byte-level BPE tokenizer of each architecture. */
const BYTE_LEVEL_PRE: Record<string, string> = { qwen2: 'qwen2', qwen3: 'qwen2', llama: 'llama-bpe' };

/** The score of every token: minus the rank of the first merge that makes it, or minus the merge count. */
function mergeScores(tokens: readonly string[], merges: readonly [string, string][]): Float32Array {
  const rank = new Map<string, number>();
  merges.forEach(([a, b], r) => {
    if (!rank.has(a + b)) rank.set(a + b, r);
  });
  return Float32Array.from(tokens, (t) => -(rank.get(t) ?? merges.length));
}

function tokenTypes(tokens: readonly string[], tokenizerSize: number, isSpecial: (id: number) => boolean): Int32Array {
  return Int32Array.from(tokens, (t, id) => {
    if (id >= tokenizerSize) return TOKEN_TYPE.UNUSED;
    if (isSpecial(id)) return TOKEN_TYPE.CONTROL;
    return /^<0x[0-9A-Fa-f]{2}>$/.test(t) ? TOKEN_TYPE.BYTE : TOKEN_TYPE.NORMAL;
  });
}

/** tokenizer_config.json's chat_template string, else chat_template.jinja, else none. */
function chatTemplate(dir: string, config: Record<string, unknown>): string | undefined {
  if (typeof config.chat_template === 'string') return config.chat_template;
  const jinja = path.join(dir, 'chat_template.jinja');
  return fs.existsSync(jinja) ? readTextFile(jinja) : undefined;
}

/**
 * The tokenizer metadata of model directory `dir` for a GGUF of `architecture` with `vocabSize` token rows (the
 * embedding's rows, config.json's vocab_size), in the converter's key order.
 */
export function ggufTokenizerMetadata(
  dir: string,
  bpe: BpeConventionsOf,
  architecture: string,
  vocabSize: number,
): Map<string, GgufValue> {
  const vocab = readTokenizerVocabulary(dir, bpe);
  const file = path.join(dir, fs.existsSync(path.join(dir, 'tokenizer.json')) ? 'tokenizer.json' : 'vocab.json');
  if (vocab.kind === 'other') {
    throw new InputError(
      file,
      'model',
      'is not a BPE tokenizer (byte fallback or byte-level); GGUF export writes those',
    );
  }
  const hole = vocab.tokens.indexOf(undefined);
  if (hole >= 0) throw new InputError(file, 'vocabulary', `has no token for id ${hole} (GGUF needs one for every id)`);
  const tokenizerSize = vocab.tokens.length;
  const tokens = [...(vocab.tokens as string[])];
  for (let id = tokenizerSize; id < vocabSize; id++) tokens.push(`[PAD${id}]`);
  const byteFallback = vocab.kind === 'bpe-byte-fallback';
  const m = new Map<string, GgufValue>([
    ['tokenizer.ggml.model', { type: 'STRING', value: byteFallback ? 'llama' : 'gpt2' }],
    [
      'tokenizer.ggml.pre',
      { type: 'STRING', value: byteFallback ? 'default' : (BYTE_LEVEL_PRE[architecture] ?? 'default') },
    ],
    ['tokenizer.ggml.tokens', { type: 'ARRAY', of: 'STRING', value: tokens }],
  ]);
  if (byteFallback) {
    const scores = mergeScores(tokens, vocab.merges).map((s, id) => (id < tokenizerSize ? s : -1000));
    m.set('tokenizer.ggml.scores', { type: 'ARRAY', of: 'FLOAT32', value: scores });
  }
  m.set('tokenizer.ggml.token_type', {
    type: 'ARRAY',
    of: 'INT32',
    value: tokenTypes(tokens, tokenizerSize, (id) => vocab.special.has(id)),
  });
  if (!byteFallback) {
    m.set('tokenizer.ggml.merges', { type: 'ARRAY', of: 'STRING', value: vocab.merges.map(([a, b]) => `${a} ${b}`) });
  }
  const text = readTokenizer(dir, bpe);
  const config = fs.existsSync(path.join(dir, 'tokenizer_config.json'))
    ? readJsonObject(path.join(dir, 'tokenizer_config.json'))
    : {};
  const pad = tokenContent(config.pad_token);
  const ids: [string, number | null][] = [
    ['bos', text.bosTokenId],
    ['eos', text.eosTokenId],
    ['unknown', vocab.unkTokenId],
    ['padding', pad === null ? null : tokens.indexOf(pad)],
  ];
  for (const [kind, id] of ids) {
    if (id !== null && id >= 0) m.set(`tokenizer.ggml.${kind}_token_id`, { type: 'UINT32', value: id });
  }
  const sample = text.encode('a');
  m.set('tokenizer.ggml.add_bos_token', {
    type: 'BOOL',
    value: text.bosTokenId !== null && sample[0] === text.bosTokenId,
  });
  m.set('tokenizer.ggml.add_eos_token', {
    type: 'BOOL',
    value: text.eosTokenId !== null && sample[sample.length - 1] === text.eosTokenId,
  });
  const template = chatTemplate(dir, config);
  if (template !== undefined) m.set('tokenizer.chat_template', { type: 'STRING', value: template });
  return m;
}
