/**
 * `wct quantize` end to end: an OWQ checkpoint of TinyStories-656K with the reference calibration windows
 * (golden table row "OWQ target_bit 3.1"), read back by `wct eval` / `wct generate`; bit-exact round trip
 * of the packed file; size and memory of a packed opt-125m-shaped model; and bad input.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  packedLayouts,
  readPackedLinear,
  readQuantConfig,
  writePackedCheckpoint,
} from '../../src/io/packed-checkpoint.js';
import { openCheckpoint } from '../../src/io/safetensors.js';
import { expectedTensorShapes, resolveTensorName } from '../../src/models/checkpoint-tensors.js';
import { readConfig } from '../../src/models/families/registry.js';
import { loadModel } from '../../src/models/load.js';
import type { PackedLinear } from '../../src/models/packed-linear.js';
import type { PackedWeight } from '../../src/native/packed.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const CALIB_TOKENS = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');
const TINYSTORIES_TEXT = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-quantize-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function json(r: ReturnType<typeof wct>) {
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('wct quantize on TinyStories-656K', () => {
  it('OWQ target_bit 3.1 with the reference windows: 2 weak columns everywhere, 3.169 bits, ppl 45.298 within 1%', () => {
    const out = path.join(tmp, 'owq3');
    const r = json(
      wct(
        [
          'quantize',
          '--model',
          tinyStoriesDir,
          '--method',
          'owq',
          '--wbits',
          '3',
          '--target-bit',
          '3.1',
          '--calib-tokens',
          CALIB_TOKENS,
          '--out',
          out,
          '--eval',
          TINYSTORIES_TEXT,
          '--json',
        ],
        300_000,
      ),
    );
    expect(Object.values(r.n_out)).toEqual([2, 2, 2, 2, 2, 2, 2]);
    expect(r.avg_bits.decoder_linear.toFixed(3)).toBe('3.169');
    expect(Math.abs(r.ppl[TINYSTORIES_TEXT] - 45.298) / 45.298).toBeLessThan(0.01);
    const qc = readQuantConfig(out);
    expect(qc.method).toBe('owq');
    expect(qc.calibration?.nsamples).toBe(128);
    expect(Object.keys(qc.n_out)).toHaveLength(14);
    // the written checkpoint is what `wct eval` and `wct generate` load
    const e = json(wct(['eval', '--model', out, '--data', TINYSTORIES_TEXT, '--json']));
    expect(e.ppl).toBeCloseTo(r.ppl[TINYSTORIES_TEXT], 6);
    const g = json(wct(['generate', '--model', out, '--max-new-tokens', '16', '--json']));
    expect(g.ids).toHaveLength(16);
  });

  it('--embed-bits 8: the token embedding packed per row (also the tied lm_head); ppl within 0.2% of the fp32-embedding run; round trip bit for bit', () => {
    const out = path.join(tmp, 'owq3-embed8');
    const r = json(
      wct(
        [
          'quantize',
          '--model',
          tinyStoriesDir,
          '--method',
          'owq',
          '--wbits',
          '3',
          '--target-bit',
          '3.1',
          '--calib-tokens',
          CALIB_TOKENS,
          '--embed-bits',
          '8',
          '--out',
          out,
          '--eval',
          TINYSTORIES_TEXT,
          '--json',
        ],
        300_000,
      ),
    );
    expect(r.embeddings).toEqual({ 'model.embed_tokens': 8 });
    const plain = json(wct(['eval', '--model', path.join(tmp, 'owq3'), '--data', TINYSTORIES_TEXT, '--json'])).ppl;
    expect(Math.abs(r.ppl[TINYSTORIES_TEXT] - plain) / plain).toBeLessThan(0.002);
    const layouts = packedLayouts(readQuantConfig(out));
    const ckpt = openCheckpoint(out);
    const shapes = expectedTensorShapes(readConfig(out));
    const packed = new Map(
      [...layouts].map(([name, layout]) => [name, readPackedLinear(ckpt, name, shapes.get(`${name}.weight`)!, layout)]),
    );
    ckpt.close();
    expect(packed.get('model.embed_tokens')?.bits).toBe(8);
    const again = path.join(tmp, 'owq3-embed8-again');
    writePackedCheckpoint(
      again,
      {
        sourceDir: out,
        storedName: resolveTensorName,
        weights: loadModel(out).parameters(),
        packed,
        quantConfig: readQuantConfig(out),
      },
      false,
    );
    expect(
      Buffer.compare(
        fs.readFileSync(path.join(out, 'model.safetensors')),
        fs.readFileSync(path.join(again, 'model.safetensors')),
      ),
    ).toBe(0);
  });

  it('round-trips the packed checkpoint bit for bit', () => {
    const out = path.join(tmp, 'owq3');
    const again = path.join(tmp, 'owq3-again');
    const model = loadModel(out);
    const packed = new Map<string, PackedWeight>();
    for (const [name, layer] of model.linears()) packed.set(name, (layer as PackedLinear).packed);
    const qc = readQuantConfig(out);
    writePackedCheckpoint(
      again,
      { sourceDir: out, storedName: resolveTensorName, weights: model.parameters(), packed, quantConfig: qc },
      false,
    );
    expect(
      Buffer.compare(
        fs.readFileSync(path.join(out, 'model.safetensors')),
        fs.readFileSync(path.join(again, 'model.safetensors')),
      ),
    ).toBe(0);
  });
});

describe('packed opt-125m-shaped model', () => {
  it('3-bit file is a fraction of the fp16 file; eval on it peaks below the fp32 model', () => {
    const fp16 = path.join(tmp, 'opt125m');
    const packed = path.join(tmp, 'opt125m-rtn3');
    expect(wct(['init-random', '--like', 'opt-125m', '--out', fp16, '--dtype', 'F16']).status).toBe(0);
    json(wct(['quantize', '--model', fp16, '--method', 'rtn', '--wbits', '3', '--out', packed, '--json'], 300_000));
    const size = (d: string) => fs.statSync(path.join(d, 'model.safetensors')).size;
    // token + position embeddings stay fp16 in both files; the decoder linears go from 16 bits to 3 (+ scales)
    const embeddingBytes = (50272 + 2050) * 768 * 2;
    expect((size(packed) - embeddingBytes) / (size(fp16) - embeddingBytes)).toBeLessThan(0.2);
    expect(size(packed)).toBeLessThan(0.5 * size(fp16));
    // with the token embedding (= the tied lm_head) packed at 8 bits too, the whole file is under 30%
    const packed8 = path.join(tmp, 'opt125m-rtn3-embed8');
    json(
      wct(
        [
          'quantize',
          '--model',
          fp16,
          '--method',
          'rtn',
          '--wbits',
          '3',
          '--embed-bits',
          '8',
          '--out',
          packed8,
          '--json',
        ],
        300_000,
      ),
    );
    expect(size(packed8) / size(fp16)).toBeLessThan(0.3);
    const text = path.join(tmp, 'slice.txt');
    fs.writeFileSync(text, fs.readFileSync(TINYSTORIES_TEXT, 'utf8').slice(0, 3000));
    const rss = (d: string) =>
      json(wct(['eval', '--model', d, '--data', text, '--seqlen', '128', '--json'], 300_000)).peak_rss_mib;
    const rssFp = rss(fp16);
    expect(rss(packed)).toBeLessThan(rssFp);
    expect(rss(packed8)).toBeLessThan(rssFp);
  });
});

describe('wct quantize rejects bad input with one line', () => {
  const base = ['quantize', '--model', tinyStoriesDir, '--calib-tokens', CALIB_TOKENS];
  const cases: [string, string[], RegExp][] = [
    ['unsupported bits', ['--wbits', '5', '--out', 'x'], /--wbits: expected 2, 3, 4 or 8, got 5/],
    ['unsupported embedding bits', ['--embed-bits', '3', '--out', 'x'], /--embed-bits: expected 4 or 8, got 3/],
    [
      'target_bit below wbits',
      ['--wbits', '4', '--target-bit', '3.5', '--out', 'x'],
      /--target-bit: expected at least --wbits \(4\)/,
    ],
    [
      'target_bit too high for the layers',
      ['--wbits', '3', '--target-bit', '12', '--out', 'x'],
      /target bit 12 is too high/,
    ],
    [
      'too few calibration windows',
      ['--method', 'gptq', '--nsamples', '500', '--out', 'x'],
      /windows: 128 windows, fewer than --nsamples 500/,
    ],
  ];
  for (const [what, args, message] of cases) {
    it(what, () => expect(expectOneLineError(wct([...base, ...args]))).toMatch(message));
  }

  it('an output directory that exists (unless --force)', () => {
    expect(expectOneLineError(wct([...base, '--method', 'rtn', '--out', tmp]))).toMatch(
      /--out: .* exists \(pass --force/,
    );
  });

  it('a calibration text with too few tokens', () => {
    const small = path.join(tmp, 'small.txt');
    fs.writeFileSync(small, 'Once upon a time there was a cat.');
    expect(
      expectOneLineError(
        wct([
          'quantize',
          '--model',
          tinyStoriesDir,
          '--method',
          'gptq',
          '--calib',
          small,
          '--out',
          path.join(tmp, 'y'),
        ]),
      ),
    ).toMatch(/small.txt: calib: no document has more than 512 tokens/);
  });

  it('a packed checkpoint with inconsistent shapes', () => {
    const out = path.join(tmp, 'owq3');
    const broken = path.join(tmp, 'broken');
    fs.cpSync(out, broken, { recursive: true });
    const qcFile = path.join(broken, 'quantization_config.json');
    const qc = JSON.parse(fs.readFileSync(qcFile, 'utf8'));
    qc.bits = 4; // the file holds 3-bit codes
    fs.writeFileSync(qcFile, JSON.stringify(qc));
    expect(expectOneLineError(wct(['eval', '--model', broken, '--data', TINYSTORIES_TEXT]))).toMatch(
      /model\.safetensors: .*qweight: U8 \[128,48\] does not match the config \(expected U8 \[128,64\]\)/,
    );
  });
});
