/**
 * Training data (src/data): Alpaca instructions, causal-LM text, parquet, the seeded split, and the
 * batch stream, on the real alpaca-2k and TinyStories files with the TinyStories-656K tokenizer.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '../../src/autograd/ops/loss.js';
import { BatchStream, MEGA_BATCH, validationBatches, type Batch } from '../../src/data/batches.js';
import { loadDataset, type DataSpec, type Dataset, type Example } from '../../src/data/dataset.js';
import {
  ALPACA_PROMPT_NO_INPUT,
  instructionPrompt,
  readInstructionRecords,
  type InstructionRecord,
} from '../../src/data/instruct.js';
import { loadTokenizer, type TextTokenizer } from '../../src/models/tokenizer.js';
import { inputErrorMessage } from '../helpers/errors.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const alpacaFile = path.join(dataDir, 'instruct/alpaca/alpaca-2k.json');
const storiesFile = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-data-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let tok: TextTokenizer;
let records: InstructionRecord[];
beforeAll(() => {
  tok = loadTokenizer(tinyStoriesDir);
  records = readInstructionRecords(alpacaFile);
});

const spec = (over: Partial<DataSpec>): DataSpec => ({
  path: alpacaFile,
  format: 'alpaca',
  template: 'alpaca',
  maxLength: 1024,
  validation: { count: 0 },
  shuffleSeed: 1,
  packing: false,
  ...over,
});
const write = (name: string, text: string) => {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
};
const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
const leadingIgnored = (e: Example) => e.targets.findIndex((t) => t !== IGNORE_INDEX);

/** Every target is IGNORE_INDEX or the next id; the last position is always IGNORE_INDEX. */
function expectShiftedTargets(e: Example): void {
  expect(e.targets.length).toBe(e.ids.length);
  expect(e.targets[e.ids.length - 1]).toBe(IGNORE_INDEX);
  for (let t = 0; t + 1 < e.ids.length; t++) if (e.targets[t] !== IGNORE_INDEX) expect(e.targets[t]).toBe(e.ids[t + 1]);
}

