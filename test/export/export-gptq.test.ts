/**
 * `wct export --format gptq`: packed checkpoints (RTN with groups at 2 and 4 bits, per row at 3 and 8 bits, GPTQ
 * 3-bit with act-order, AWQ 4-bit, OWQ per row and with groups + reorder, with and without tuned --deltas) exported in the
 * AutoGPTQ layout and read back by the test's own GPTQ reader (test/helpers/gptq-reader.ts: AutoGPTQ's unpack
 * arithmetic, zeros + 1, per g_idx) plus the weak columns' LoRA adapter (B A): every weight equals the reference
 * dequantization Ŵ (src/native/packed-ref.ts) element for element, every other tensor is the packed checkpoint's
 * byte for byte, and a model built from the reader's weights gives the packed model's logits within 1e-5 of their
 * scale. The refusals are one line each and leave no --out behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeExportedGptq } from '../../src/export/gptq.js';
import { packedTensorNames, readQuantConfig } from '../../src/io/packed-checkpoint.js';
import { readAdapter } from '../../src/io/peft-adapter.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors-write.js';
import { checkpointSha256, writeWeakDeltas } from '../../src/io/weak-deltas.js';
import { loadModel } from '../../src/models/load.js';
import { applyWeakDeltas, packedLinearsOf, weakColumnsOf } from '../../src/models/weak-deltas.js';
import type { PackedWeight } from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { addLora, readGptqLinear, readGptqSettings } from '../helpers/gptq-reader.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');
const CALIB_FLAGS = ['--calib-tokens', CALIB, '--nsamples', '8', '--seqlen', '64'];
const IDS = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12, 400, 33]);
const GPTQ_TENSORS = ['qweight', 'qzeros', 'scales', 'g_idx'];

/** The packed bases exported, by directory name: the quantize flags. */
const BASES: Record<string, string[]> = {
  'rtn-4bit-g32': ['--method', 'rtn', '--wbits', '4', '--group-size', '32'],
  'rtn-2bit-g32': ['--method', 'rtn', '--wbits', '2', '--group-size', '32'],
  'rtn-3bit-row': ['--method', 'rtn', '--wbits', '3'],
  'rtn-8bit-row': ['--method', 'rtn', '--wbits', '8'],
  'gptq-3bit-g64-act-order': ['--method', 'gptq', '--wbits', '3', '--group-size', '64', '--act-order', ...CALIB_FLAGS],
  // AWQ's grid is the packed format's (integer zero points): its base exports as any other
  'awq-4bit-g32': [
    '--method',
    'awq',
    '--wbits',
    '4',
    '--group-size',
    '32',
    ...CALIB_FLAGS,
    '--awq-grid',
    '4',
    '--no-awq-clip',
  ],
  'owq-3bit-row': ['--method', 'owq', '--wbits', '3', '--target-bit', '3.1', ...CALIB_FLAGS],
  'owq-4bit-g64': ['--method', 'owq', '--wbits', '4', '--group-size', '64', '--target-bit', '4.3', ...CALIB_FLAGS],
};

const VIA_CLI = new Set(['rtn-4bit-g32', 'owq-3bit-row']);

let tmp: string;
const base = (name: string) => path.join(tmp, name);

