/**
 * Exact piecewise encoding of long texts for SentencePiece-style BPE tokenizer.json files
 * (Llama 1/2, Mistral, TinyStories-656K): normalizer Prepend("▁") + Replace(" " -> "▁"), no
 * pre-tokenizer, so BPE runs over the whole normalized text as ONE word. @huggingface/tokenizers
 * needs ~20 s for the 1.3 MB WikiText-2 test text in one piece and ~5 s in pieces.
 *
 * Why a cut between characters a and b is exact:
 * - With no pre-tokenizer, BPE repeatedly merges the adjacent symbol pair of lowest rank. Every
 *   symbol it forms is a merge result, so a symbol spanning the cut would contain the string ab.
 *   If no merge result contains ab, nothing ever spans the cut; merges on either side then happen
 *   independently and in the same relative order (the library breaks rank ties by position), so
 *   BPE(left + right) = BPE(left) ++ BPE(right).
 * - a and b must be vocabulary tokens themselves, so neither side can end or start with <unk>
 *   (with fuse_unk, adjacent unknowns would fuse into one token across the cut).
 * - Replace maps characters one to one, so the test applies to the raw text with " " read as "▁".
 * - Prepend adds "▁" once, before the whole text: the first piece is encoded by the tokenizer as
 *   is (with its BOS), later pieces by a copy whose normalizer lacks the Prepend, without special
 *   tokens. So only the first piece gets the "▁" prefix and the BOS, as the whole text would.
 * - The library normalizes each span between added tokens (e.g. a literal "<unk>") separately, so
 *   a text containing one is encoded whole.
 */
import { Tokenizer } from '@huggingface/tokenizers';

/** Pieces are cut at the first safe boundary after this many characters. */
const PIECE_CHARS = 2048;

const REPLACE_SPACE = { type: 'Replace', pattern: { String: ' ' }, content: '▁' };

export type EncodeIds = (text: string, addSpecialTokens: boolean) => number[];

type Json = Record<string, unknown>;

/** `v` when it is a JSON object, else undefined. */
function asObject(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The exact tokenizer shape the argument above covers. */
function isSentencePieceBpe(json: Json, config: Json): boolean {
  const normalizer = asObject(json.normalizer);
  const postProcessor = asObject(json.post_processor);
  const normalizers = normalizer?.type === 'Sequence' ? normalizer.normalizers : null;
  const template = postProcessor?.single;
  return (
    asObject(json.model)?.type === 'BPE' &&
    json.pre_tokenizer == null &&
    Array.isArray(normalizers) &&
    normalizers.length === 2 &&
    sameJson(normalizers[0], { type: 'Prepend', prepend: '▁' }) &&
    sameJson(normalizers[1], REPLACE_SPACE) &&
    // special tokens only before the text: they all belong to the first piece
    (json.post_processor == null ||
      (postProcessor?.type === 'TemplateProcessing' && Array.isArray(template) && 'Sequence' in template.at(-1))) &&
    config.remove_space !== true &&
    config.do_lowercase_and_remove_accent !== true
  );
}

/** Every two-character string inside some merge result: the boundaries a cut must avoid. */
function pairsInMergeResults(merges: (string | [string, string])[]): Set<string> {
  const pairs = new Set<string>();
  for (const merge of merges) {
    const chars = Array.from(Array.isArray(merge) ? merge.join('') : merge.replace(' ', ''));
    for (let i = 1; i < chars.length; i++) pairs.add(chars[i - 1] + chars[i]);
  }
  return pairs;
}

function isSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdfff;
}

/** Splits `text` at safe boundaries into pieces of about PIECE_CHARS characters. */
function cutText(text: string, safeAt: (p: number) => boolean): string[] {
  const pieces: string[] = [];
  let start = 0;
  for (let p = PIECE_CHARS; p < text.length; p++) {
    if (!safeAt(p)) continue;
    pieces.push(text.slice(start, p));
    start = p;
    p += PIECE_CHARS - 1;
  }
  pieces.push(text.slice(start));
  return pieces;
}

/**
 * The function cutting a text into exactly-encodable pieces (joined, they give the text back), or
 * null when the tokenizer is not of the SentencePiece-BPE shape.
 */
export function sentencePieceCutter(json: Json, config: Json): ((text: string) => string[]) | null {
  if (!isSentencePieceBpe(json, config)) return null;
  // the BPE model's and added tokens' shapes as tokenizer.json has them (the library reads the same fields)
  const model = json.model as { merges: (string | [string, string])[]; vocab: Record<string, number> };
  const unsafePairs = pairsInMergeResults(model.merges);
  const vocab = new Set(Object.keys(model.vocab));
  const normalized = (c: string) => (c === ' ' ? '▁' : c);
  // compared after Replace, so both the raw and the normalized matches the library makes are seen
  const added = (json.added_tokens ?? []) as { content: string }[];
  const addedTokens = added.map((t) => t.content.replaceAll(' ', '▁'));
  return (text) => {
    if (text.length <= PIECE_CHARS) return [text];
    const replaced = text.replaceAll(' ', '▁');
    if (addedTokens.some((t) => replaced.includes(t))) return [text];
    return cutText(text, (p) => {
      if (isSurrogate(text.charCodeAt(p - 1)) || isSurrogate(text.charCodeAt(p))) return false;
      const [a, b] = [normalized(text[p - 1]), normalized(text[p])];
      return vocab.has(a) && vocab.has(b) && !unsafePairs.has(a + b);
    });
  };
}

/**
 * An encoder equivalent to `whole.encode` that encodes long texts in pieces, or null when the
 * tokenizer is not of the SentencePiece-BPE shape (such tokenizers encode whole).
 */
export function sentencePieceSplitEncoder(json: Json, config: Json, whole: Tokenizer): EncodeIds | null {
  const cut = sentencePieceCutter(json, config);
  if (cut === null) return null;
  const continuation = new Tokenizer({ ...json, normalizer: REPLACE_SPACE }, config);
  return (text, addSpecialTokens) => {
    const [first, ...rest] = cut(text);
    const ids = whole.encode(first, { add_special_tokens: addSpecialTokens }).ids;
    for (const piece of rest) {
      for (const id of continuation.encode(piece, { add_special_tokens: false }).ids) ids.push(id);
    }
    return ids;
  };
}