describe('alpaca instruction data (alpaca-2k.json)', () => {
  let full: Dataset;
  beforeAll(() => {
    full = loadDataset(spec({}), tok);
  });

  it('has the 2,000 records; maxLength 1024 keeps all of them, in file order with no validation', () => {
    expect(records).toHaveLength(2000);
    expect(full.train).toHaveLength(2000);
    expect(full.validation).toHaveLength(0);
    expect(full.dropped).toBe(0);
    expect(full.source).toBe(path.resolve(alpacaFile));
    expect(full.tokens).toBe(full.train.reduce((n, e) => n + e.ids.length, 0));
    expect(Math.max(...full.train.map((e) => e.ids.length))).toBeLessThanOrEqual(1024);
  });

  it('a record with input: BOS, the template with instruction and input, the response, EOS', () => {
    const e = full.train[0];
    expect(records[0]).toEqual({
      instruction: 'Check if the following Facebook post is appropriate',
      input: 'I think my boss is the meanest person ever.',
      output: 'no',
    });
    const text = tok.decode(e.ids);
    expect(e.ids[0]).toBe(tok.bosTokenId);
    expect(e.ids[e.ids.length - 1]).toBe(tok.eosTokenId);
    // TinyStories' vocabulary has no "#": "### " decodes as "<unk> "
    expect(text).toContain(
      'paired with an input that provides further context. Write a response that appropriately completes the request.\n\n',
    );
    expect(text).toContain(
      'Instruction:\nCheck if the following Facebook post is appropriate\n\n<unk> Input:\nI think my boss is the meanest person ever.\n\n<unk> Response:\nno<|end_story|>',
    );
    const p = tok.encode(instructionPrompt(records[0], 'alpaca')).length;
    expect(tok.decode(e.ids.slice(p))).toBe('no<|end_story|>');
  });

  it('a record without input uses the no-input template', () => {
    expect(records[1].input).toBe('');
    expect(instructionPrompt(records[1], 'alpaca')).toBe(
      ALPACA_PROMPT_NO_INPUT.replace('{instruction}', records[1].instruction),
    );
    const text = tok.decode(full.train[1].ids);
    expect(text).toContain('Below is an instruction that describes a task. Write a response');
    expect(text).not.toContain('Input:');
    expect(text).toContain(`Instruction:\n${records[1].instruction}\n\n<unk> Response:\n`);
  });

  it("targets ignore exactly the prompt: the first P-1 positions (P = the prompt's own token count), then the response", () => {
    for (const i of [0, 1, 2, 500, 1999]) {
      const e = full.train[i];
      const p = tok.encode(instructionPrompt(records[i], 'alpaca')).length;
      expect(leadingIgnored(e)).toBe(p - 1);
      expect(e.targets[p - 1]).toBe(e.ids[p]);
      // after the prompt, every position but the last has a target
      expect(e.targets.slice(p - 1, -1).every((t) => t !== IGNORE_INDEX)).toBe(true);
    }
    full.train.forEach(expectShiftedTargets);
  });

  it("template 'none': instruction and input on their own lines, then the output", () => {
    const r = records[0];
    expect(instructionPrompt(r, 'none')).toBe(`${r.instruction}\n${r.input}\n`);
    expect(instructionPrompt(records[1], 'none')).toBe(`${records[1].instruction}\n`);
    const file = write('none.jsonl', jsonl([r]));
    const e = loadDataset(spec({ path: file, template: 'none' }), tok).train[0];
    expect(Array.from(e.ids)).toEqual([...tok.encode(`${r.instruction}\n${r.input}\nno`), tok.eosTokenId]);
    expect(leadingIgnored(e)).toBe(tok.encode(`${r.instruction}\n${r.input}\n`).length - 1);
  });

  it('maxLength 128: truncated counts the cut examples (length 128, no EOS) and those whose prompt fills it (dropped)', () => {
    const cut = loadDataset(spec({ maxLength: 128 }), tok);
    expect(cut.train.length + cut.dropped).toBe(2000);
    expect(cut.train.every((e) => e.ids.length <= 128)).toBe(true);
    const cutKept = cut.train.filter((e) => e.ids.length === 128 && e.ids[127] !== tok.eosTokenId).length;
    expect(cut.truncated).toBe(cutKept + cut.dropped);
    expect(cut.truncated).toBe(full.train.filter((e) => e.ids.length > 128).length);
    expect(cut.truncated).toBeGreaterThan(100);
    cut.train.forEach((e) => expect(leadingIgnored(e)).toBeGreaterThanOrEqual(0));
  });

  it('truncation on crafted records: exact counts, a cut example keeps the first maxLength ids', () => {
    const long = {
      instruction: 'Tell a story.',
      input: '',
      output: 'Once upon a time there was a little girl. '.repeat(20),
    };
    const short = { instruction: 'Say hi.', input: '', output: 'Hi.' };
    const file = write('cut.jsonl', jsonl([long, short, long]));
    const ds = loadDataset(spec({ path: file, maxLength: 100 }), tok);
    expect(ds.truncated).toBe(2);
    const fullIds = (r: InstructionRecord) => [
      ...tok.encode(instructionPrompt(r, 'alpaca') + r.output),
      tok.eosTokenId,
    ];
    expect(ds.train.map((e) => Array.from(e.ids))).toEqual([
      fullIds(long).slice(0, 100),
      fullIds(short),
      fullIds(long).slice(0, 100),
    ]);
    expect(fullIds(long).length).toBeGreaterThan(100);
    expect(fullIds(short).length).toBeLessThan(100);
  });
});

