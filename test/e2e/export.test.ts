/**
 * `wct export --format hf`: a packed checkpoint (OWQ 3-bit; GWQ-style with outliers) written dequantized as a plain
 * Hugging Face checkpoint. Checked independently of the exporter: every quantized linear's `<name>.weight` equals
 * the reference dequantization (src/native/packed-ref.ts) of the packed weight rounded to the dtype, bit for bit;
 * every other tensor equals the packed checkpoint's, byte for byte; config.json has no quantization_config; the
 * export loads and its perplexity is the packed model's within the dtype's rounding; --deltas bake tuned weak
 * columns in; the refusals are one line each.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f32ToBf16Bits, f32ToF16Bits } from '../../src/io/dtype.js';
import { MARKER_FILE } from '../../src/io/output-dir.js';
import { packedTensorNames, QUANT_CONFIG_FILE, readQuantConfig } from '../../src/io/packed-checkpoint.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { checkpointSha256, writeWeakDeltas } from '../../src/io/weak-deltas.js';
import { loadModel } from '../../src/models/load.js';
import { applyWeakDeltas, packedLinearsOf, weakColumnsOf } from '../../src/models/weak-deltas.js';
import type { PackedWeight } from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');
const CALIB_FLAGS = ['--calib-tokens', CALIB, '--nsamples', '16', '--seqlen', '128'];

let tmp: string;
let owq: string;
let gwq: string;
let text: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-export-'));
  owq = path.join(tmp, 'owq');
  gwq = path.join(tmp, 'gwq');
  for (const [out, flags] of [
    [owq, ['--method', 'owq', '--wbits', '3', '--target-bit', '3.1']],
    [gwq, ['--method', 'gwq', '--wbits', '3', '--group-size', '128']],
  ] as const) {
    const r = wct(['quantize', '--model', tinyStoriesDir, ...flags, ...CALIB_FLAGS, '--out', out]);
    expect(r.status, r.stderr).toBe(0);
  }
  text = path.join(tmp, 'slice.txt');
  fs.writeFileSync(
    text,
    fs.readFileSync(path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt'), 'utf8').slice(0, 4000),
  );
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function exportTo(args: string[]): void {
  const r = wct(['export', '--format', 'hf', ...args]);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^wrote .*: 14 weights of .* dequantized to (F16|BF16)\n$/);
}

function ppl(model: string): number {
  const r = wct(['eval', '--model', model, '--data', text, '--seqlen', '128', '--json']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout).ppl as number;
}

/** The packed weights of `dir` by linear name, with `deltas` loaded over them when given. */
function packedOf(dir: string, deltas?: string): Map<string, PackedWeight> {
  const model = loadModel(dir);
  if (deltas !== undefined) applyWeakDeltas(model, deltas, dir);
  return new Map([...packedLinearsOf(model)].map(([name, l]) => [name, l.packed]));
}

/**
 * The export in `out` of the packed checkpoint `dir` whose packed weights are `packed`: Ŵ (reference
 * dequantization) rounded to `dtype` as `<name>.weight`, the rest as stored, the model files copied.
 */
function checkExport(dir: string, out: string, dtype: 'F16' | 'BF16', packed: Map<string, PackedWeight>): void {
  const round = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
  const quantized = Object.keys(readQuantConfig(dir).n_out);
  expect([...packed.keys()].sort()).toEqual([...quantized].sort());
  expect(quantized.length).toBe(14);
  const packedNames = new Set(quantized.flatMap(packedTensorNames));
  const src = openSafetensors(path.join(dir, 'model.safetensors'));
  const dst = openSafetensors(path.join(out, 'model.safetensors'));
  try {
    const kept = src.names().filter((n) => !packedNames.has(n));
    expect(dst.names().sort()).toEqual([...kept, ...quantized.map((n) => `${n}.weight`)].sort());
    for (const name of kept) {
      expect(dst.info(name), name).toEqual(src.info(name));
      expect(Buffer.from(dst.readRaw(name)).equals(Buffer.from(src.readRaw(name))), name).toBe(true);
    }
    for (const [name, w] of packed) {
      const info = dst.info(`${name}.weight`);
      expect(info, name).toMatchObject({ dtype, shape: [w.rows, w.cols] });
      const raw = dst.readRaw(`${name}.weight`);
      const got = new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      const want = Uint16Array.from(pref.dequantize(w), round);
      let mismatches = 0;
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) mismatches++;
      expect(mismatches, name).toBe(0);
    }
  } finally {
    src.close();
    dst.close();
  }
  expect(fs.existsSync(path.join(out, QUANT_CONFIG_FILE))).toBe(false);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  expect(config).not.toHaveProperty('quantization_config');
  const { quantization_config: _, ...plain } = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  expect(config).toEqual(plain);
  for (const f of ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'])
    expect(fs.readFileSync(path.join(out, f), 'utf8'), f).toBe(fs.readFileSync(path.join(dir, f), 'utf8'));
  expect(JSON.parse(fs.readFileSync(path.join(out, MARKER_FILE), 'utf8')).command).toBe('wct export');
  // a plain checkpoint: our loader reads it as full precision (every linear dense)
  expect(packedLinearsOf(loadModel(out)).size).toBe(0);
}

