/**
 * Tokenizers against independent references: the token counts of the reference runs in
 * golden/quant-tinystories-656k.md, the library's own whole-text encoding (for our exact piecewise
 * encoding of long texts), and OpenAI's GPT-2 BPE (js-tiktoken r50k_base) id for id.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { getEncoding } from 'js-tiktoken';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { sentencePieceCutter } from '../../src/io/tokenizer-split.js';
import { dataDir, optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

const read = (rel: string) => fs.readFileSync(path.join(dataDir, rel), 'utf8');
const wikitext = read('text/wikitext-2-raw/wiki.test.joined.txt');
const stories = read('text/tinystories/tinystories-valid-sample.txt');
const c4 = read('text/c4/c4-en-sample.jsonl')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l).text as string)
  .join(' ');
const gpt2Dir = path.join(dataDir, 'tokenizers/gpt2');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-io-tok-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
function dirWith(files: Record<string, string>): string {
  const dir = path.join(tmp, `d${counter++}`);
  fs.mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const count = (ids: Int32Array, id: number) => ids.reduce((n, x) => n + (x === id ? 1 : 0), 0);

describe('TinyStories-656K tokenizer.json', () => {
  const tok = loadTokenizer(tinyStoriesDir);

  it('special tokens and vocabulary size', () => {
    expect([tok.bosTokenId, tok.eosTokenId, tok.vocabSize]).toEqual([1, 2, 2048]);
  });

  it('the story sample is 7,921 tokens with one BOS, as in the reference runs', () => {
    const ids = tok.encode(stories);
    expect(ids.length).toBe(7921);
    expect(ids[0]).toBe(1);
    expect(count(ids, 1)).toBe(1);
    expect(tok.encode(stories, { addSpecialTokens: false }).length).toBe(7920);
  });

  it('WikiText-2 is 560,212 tokens of which 14,463 <unk>, as in the reference runs', () => {
    const ids = tok.encode(wikitext);
    expect(ids.length).toBe(560_212);
    expect(count(ids, 0)).toBe(14_463);
    expect(count(ids, 1)).toBe(1);
  });

  it('piecewise encoding equals the library encoding the whole text at once', () => {
    const json = JSON.parse(fs.readFileSync(path.join(tinyStoriesDir, 'tokenizer.json'), 'utf8'));
    const config = JSON.parse(fs.readFileSync(path.join(tinyStoriesDir, 'tokenizer_config.json'), 'utf8'));
    const reference = new Tokenizer(json, config);
    const cut = sentencePieceCutter(json, config)!;
    for (const sample of [wikitext.slice(0, 100_000), c4.slice(0, 100_000), stories, `  ${stories.slice(0, 9000)}  `]) {
      const pieces = cut(sample);
      expect(pieces.join('')).toBe(sample);
      expect(pieces.length).toBeGreaterThan(sample.length / 4096);
      expect(Array.from(tok.encode(sample))).toEqual(reference.encode(sample).ids);
      expect(Array.from(tok.encode(sample, { addSpecialTokens: false }))).toEqual(
        reference.encode(sample, { add_special_tokens: false }).ids,
      );
    }
  });

  it('a text containing an added token is encoded whole', () => {
    const json = JSON.parse(fs.readFileSync(path.join(tinyStoriesDir, 'tokenizer.json'), 'utf8'));
    const text = `${stories.slice(0, 5000)}<|end_story|>${stories.slice(5000, 10_000)}`;
    expect(sentencePieceCutter(json, {})!(text)).toEqual([text]);
    expect(Array.from(tok.encode(text))).toEqual(new Tokenizer(json, {}).encode(text).ids);
  });

  it('decode inverts encode on story text', () => {
    const text = stories.slice(0, 5000);
    const ids = tok.encode(text);
    expect(count(ids, 0)).toBe(0);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(text);
    expect(tok.decode(ids).startsWith('<|start_story|>')).toBe(true);
    expect(tok.decode([])).toBe('');
  });
});

describe('GPT-2 BPE from vocab.json + merges.txt', () => {
  const r50k = getEncoding('r50k_base');

  it.each([
    ['WikiText-2', wikitext],
    ['C4 sample', c4],
  ])('%s: opt-tiny-random = </s> + tiktoken r50k_base, id for id', (_, text) => {
    const tok = loadTokenizer(optTinyDir);
    const ids = tok.encode(text);
    expect(ids[0]).toBe(2);
    expect(Array.from(ids.subarray(1))).toEqual(r50k.encode(text));
  });

  it('tokenizers/gpt2 (no model config: GPT-2 adds no BOS) = tiktoken r50k_base', () => {
    const tok = loadTokenizer(gpt2Dir);
    expect([tok.bosTokenId, tok.eosTokenId, tok.vocabSize]).toEqual([50256, 50256, 50257]);
    expect(Array.from(tok.encode(wikitext))).toEqual(r50k.encode(wikitext));
  });

  it('OPT special tokens come from config.json; decode inverts encode byte for byte', () => {
    const tok = loadTokenizer(optTinyDir);
    expect([tok.bosTokenId, tok.eosTokenId]).toEqual([2, 2]);
    const text = c4.slice(0, 50_000);
    expect(tok.decode(tok.encode(text), { skipSpecialTokens: true })).toBe(text);
    expect(Array.from(tok.encode('Hello', { addSpecialTokens: false }))).toEqual([15496]);
  });

  it('tokenizer_config.json overrides the BOS choice', () => {
    const files = {
      'vocab.json': read('tokenizers/gpt2/vocab.json'),
      'merges.txt': read('tokenizers/gpt2/merges.txt'),
    };
    const tok = loadTokenizer(
      dirWith({
        ...files,
        'tokenizer_config.json': JSON.stringify({ bos_token: '<|endoftext|>', add_bos_token: true }),
      }),
    );
    expect(Array.from(tok.encode('Hello'))).toEqual([50256, 15496]);
  });
});

describe('bad tokenizer files are InputErrors naming the file', () => {
  function messageOf(dir: string): string {
    try {
      loadTokenizer(dir);
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      return (e as Error).message;
    }
    throw new Error('expected an InputError');
  }

  it('no tokenizer files at all', () => {
    const dir = dirWith({});
    expect(messageOf(dir)).toBe(
      `${dir}: tokenizer.json: not found (nor vocab.json + merges.txt); expected a Hugging Face tokenizer`,
    );
  });

  it('malformed or unusable tokenizer.json', () => {
    expect(messageOf(dirWith({ 'tokenizer.json': '{"model": ' }))).toMatch(/tokenizer\.json: file: not valid JSON/);
    expect(messageOf(dirWith({ 'tokenizer.json': '[]' }))).toMatch(/tokenizer\.json: file: expected a JSON object/);
    expect(messageOf(dirWith({ 'tokenizer.json': '{"model": {"type": "Nope"}}' }))).toMatch(
      /tokenizer\.json: file: not a usable tokenizer/,
    );
  });

  it('malformed tokenizer_config.json', () => {
    const dir = dirWith({
      'tokenizer.json': read('models/tinystories-656k/tokenizer.json'),
      'tokenizer_config.json': '{',
    });
    expect(messageOf(dir)).toMatch(/tokenizer_config\.json: file: not valid JSON/);
  });

  it('vocab.json without merges.txt, and malformed BPE files', () => {
    expect(messageOf(dirWith({ 'vocab.json': '{"a": 0}' }))).toMatch(/merges\.txt: file: not found$/);
    expect(messageOf(dirWith({ 'vocab.json': '["a"]', 'merges.txt': '' }))).toMatch(
      /vocab\.json: file: expected a JSON object/,
    );
    expect(messageOf(dirWith({ 'vocab.json': '{"a": -1}', 'merges.txt': '' }))).toMatch(
      /vocab\.json: "a": expected a non-negative integer id, got -1/,
    );
    expect(messageOf(dirWith({ 'vocab.json': '{"a": 0, "b": 1}', 'merges.txt': '#version: 0.2\na b c\n' }))).toMatch(
      /merges\.txt: line 2: expected two space-separated symbols, got "a b c"/,
    );
    expect(messageOf(dirWith({ 'vocab.json': '{"a": 0, "b": 1}', 'merges.txt': 'a b\n' }))).toMatch(
      /merges\.txt: line 1: merge result "ab" is not in vocab\.json/,
    );
  });
});

describe('tokenizer.json post_processor and ids against config.json', () => {
  const tinyJson = JSON.parse(read('models/tinystories-656k/tokenizer.json'));
  const tinyConfig = read('models/tinystories-656k/config.json');
  /** A TinyStories-656K tokenizer.json with `edit` applied, beside its config.json. */
  const tinyWith = (edit: (j: Record<string, unknown>) => void, config = tinyConfig) => {
    const j = structuredClone(tinyJson);
    edit(j);
    return dirWith({ 'tokenizer.json': JSON.stringify(j), 'config.json': config });
  };
  const postProcessor = (pp: unknown) => tinyWith((j) => (j.post_processor = pp));
  const errorOf = (dir: string) => {
    try {
      loadTokenizer(dir);
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      return (e as Error).message.slice(dir.length + 1);
    }
    throw new Error('expected an InputError');
  };
  const BOS = '<|start_story|>';

  it.each([
    [{ type: 'TemplateProcessing' }, 'tokenizer.json: post_processor.single: expected a list of pieces, got nothing'],
    [
      { type: 'TemplateProcessing', single: [{ Sequence: { id: 'C', type_id: 0 } }], pair: [] },
      'tokenizer.json: post_processor.single[0].Sequence.id: expected A or B, got "C"',
    ],
    [
      {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: 'nope', type_id: 0 } }],
        pair: [],
        special_tokens: {},
      },
      'tokenizer.json: post_processor.single[0].SpecialToken.id: "nope" is not one of special_tokens',
    ],
    [
      {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: BOS, type_id: 0 } }],
        pair: [],
        special_tokens: { [BOS]: { id: BOS, ids: [99999], tokens: [BOS] } },
      },
      `tokenizer.json: post_processor.special_tokens.${BOS}.ids[0]: 99999 is not the id of "${BOS}"`,
    ],
    [{ type: 'RobertaProcessing' }, 'tokenizer.json: post_processor.cls: expected [token, id], got nothing'],
    [
      { type: 'BertProcessing', cls: ['[CLS]', 101], sep: [BOS, 1] },
      'tokenizer.json: post_processor.cls[0]: "[CLS]" is not a token of the vocabulary',
    ],
    [{ type: 'Sequence' }, 'tokenizer.json: post_processor.processors: expected a list, got nothing'],
    [
      { type: 'Sequence', processors: [{ type: 'ByteLevel' }, { type: 'TemplateProcessing', single: [] }] },
      'tokenizer.json: post_processor.processors[1].pair: expected a list of pieces, got nothing',
    ],
  ])('a malformed post_processor %j is an InputError at load, not a TypeError when encoding', (pp, message) => {
    expect(errorOf(postProcessor(pp))).toBe(message);
  });

  it('a well-formed one loads and adds its tokens', () => {
    const tok = loadTokenizer(postProcessor({ type: 'BertProcessing', cls: [BOS, 1], sep: ['<|end_story|>', 2] }));
    const ids = Array.from(tok.encode('Once upon a time'));
    expect([ids[0], ids[ids.length - 1]]).toEqual([1, 2]);
  });

  it('token ids at or above config.json vocab_size are refused', () => {
    const small = JSON.stringify({ ...JSON.parse(tinyConfig), vocab_size: 1000 });
    expect(errorOf(tinyWith(() => undefined, small))).toMatch(
      /^tokenizer\.json: vocabulary: has token ids up to 2047, but .*config\.json says vocab_size 1000 \(ids must be below it\)$/,
    );
    const added = tinyWith((j) =>
      (j.added_tokens as unknown[]).push({ id: 5000, content: '<extra>', special: true, normalized: false }),
    );
    expect(errorOf(added)).toMatch(/^tokenizer\.json: vocabulary: has token ids up to 5000, but .*vocab_size 2048/);
    const gpt2 = dirWith({
      'vocab.json': read('tokenizers/gpt2/vocab.json'),
      'merges.txt': read('tokenizers/gpt2/merges.txt'),
      'config.json': read('models/opt-tiny-random/config.json').replace('50272', '50000'),
    });
    expect(errorOf(gpt2)).toMatch(/^vocab\.json: vocabulary: has token ids up to 50256, but .*vocab_size 50000/);
  });

  it('property: any post_processor either loads and encodes to ids below vocab_size, or is an InputError', () => {
    const piece = fc.oneof(
      fc.record({
        SpecialToken: fc.record({ id: fc.constantFrom(BOS, 'x', '<unk>'), type_id: fc.integer({ min: -1, max: 2 }) }),
      }),
      fc.record({ Sequence: fc.record({ id: fc.constantFrom('A', 'B', 'C'), type_id: fc.nat(2) }) }),
      fc.anything(),
    );
    const special = fc.dictionary(
      fc.constantFrom(BOS, 'x'),
      fc.record({
        id: fc.string(),
        ids: fc.array(fc.integer({ min: -1, max: 3000 }), { maxLength: 2 }),
        tokens: fc.array(fc.constantFrom(BOS, 'x', '<unk>'), { maxLength: 2 }),
      }),
    );
    const template = fc.record(
      {
        type: fc.constant('TemplateProcessing'),
        single: fc.array(piece, { maxLength: 3 }),
        pair: fc.array(piece, { maxLength: 3 }),
        special_tokens: special,
      },
      { requiredKeys: ['type'] },
    );
    const pair = fc.tuple(fc.constantFrom(BOS, '<unk>', 'x'), fc.integer({ min: 0, max: 3 }));
    const bert = fc.record(
      { type: fc.constantFrom('BertProcessing', 'RobertaProcessing'), cls: pair, sep: pair },
      { requiredKeys: ['type'] },
    );
    const pp = fc.oneof(
      template,
      bert,
      fc.record({ type: fc.constant('Sequence'), processors: fc.array(fc.oneof(template, bert), { maxLength: 2 }) }),
      fc.anything(),
    );
    fc.assert(
      fc.property(pp, (p) => {
        let tok: ReturnType<typeof loadTokenizer>;
        try {
          tok = loadTokenizer(postProcessor(p));
        } catch (e) {
          return e instanceof InputError;
        }
        const ids = tok.encode('Once upon a time');
        return ids.every((id) => Number.isInteger(id) && id >= 0 && id < 2048);
      }),
      { seed: 10, numRuns: 150 },
    );
  });
});