describe('the validation split', () => {
  let subset: string;
  beforeAll(() => {
    subset = write('subset.json', JSON.stringify(records.slice(0, 300)));
  });

  it('is deterministic: the same spec and file give the same split; another seed another split', () => {
    const a = loadDataset(spec({ path: subset, validation: { fraction: 0.1 }, shuffleSeed: 7 }), tok);
    const b = loadDataset(spec({ path: subset, validation: { fraction: 0.1 }, shuffleSeed: 7 }), tok);
    const c = loadDataset(spec({ path: subset, validation: { fraction: 0.1 }, shuffleSeed: 8 }), tok);
    expect(a.validation).toHaveLength(30); // ceil(0.1 * 300)
    expect(a.train).toHaveLength(270);
    expect(b.validation).toEqual(a.validation);
    expect(b.train).toEqual(a.train);
    expect(c.validation).not.toEqual(a.validation);
    const all = loadDataset(spec({ path: subset }), tok).train;
    // taken after a shuffle, not from either end of the file; both parts keep the file's order
    const index = (e: Example) =>
      all.findIndex((x) => x.ids.length === e.ids.length && x.ids.every((v, i) => v === e.ids[i]));
    const held = a.validation.map(index);
    expect(held.every((i, k) => k === 0 || i > held[k - 1])).toBe(true);
    expect(held).not.toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(held).not.toEqual(Array.from({ length: 30 }, (_, i) => 270 + i));
    expect(held[29] - held[0]).toBeGreaterThan(150);
  });

  it('a count takes exactly that many', () => {
    const ds = loadDataset(spec({ path: subset, validation: { count: 12 } }), tok);
    expect([ds.train.length, ds.validation.length]).toEqual([288, 12]);
  });
});