function quantize(out: string, flags: string[], model = tinyStoriesDir): void {
  const r = wct(['quantize', '--model', model, ...flags, '--out', out]);
  expect(r.status, r.stderr).toBe(0);
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-export-gptq-'));
  for (const [name, flags] of Object.entries(BASES)) quantize(base(name), flags);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function exportGptq(dir: string, out: string, deltas?: string): string {
  const r = wct([
    'export',
    '--model',
    dir,
    ...(deltas === undefined ? [] : ['--deltas', deltas]),
    '--format',
    'gptq',
    '--out',
    out,
  ]);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** The packed weights of `dir` by linear name, with `deltas` loaded over them when given. */
function packedOf(dir: string, deltas?: string): Map<string, PackedWeight> {
  const model = loadModel(dir);
  if (deltas !== undefined) applyWeakDeltas(model, deltas, dir);
  return new Map([...packedLinearsOf(model)].map(([name, l]) => [name, l.packed]));
}

/** Every linear's weights as the GPTQ reader sees them, the adapter (when there is one) applied. */
function readBack(out: string, packed: Map<string, PackedWeight>): Map<string, Float32Array> {
  const { bits } = readGptqSettings(out);
  const adapter = path.join(out, 'weak-columns-adapter');
  const weights = new Map<string, Float32Array>();
  for (const [name, w] of packed) {
    const got = readGptqLinear(out, name, bits);
    expect([got.rows, got.cols], name).toEqual([w.rows, w.cols]);
    // the GPTQ base alone is 0 at the weak columns (their codes hold the zero point)
    for (let r = 0; r < w.rows; r++) for (const j of w.weakIdx) expect(got.w[r * w.cols + j]).toBe(0);
    const adapted = fs.existsSync(adapter) && addLora(adapter, name, got.w, w.rows, w.cols);
    expect(adapted, name).toBe(w.weakIdx.length > 0);
    weights.set(name, got.w);
  }
  return weights;
}

/** The export `out` of the packed checkpoint `dir` (packed weights `packed`) checked against Ŵ; returns what was read. */
function checkExport(dir: string, out: string, packed: Map<string, PackedWeight>): Map<string, Float32Array> {
  const qc = readQuantConfig(dir);
  const settings = readGptqSettings(out);
  const reordered = [...packed.values()].some((w) => w.perm !== null && w.groupSize < w.cols);
  expect(settings).toMatchObject({
    quant_method: 'gptq',
    checkpoint_format: 'gptq',
    bits: qc.bits,
    group_size: qc.group_size === 0 ? -1 : qc.group_size,
    desc_act: reordered,
    sym: false,
  });
  const quantized = Object.keys(qc.n_out);
  expect([...packed.keys()].sort()).toEqual([...quantized].sort());
  const src = openSafetensors(path.join(dir, 'model.safetensors'));
  const dst = openSafetensors(path.join(out, 'model.safetensors'));
  try {
    const packedNames = new Set(quantized.flatMap(packedTensorNames));
    const kept = src.names().filter((n) => !packedNames.has(n));
    const gptq = quantized.flatMap((n) => GPTQ_TENSORS.map((t) => `${n}.${t}`));
    expect(dst.names().sort()).toEqual([...kept, ...gptq].sort());
    for (const name of kept) {
      expect(dst.info(name), name).toEqual(src.info(name));
      expect(Buffer.from(dst.readRaw(name)).equals(Buffer.from(src.readRaw(name))), name).toBe(true);
    }
  } finally {
    src.close();
    dst.close();
  }
  const weights = readBack(out, packed);
  for (const [name, w] of packed) {
    const want = pref.dequantize(w);
    const got = weights.get(name)!;
    let mismatches = 0;
    for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) mismatches++;
    expect(mismatches, name).toBe(0);
  }
  const { quantization_config: q, ...config } = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  const { quantization_config: _, ...source } = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  expect(config).toEqual(source);
  expect(q.quant_method).toBe('gptq');
  return weights;
}

/**
 * The reader's weights as a plain checkpoint (`<name>.weight` F32 beside the export's other tensors): its logits
 * equal the packed model's (with `deltas`) within 1e-5 of their scale (fp32 sums in a different order).
 */
function checkLogits(dir: string, out: string, weights: Map<string, Float32Array>, deltas?: string): void {
  const plain = `${out}-read-back`;
  fs.mkdirSync(plain);
  const { quantization_config: _, ...config } = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(plain, 'config.json'), JSON.stringify(config));
  const st = openSafetensors(path.join(out, 'model.safetensors'));
  const tensors: TensorToWrite[] = [];
  try {
    for (const name of st.names()) {
      if (!GPTQ_TENSORS.some((t) => name.endsWith(`.${t}`)))
        tensors.push({ name, ...st.info(name), data: st.readRaw(name) });
    }
  } finally {
    st.close();
  }
  const packed = loadModel(dir);
  if (deltas !== undefined) applyWeakDeltas(packed, deltas, dir);
  for (const [name, l] of packedLinearsOf(packed))
    tensors.push({
      name: `${name}.weight`,
      dtype: 'F32',
      shape: [l.packed.rows, l.packed.cols],
      data: weights.get(name)!,
    });
  writeSafetensors(path.join(plain, 'model.safetensors'), tensors, { format: 'pt' });
  const want = packed.forward(IDS, { batch: 2 }).data;
  const got = loadModel(plain).forward(IDS, { batch: 2 }).data;
  let [scale, diff] = [1, 0];
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
  }
  expect(diff).toBeLessThanOrEqual(1e-5 * scale);
}

