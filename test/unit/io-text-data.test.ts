/** Evaluation texts: the named datasets checked against their published digests and counts. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadEvalText, sharedDataDir } from '../../src/io/text-data.js';
import { dataDir } from '../helpers/paths.js';
import { inputErrorMessage } from '../helpers/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-io-text-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.WCT_DATA_DIR;
});

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

describe('sharedDataDir', () => {
  it('is ../shared/data beside the package root, overridable with WCT_DATA_DIR', () => {
    expect(sharedDataDir()).toBe(dataDir);
    process.env.WCT_DATA_DIR = tmp;
    expect(sharedDataDir()).toBe(tmp);
  });
});

describe('loadEvalText', () => {
  it('wikitext2: the joined test rows, byte for byte (sha256 696cca6b..., rows joined with "\\n\\n")', () => {
    const { kind, text } = loadEvalText('wikitext2');
    expect(kind).toBe('wikitext2');
    expect(sha256(text).startsWith('696cca6b')).toBe(true);
    const rows = JSON.parse(
      fs.readFileSync(path.join(dataDir, 'text/wikitext-2-raw/wiki.test.rows.json'), 'utf8'),
    ) as string[];
    expect(rows).toHaveLength(4358);
    expect(text).toBe(rows.join('\n\n'));
  });

  it('c4: the 800 documents joined with " "', () => {
    const { kind, text } = loadEvalText('c4');
    expect(kind).toBe('c4');
    const lines = fs.readFileSync(path.join(dataDir, 'text/c4/c4-en-sample.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(800);
    const first = JSON.parse(lines[0]).text as string;
    const last = JSON.parse(lines[799]).text as string;
    expect(text.startsWith(`${first} ${JSON.parse(lines[1]).text}`)).toBe(true);
    expect(text.endsWith(` ${last}`)).toBe(true);
    expect(text.length).toBe(lines.reduce((n, l) => n + JSON.parse(l).text.length, 0) + 799);
  });

  it('named datasets follow WCT_DATA_DIR', () => {
    process.env.WCT_DATA_DIR = tmp;
    expect(inputErrorMessage(() => loadEvalText('wikitext2'))).toBe(
      `${path.join(tmp, 'text/wikitext-2-raw/wiki.test.joined.txt')}: file: not found`,
    );
  });

  it('a .txt or .raw path is read as is (TinyStories sample, sha256 9d644560...)', () => {
    const file = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
    expect(sha256(loadEvalText(file).text).startsWith('9d644560')).toBe(true);
    fs.writeFileSync(path.join(tmp, 'a.raw'), 'x\r\ny\n');
    expect(loadEvalText(path.join(tmp, 'a.raw'))).toEqual({
      kind: 'file',
      path: path.join(tmp, 'a.raw'),
      text: 'x\r\ny\n',
    });
  });

  it('a .jsonl path: text fields joined with " ", blank lines skipped', () => {
    const file = path.join(tmp, 'docs.jsonl');
    fs.writeFileSync(file, '{"text": "one", "url": "u"}\n\n{"text": "two\\nlines"}\n');
    expect(loadEvalText(file).text).toBe('one two\nlines');
  });

  it('bad inputs name the file and the line', () => {
    const file = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(file, '{"text": "ok"}\n{"text": 3}\n');
    expect(inputErrorMessage(() => loadEvalText(file))).toBe(
      `${file}: line 2: expected an object with a string "text" field`,
    );
    fs.writeFileSync(file, '{"text": "ok"}\n{"text": \n');
    expect(inputErrorMessage(() => loadEvalText(file))).toMatch(new RegExp(`^${file}: line 2: not valid JSON`));
    expect(inputErrorMessage(() => loadEvalText(path.join(tmp, 'missing.txt')))).toBe(
      `${path.join(tmp, 'missing.txt')}: file: not found`,
    );
    expect(inputErrorMessage(() => loadEvalText('wikitext103'))).toBe(
      'wikitext103: data: expected wikitext2, c4, or a path to a .txt, .raw or .jsonl file',
    );
  });
});