describe('causal-LM text', () => {
  const lines = () =>
    fs
      .readFileSync(storiesFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');

  it("packing: the TinyStories sample in blocks of maxLength, every target valid but each block's last", () => {
    const ds = loadDataset(spec({ path: storiesFile, format: 'text', maxLength: 128, packing: true }), tok);
    const total = lines().reduce((n, l) => n + tok.encode(l).length + 1, 0);
    expect(ds.train.length).toBe(Math.floor(total / 128));
    expect(ds.truncated).toBe(0);
    expect(ds.tokens).toBe(128 * ds.train.length);
    for (const e of ds.train) {
      expect(e.ids.length).toBe(128);
      expect(leadingIgnored(e)).toBe(0);
      expect(e.targets.filter((t) => t === IGNORE_INDEX)).toHaveLength(1);
      expectShiftedTargets(e);
    }
    const firstLine = lines()[0];
    expect(Array.from(ds.train[0].ids)).toEqual(Array.from(tok.encode(firstLine).slice(0, 128)));
    expect(ds.train[0].ids[0]).toBe(tok.bosTokenId);
    // documents are separated by EOS then the next one's BOS
    const eos = ds.train
      .flatMap((e) => Array.from(e.ids))
      .flatMap((id, i, all) => (id === tok.eosTokenId ? [all[i + 1]] : []));
    expect(eos.slice(0, -1).every((next) => next === tok.bosTokenId)).toBe(true);
    const split = loadDataset(
      spec({ path: storiesFile, format: 'text', maxLength: 128, packing: true, validation: { count: 2 } }),
      tok,
    );
    expect([split.train.length, split.validation.length]).toEqual([ds.train.length - 2, 2]);
  });

  it('without packing: one example per non-empty line, cut to maxLength and counted', () => {
    const docs = lines();
    const ds = loadDataset(spec({ path: storiesFile, format: 'text', maxLength: 256, packing: false }), tok);
    expect(ds.train).toHaveLength(docs.length);
    expect(ds.truncated).toBe(docs.filter((l) => tok.encode(l).length + 1 > 256).length);
    expect(ds.truncated).toBeGreaterThan(0);
    const short = docs.findIndex((l) => tok.encode(l).length + 1 <= 256);
    if (short >= 0) expect(Array.from(ds.train[short].ids)).toEqual([...tok.encode(docs[short]), tok.eosTokenId]);
    ds.train.forEach(expectShiftedTargets);
  });

  it('JSON lines with a text field', () => {
    const docs = ['Tom had a red ball.', 'Sue liked to sing. She sang all day.', 'The end.'];
    const file = write('docs.jsonl', jsonl(docs.map((text) => ({ text, id: 1 }))));
    const ds = loadDataset(spec({ path: file, format: 'jsonl-text' }), tok);
    expect(ds.train.map((e) => Array.from(e.ids))).toEqual(docs.map((d) => [...tok.encode(d), tok.eosTokenId]));
    const packed = loadDataset(spec({ path: file, format: 'jsonl-text', maxLength: 8, packing: true }), tok);
    const ids = docs.flatMap((d) => [...tok.encode(d), tok.eosTokenId!]);
    expect(packed.train.map((e) => Array.from(e.ids))).toEqual(
      Array.from({ length: Math.floor(ids.length / 8) }, (_, i) => ids.slice(8 * i, 8 * i + 8)),
    );
  });
});

/**
 * A minimal parquet writer for the tests (hyparquet only reads, hyparquet-writer is not a dependency):
 * one row group of REQUIRED UTF8 BYTE_ARRAY columns, one uncompressed PLAIN v1 data page each, page
 * headers and footer in the Thrift compact protocol (field header = delta << 4 | type; zigzag varints).
 */
function writeParquet(file: string, columns: Record<string, string[]>): void {
  const out: number[] = [];
  const push = (b: ArrayLike<number>) => {
    for (let i = 0; i < b.length; i++) out.push(b[i]);
  };
  const u32 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24];
  const utf8 = (s: string) => new TextEncoder().encode(s);
  const varint = (n: number) => {
    for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80);
    out.push(n);
  };
  const zigzag = (n: number) => varint(n >= 0 ? 2 * n : -2 * n - 1);
  const lastId = [0];
  const field = (id: number, type: number) => {
    out.push(((id - lastId[lastId.length - 1]) << 4) | type);
    lastId[lastId.length - 1] = id;
  };
  const struct = (body: () => void) => {
    lastId.push(0);
    body();
    out.push(0);
    lastId.pop();
  };
  const i32 = (id: number, v: number) => {
    field(id, 5);
    zigzag(v);
  };
  const i64 = (id: number, v: number) => {
    field(id, 6);
    zigzag(v);
  };
  const bin = (s: string) => {
    const b = utf8(s);
    varint(b.length);
    push(b);
  };
  const str = (id: number, s: string) => {
    field(id, 8);
    bin(s);
  };
  const sub = (id: number, body: () => void) => {
    field(id, 12);
    struct(body);
  };
  const list = (id: number, type: number, n: number, each: (i: number) => void) => {
    field(id, 9);
    out.push((n << 4) | type);
    for (let i = 0; i < n; i++) each(i);
  };
  const [STRUCT, I32, BINARY, BYTE_ARRAY, PLAIN, RLE] = [12, 5, 8, 6, 0, 3];

  push(utf8('PAR1'));
  const names = Object.keys(columns);
  const rows = columns[names[0]].length;
  const chunks = names.map((name) => {
    const values = columns[name].flatMap((s) => [...u32(utf8(s).length), ...utf8(s)]);
    const offset = out.length;
    struct(() => {
      // PageHeader: DATA_PAGE, sizes, DataPageHeader
      i32(1, 0);
      i32(2, values.length);
      i32(3, values.length);
      sub(5, () => {
        i32(1, rows);
        i32(2, PLAIN);
        i32(3, RLE);
        i32(4, RLE);
      });
    });
    push(values);
    return { name, offset, size: out.length - offset };
  });
  const footer = out.length;
  struct(() => {
    // FileMetaData
    i32(1, 1);
    list(2, STRUCT, names.length + 1, (i) =>
      struct(() => {
        if (i === 0) {
          str(4, 'schema');
          i32(5, names.length);
        } else {
          i32(1, BYTE_ARRAY);
          i32(3, 0);
          str(4, names[i - 1]);
          i32(6, 0);
        } // REQUIRED, UTF8
      }),
    );
    i64(3, rows);
    list(4, STRUCT, 1, () =>
      struct(() => {
        // RowGroup
        list(1, STRUCT, chunks.length, (c) =>
          struct(() => {
            // ColumnChunk
            i64(2, chunks[c].offset);
            sub(3, () => {
              // ColumnMetaData
              i32(1, BYTE_ARRAY);
              list(2, I32, 2, (k) => zigzag([PLAIN, RLE][k]));
              list(3, BINARY, 1, () => bin(chunks[c].name));
              i32(4, 0);
              i64(5, rows);
              i64(6, chunks[c].size);
              i64(7, chunks[c].size);
              i64(9, chunks[c].offset);
            });
          }),
        );
        i64(
          2,
          chunks.reduce((n, c) => n + c.size, 0),
        );
        i64(3, rows);
      }),
    );
  });
  push(u32(out.length - footer));
  push(utf8('PAR1'));
  fs.writeFileSync(file, Uint8Array.from(out));
}