describe('wct export --format gptq', () => {
  it.each(Object.keys(BASES))('%s: the GPTQ reader (+ adapter) gives Ŵ exactly, and the logits', (name) => {
    const out = path.join(tmp, `${name}-gptq`);
    const packed = packedOf(base(name));
    const weak = [...packed.values()].some((w) => w.weakIdx.length > 0);
    expect(weak).toBe(name.startsWith('owq'));
    if (name.includes('act-order') || name === 'owq-4bit-g64')
      expect([...packed.values()].some((w) => w.perm !== null)).toBe(true);
    // through the CLI for two bases (its summary line), in process for the others (each CLI start costs ~0.5 s)
    if (VIA_CLI.has(name)) {
      const stdout = exportGptq(base(name), out);
      const adapter = weak ? `; weak columns as the PEFT adapter ${out}/weak-columns-adapter` : '';
      expect(stdout).toBe(`wrote ${out}: 14 linears of ${base(name)} in the GPTQ layout${adapter}\n`);
    } else {
      expect(writeExportedGptq(out, base(name), packed)).toEqual({
        linears: 14,
        ...(weak ? { adapterDir: path.join(out, 'weak-columns-adapter') } : {}),
      });
    }
    checkLogits(base(name), out, checkExport(base(name), out, packed));
    if (!weak) {
      expect(fs.existsSync(path.join(out, 'weak-columns-adapter'))).toBe(false);
      return;
    }
    const adapter = readAdapter(path.join(out, 'weak-columns-adapter'));
    const rank = Math.max(...[...packed.values()].map((w) => w.weakIdx.length));
    expect(adapter.config).toMatchObject({ r: rank, lora_alpha: rank, base_model_name_or_path: out });
  });

  it('OWQ with --deltas: the adapter holds the tuned weak columns', () => {
    const owq = base('owq-3bit-row');
    const deltas = path.join(tmp, 'weak_deltas.safetensors');
    const donor = loadModel(owq);
    for (const l of packedLinearsOf(donor).values())
      for (let i = 0; i < l.packed.weak.length; i++) l.packed.weak[i] *= 1.5;
    writeWeakDeltas(deltas, weakColumnsOf(donor), { baseSha256: checkpointSha256(owq), recipeHash: 'x', step: 1 });
    const out = path.join(tmp, 'owq-tuned-gptq');
    exportGptq(owq, out, deltas);
    const tuned = packedOf(owq, deltas);
    checkLogits(owq, out, checkExport(owq, out, tuned), deltas);
    // the deltas changed the adapter, not the GPTQ base
    const plain = readAdapter(path.join(tmp, 'owq-3bit-row-gptq', 'weak-columns-adapter'));
    const mine = readAdapter(path.join(out, 'weak-columns-adapter'));
    const [name] = mine.layers.keys();
    expect(mine.layers.get(name)!.b.data).not.toEqual(plain.layers.get(name)!.b.data);
    const a = openSafetensors(path.join(tmp, 'owq-3bit-row-gptq', 'model.safetensors'));
    const b = openSafetensors(path.join(out, 'model.safetensors'));
    try {
      for (const n of a.names()) expect(Buffer.from(b.readRaw(n)).equals(Buffer.from(a.readRaw(n))), n).toBe(true);
    } finally {
      a.close();
      b.close();
    }
  });

  it('refuses what the layout cannot hold, one line each, writing nothing', () => {
    const out = path.join(tmp, 'refused');
    const refusal = (dir: string) =>
      expectOneLineError(wct(['export', '--model', dir, '--format', 'gptq', '--out', out]));
    const cases: [string, string[], RegExp][] = [
      [
        'gwq',
        ['--method', 'gwq', '--wbits', '4', '--group-size', '32', ...CALIB_FLAGS],
        /has \d+ GWQ-style sparse outliers/,
      ],
      [
        'g48',
        ['--method', 'rtn', '--wbits', '4', '--group-size', '48'],
        /group size 48 does not divide in_features 128/,
      ],
      [
        'embed',
        ['--method', 'rtn', '--wbits', '4', '--embed-bits', '8'],
        /model\.embed_tokens exactly: it is a packed embedding table/,
      ],
    ];
    for (const [name, flags, message] of cases) {
      quantize(base(name), flags);
      expect(refusal(base(name))).toMatch(
        new RegExp(`^error: --format: gptq cannot hold .*${message.source}.*\\(use --format hf\\)$`),
      );
    }
    // 3-bit fields tile int32 words 32 at a time: in_features 48 does not
    const narrow = path.join(tmp, 'narrow');
    const r = wct([
      'init-random',
      '--like',
      'tinystories-656k',
      '--hidden-size',
      '48',
      '--num-heads',
      '4',
      '--num-kv-heads',
      '2',
      '--intermediate-size',
      '96',
      '--out',
      narrow,
    ]);
    expect(r.status, r.stderr).toBe(0);
    quantize(base('narrow-3bit'), ['--method', 'rtn', '--wbits', '3'], narrow);
    expect(refusal(base('narrow-3bit'))).toMatch(
      /in_features 48 is not a multiple of 32 \(3-bit fields in int32 words\)/,
    );
    // a zero point of 0 (v1 stores zero - 1): one group's zero set to 0 in a copy of a checkpoint
    const zero = base('zero-point-0');
    fs.cpSync(base('rtn-4bit-g32'), zero, { recursive: true });
    const file = path.join(zero, 'model.safetensors');
    const st = openSafetensors(file);
    const tensors: TensorToWrite[] = st.names().map((n) => ({ name: n, ...st.info(n), data: st.readRaw(n).slice() }));
    st.close();
    const target = 'model.layers.0.mlp.up_proj';
    (tensors.find((t) => t.name === `${target}.zeros`)!.data as Uint8Array)[3 * 4 + 1] = 0;
    writeSafetensors(file, tensors, { format: 'pt' });
    expect(refusal(zero)).toMatch(
      new RegExp(`${target} exactly: row 3, group 1 has zero point 0, which GPTQ's v1 qzeros`),
    );
    expect(fs.existsSync(out)).toBe(false);
  });

  it('refuses a scale that fp16 does not hold (a packed checkpoint stores fp16 scales: only in memory)', () => {
    const packed = packedOf(base('rtn-4bit-g32'));
    const [name, w] = [...packed][0];
    w.scales[5] = 1 / 3;
    const out = path.join(tmp, 'refused-scale');
    expect(() => writeExportedGptq(out, base('rtn-4bit-g32'), packed)).toThrow(
      `--format: gptq cannot hold ${name} exactly: the scale of row 1, group 1 (${Math.fround(1 / 3)}) is not exact in fp16 (use --format hf)`,
    );
    expect(fs.existsSync(out)).toBe(false);
  });
});