describe('wct export --format hf', () => {
  it('F16 (the default) and BF16: Ŵ rounded to the dtype, the rest as stored; perplexity within the rounding', () => {
    const packed = packedOf(owq);
    // OWQ's weak columns are there to be exported
    expect([...packed.values()].every((w) => w.weakIdx.length > 0)).toBe(true);
    const packedPpl = ppl(owq);
    for (const [dtype, rel] of [
      ['F16', 1e-3],
      ['BF16', 1e-2],
    ] as const) {
      const out = path.join(tmp, `owq-${dtype}`);
      exportTo(['--model', owq, '--out', out, ...(dtype === 'F16' ? [] : ['--dtype', dtype])]);
      checkExport(owq, out, dtype, packed);
      const p = ppl(out);
      expect(Math.abs(p - packedPpl) / packedPpl, `${dtype}: ${p} vs ${packedPpl}`).toBeLessThan(rel);
    }
  });

  it('--deltas: the export equals the packed model with the deltas applied', () => {
    const deltas = path.join(tmp, 'weak_deltas.safetensors');
    const donor = loadModel(owq);
    for (const l of packedLinearsOf(donor).values())
      for (let i = 0; i < l.packed.weak.length; i++) l.packed.weak[i] *= 1.5;
    writeWeakDeltas(deltas, weakColumnsOf(donor), { baseSha256: checkpointSha256(owq), recipeHash: 'x', step: 1 });
    const out = path.join(tmp, 'owq-tuned');
    exportTo(['--model', owq, '--deltas', deltas, '--out', out]);
    const tuned = packedOf(owq, deltas);
    checkExport(owq, out, 'F16', tuned);
    // the deltas changed the weights written
    const plain = openSafetensors(path.join(tmp, 'owq-F16', 'model.safetensors'));
    const mine = openSafetensors(path.join(out, 'model.safetensors'));
    try {
      const name = `${[...tuned.keys()][0]}.weight`;
      expect(Buffer.from(mine.readRaw(name)).equals(Buffer.from(plain.readRaw(name)))).toBe(false);
    } finally {
      plain.close();
      mine.close();
    }
    const r = wct(['eval', '--model', owq, '--deltas', deltas, '--data', text, '--seqlen', '128', '--json']);
    const tunedPpl = JSON.parse(r.stdout).ppl as number;
    expect(Math.abs(ppl(out) - tunedPpl) / tunedPpl).toBeLessThan(1e-3);
  });

  it('a GWQ-style base exports its outliers', () => {
    const packed = packedOf(gwq);
    const nnz = [...packed.values()].reduce((n, w) => n + (w.outliers?.colIdx.length ?? 0), 0);
    expect(nnz).toBeGreaterThan(0);
    const out = path.join(tmp, 'gwq-F16');
    exportTo(['--model', gwq, '--out', out]);
    checkExport(gwq, out, 'F16', packed);
    // an outlier's value is in the exported weight (its code alone dequantizes to 0 there)
    const [name, w] = [...packed].find(([, w]) => (w.outliers?.colIdx.length ?? 0) > 0)!;
    const o = w.outliers!;
    let r = 0;
    while (o.rowPtr[r + 1] === 0) r++;
    const dst = openSafetensors(path.join(out, 'model.safetensors'));
    try {
      const W = dst.readF32(`${name}.weight`);
      expect(W[r * w.cols + o.colIdx[0]]).toBe(o.values[0]);
    } finally {
      dst.close();
    }
    const packedPpl = ppl(gwq);
    expect(Math.abs(ppl(out) - packedPpl) / packedPpl).toBeLessThan(1e-3);
  });

  it('refuses an option of another format, an existing --out without --force, and a non-packed --model, one line each', () => {
    const out = path.join(tmp, 'refused');
    expect(
      expectOneLineError(wct(['export', '--model', owq, '--format', 'gguf', '--dtype', 'BF16', '--out', out])),
    ).toMatch(/--dtype: applies to --format hf only/);
    expect(expectOneLineError(wct(['export', '--model', owq, '--gguf-type', 'Q4_0', '--out', out]))).toMatch(
      /--gguf-type: applies to --format gguf only/,
    );
    expect(fs.existsSync(out)).toBe(false);
    const existing = path.join(tmp, 'owq-F16');
    expect(expectOneLineError(wct(['export', '--model', owq, '--format', 'hf', '--out', existing]))).toMatch(
      /--out: .* exists \(pass --force to replace it\)/,
    );
    expect(expectOneLineError(wct(['export', '--model', tinyStoriesDir, '--out', out]))).toMatch(
      /--model: .* is not a packed checkpoint/,
    );
    expect(expectOneLineError(wct(['export', '--model', path.join(tmp, 'nope'), '--out', out]))).toMatch(
      /not a directory/,
    );
    expect(fs.existsSync(out)).toBe(false);
    // --force replaces a directory this tool wrote
    const r = wct(['export', '--model', owq, '--out', existing, '--force']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/replaced .*owq-F16 \(written by owq-wct .*, wct export\)/);
  });
});