describe('parquet', () => {
  it('a text column: its rows are the documents', () => {
    const docs = ['Tom had a red ball.', 'Sue liked to sing.', 'The end.'];
    const file = path.join(tmp, 'text.parquet');
    writeParquet(file, { id: ['a', 'b', 'c'], text: docs });
    const ds = loadDataset(spec({ path: file, format: 'parquet' }), tok);
    expect(ds.train.map((e) => Array.from(e.ids))).toEqual(docs.map((d) => [...tok.encode(d), tok.eosTokenId]));
  });

  it('instruction / input / output columns: the same examples as the alpaca JSON', () => {
    const rs = records.slice(0, 5);
    const file = path.join(tmp, 'instruct.parquet');
    writeParquet(file, {
      instruction: rs.map((r) => r.instruction),
      input: rs.map((r) => r.input),
      output: rs.map((r) => r.output),
    });
    const fromParquet = loadDataset(spec({ path: file, format: 'parquet' }), tok);
    const fromJson = loadDataset(spec({ path: write('five.json', JSON.stringify(rs)) }), tok);
    expect(fromParquet.train).toEqual(fromJson.train);
  });

  it('a parquet file without usable columns, and a file that is not parquet', () => {
    const file = path.join(tmp, 'other.parquet');
    writeParquet(file, { question: ['q'], answer: ['a'] });
    expect(inputErrorMessage(() => loadDataset(spec({ path: file, format: 'parquet' }), tok))).toBe(
      `${file}: columns: found question, answer; expected a "text" column, or "instruction" and "output" (+ optional "input")`,
    );
    expect(inputErrorMessage(() => loadDataset(spec({ path: alpacaFile, format: 'parquet' }), tok))).toBe(
      `${alpacaFile}: file: not a parquet file (no "PAR1" magic at its start and end); expected format parquet`,
    );
  });
});

