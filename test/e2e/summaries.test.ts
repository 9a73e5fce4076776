/**
 * `wct eval` and `wct quantize --eval` say which data and which metric their figures are, and print one summary
 * line per phase on stderr (no bars: stderr is no terminal here), with --json output on stdout pure JSON.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { wct } from '../helpers/cli.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const STORIES = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-summaries-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('command summaries', () => {
  it('wct eval names the data, the model and the metric', () => {
    const r = wct(['eval', '--model', tinyStoriesDir, '--data', STORIES, '--seqlen', '128']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^tinystories-valid-sample perplexity of ${tinyStoriesDir} \\(${STORIES}, 61 chunks of 128 tokens\\): \\d+\\.\\d{3}\\n$`,
      ),
    );
    expect(r.stderr).toMatch(
      /^evaluation tinystories-valid-sample: 61 chunks of 128 tokens in \d+\.\d s, perplexity \d+\.\d{3}\n$/,
    );
    const j = wct(['eval', '--model', tinyStoriesDir, '--data', STORIES, '--seqlen', '128', '--json']);
    expect(Object.keys(JSON.parse(j.stdout))).toEqual(['ppl', 'tokens', 'chunks', 'seqlen', 'peak_rss_mib']);
  });

  it('wct quantize --eval names the data and the model, and summarises sampling, quantization and evaluation', () => {
    const out = path.join(tmp, 'q');
    const r = wct([
      'quantize',
      '--model',
      tinyStoriesDir,
      '--method',
      'gptq',
      '--wbits',
      '4',
      '--nsamples',
      '2',
      '--seqlen',
      '64',
      '--out',
      out,
      '--eval',
      STORIES,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`^tinystories-valid-sample perplexity of the quantized model \\(${STORIES}\\): \\d+\\.\\d{3}$`, 'm'),
    );
    expect(r.stderr.split('\n').filter((l) => l !== '')).toEqual([
      expect.stringMatching(/^calibration sampling: 2 windows of 64 tokens from c4 in \d+\.\d s$/),
      expect.stringMatching(/^quantize: 2 blocks \(gptq, 4-bit\) in \d+\.\d s$/),
      expect.stringMatching(
        /^evaluation tinystories-valid-sample \(quantized\): \d+ chunks of 512 tokens in .*, perplexity /,
      ),
    ]);
  });
});