describe('bad input', () => {
  const message = (over: Partial<DataSpec>) => inputErrorMessage(() => loadDataset(spec(over), tok));

  it('a missing file, in every format', () => {
    const file = path.join(tmp, 'nope.json');
    for (const format of ['alpaca', 'jsonl-text', 'text', 'parquet'] as const)
      expect(message({ path: file, format })).toBe(`${file}: file: not found`);
  });

  it('unreadable JSON: the array file, and the line of a JSON-lines file', () => {
    expect(message({ path: write('bad.json', '[{"instruction": "a", "output": "b"},') })).toMatch(
      /bad\.json: file: not valid JSON/,
    );
    const lines = write('bad.jsonl', '{"instruction": "a", "output": "b"}\n\n{"instruction": "a", \n');
    expect(message({ path: lines })).toMatch(new RegExp(`^${lines}: line 3: not valid JSON`));
    const text = write('bad-text.jsonl', '{"text": "a"}\n{"text": 3}\n');
    expect(message({ path: text, format: 'jsonl-text' })).toBe(
      `${text}: line 2: expected an object with a string "text" field`,
    );
  });

  it('records missing instruction or output, or with a non-string field, by index or line', () => {
    const file = write(
      'missing.json',
      JSON.stringify([
        { instruction: 'a', output: 'b' },
        { instruction: 'a', input: 'x' },
      ]),
    );
    expect(message({ path: file })).toBe(
      `${file}: index 1: missing "output"; expected an object with string "instruction" and "output" fields`,
    );
    const noInstr = write('noinstr.jsonl', jsonl([{ input: 'x', output: 'b' }]));
    expect(message({ path: noInstr })).toBe(
      `${noInstr}: line 1: missing "instruction"; expected an object with string "instruction" and "output" fields`,
    );
    const nonString = write(
      'num.json',
      JSON.stringify([
        { instruction: 'a', input: 'x', output: 'b' },
        { instruction: 'a', input: 5, output: 'b' },
      ]),
    );
    expect(message({ path: nonString })).toBe(`${nonString}: index 1: "input" is a number, expected a string`);
    const arr = write('arr.json', JSON.stringify([{ instruction: ['a'], output: 'b' }]));
    expect(message({ path: arr })).toBe(`${arr}: index 0: "instruction" is an array, expected a string`);
    const notObject = write('str.json', JSON.stringify(['a']));
    expect(message({ path: notObject })).toMatch(/str\.json: index 0: expected an object/);
    const object = write('obj.json', JSON.stringify({ instruction: 'a', output: 'b' }, null, 2));
    expect(message({ path: object })).toBe(
      `${object}: file: is one JSON object; expected a JSON array of records or one record per line`,
    );
    const scalar = write('scalar.json', '[1]');
    expect(message({ path: scalar })).toMatch(/scalar\.json: index 0: expected an object/);
  });

  it('an empty dataset: no records, no documents, too short for one block, nothing left after cutting', () => {
    const empty = write('empty.json', '[]');
    expect(message({ path: empty })).toBe(
      `${empty}: data: empty dataset: no examples (the file has no instruction records)`,
    );
    const blank = write('blank.txt', '\n\n  \n');
    expect(message({ path: blank, format: 'text' })).toBe(
      `${blank}: data: empty dataset: no examples (the file has no documents)`,
    );
    const tiny = write('tiny.txt', 'Tom had a ball.\n');
    expect(message({ path: tiny, format: 'text', packing: true, maxLength: 512 })).toBe(
      `${tiny}: data: empty dataset: no examples (its 1 documents have fewer tokens than one block of maxLength 512)`,
    );
    const one = write('one.json', JSON.stringify(records.slice(0, 1)));
    expect(message({ path: one, maxLength: 8 })).toBe(
      `${one}: data: empty dataset: no examples (none of its 1 instruction records has a token to train on within maxLength 8)`,
    );
  });

  it('validation larger than the data, or taking all of it', () => {
    const three = write('three.json', JSON.stringify(records.slice(0, 3)));
    expect(message({ path: three, validation: { count: 4 } })).toBe(
      `${three}: validation: 4 examples asked for, larger than the data (3 examples)`,
    );
    expect(message({ path: three, validation: { count: 3 } })).toBe(
      `${three}: validation: takes all 3 examples: no training examples left after the split`,
    );
    expect(message({ path: three, validation: { fraction: 0.9 } })).toMatch(
      /no training examples left after the split/,
    );
  });

  it('a nonsensical spec is a programming error (RangeError), not an InputError', () => {
    expect(() => loadDataset(spec({ maxLength: 1 }), tok)).toThrow(RangeError);
    expect(() => loadDataset(spec({ validation: { count: -1 } }), tok)).toThrow(RangeError);
    expect(() => loadDataset(spec({ validation: { fraction: Number.NaN } }), tok)).toThrow(RangeError);
  });
});

describe('BatchStream', () => {
  const example = (id: number, length: number): Example => {
    const ids = Int32Array.from({ length }, (_, t) => id * 100 + t);
    const targets = Int32Array.from({ length }, (_, t) => (t === 0 || t + 1 === length ? IGNORE_INDEX : ids[t + 1]));
    return { ids, targets };
  };
  const examples = Array.from({ length: 10 }, (_, i) => example(i + 1, 2 + ((i * 7) % 9)));
  const take = (s: BatchStream, n: number) => Array.from({ length: n }, () => s.next());
  const firstIds = (b: Batch) => Array.from({ length: b.batch }, (_, r) => b.ids[r * b.seq]);

  it('right-pads to the longest example with padId; pad targets ignored; lossTokens counted', () => {
    const [a, b] = [example(1, 3), example(2, 5)];
    const [batch] = validationBatches([a, b], 2, 7);
    expect([batch.batch, batch.seq]).toEqual([2, 5]);
    expect(Array.from(batch.ids)).toEqual([100, 101, 102, 7, 7, 200, 201, 202, 203, 204]);
    expect(Array.from(batch.targets)).toEqual([-100, 102, -100, -100, -100, -100, 202, 203, 204, -100]);
    expect(batch.lossTokens).toBe(4);
  });

  it('every example once per epoch (last micro-batch smaller), epochs reshuffled, same seed same batches', () => {
    const s = new BatchStream(examples, { microBatch: 3, seed: 5, groupByLength: false, padId: 0 });
    const epoch0 = take(s, 4);
    expect(epoch0.map((b) => b.batch)).toEqual([3, 3, 3, 1]);
    expect(s.epoch).toBe(1);
    expect(s.state()).toEqual({ epoch: 1, position: 0 });
    const epoch1 = take(s, 4);
    const ids = (bs: Batch[]) => bs.flatMap(firstIds);
    expect(ids(epoch0).sort((x, y) => x - y)).toEqual(examples.map((e) => e.ids[0]));
    expect(ids(epoch1).sort((x, y) => x - y)).toEqual(examples.map((e) => e.ids[0]));
    expect(ids(epoch1)).not.toEqual(ids(epoch0));
    const again = new BatchStream(examples, { microBatch: 3, seed: 5, groupByLength: false, padId: 0 });
    expect(take(again, 8)).toEqual([...epoch0, ...epoch1]);
    const other = new BatchStream(examples, { microBatch: 3, seed: 6, groupByLength: false, padId: 0 });
    expect(ids(take(other, 4))).not.toEqual(ids(epoch0));
  });

  it('resumes exactly: 7 batches, save, 5 more; a new stream restored there gives the same 5', () => {
    for (const groupByLength of [false, true]) {
      const options = { microBatch: 3, seed: 11, groupByLength, padId: 0 };
      const s = new BatchStream(examples, options);
      take(s, 7);
      const saved = s.state();
      expect(saved).toEqual({ epoch: 1, position: 9 });
      const next5 = take(s, 5);
      const resumed = new BatchStream(examples, options);
      resumed.restore(JSON.parse(JSON.stringify(saved)));
      expect(resumed.epoch).toBe(1);
      expect(take(resumed, 5)).toEqual(next5);
    }
    expect(() =>
      new BatchStream(examples, { microBatch: 3, seed: 1, groupByLength: false, padId: 0 }).restore({
        epoch: 0,
        position: 10,
      }),
    ).toThrow(RangeError);
  });

  it('groupByLength sorts each mega-batch by length (longest first), cuts padding, stays deterministic', () => {
    const many = Array.from({ length: 500 }, (_, i) => example(i + 1, 2 + ((i * 37) % 61)));
    const options = { microBatch: 4, seed: 3, groupByLength: true, padId: 0 };
    const grouped = take(new BatchStream(many, options), 125);
    const plain = take(new BatchStream(many, { ...options, groupByLength: false }), 125);
    expect(take(new BatchStream(many, options), 125)).toEqual(grouped);
    const padded = (bs: Batch[]) => bs.reduce((n, b) => n + b.batch * b.seq, 0);
    expect(padded(grouped)).toBeLessThan(0.8 * padded(plain));
    const seqs = grouped.map((b) => b.seq);
    for (let m = 0; m < seqs.length; m += MEGA_BATCH) {
      const mega = seqs.slice(m, m + MEGA_BATCH);
      expect(mega).toEqual([...mega].sort((x, y) => y - x));
    }
    const served = (bs: Batch[]) => bs.flatMap(firstIds).sort((x, y) => x - y);
    expect(served(grouped)).toEqual(served(plain));
  });

  it('validationBatches: in order, no shuffle', () => {
    const bs = validationBatches(examples, 4, 0);
    expect(bs.map((b) => b.batch)).toEqual([4, 4, 2]);
    expect(bs.flatMap(firstIds)).toEqual(examples.map((e) => e.ids[0]));
  });
});
