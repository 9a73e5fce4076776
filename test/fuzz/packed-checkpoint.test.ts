/**
 * Property-based fuzzing of the packed checkpoint loader (fast-check, fixed seed, bounded runs): a small OWQ
 * checkpoint of TinyStories-656K (weak columns in every linear) with quantization_config.json edited (wrong
 * n_out, bits, group size, a linear dropped), bytes of its packed tensors flipped, non-finite scales, weak
 * columns and weights, packed tensors removed, header shapes and dtypes edited, truncation and header length
 * ± k; and a copy with CSR outliers in one linear: bytes of its outlier tensors flipped, some of them removed,
 * their header shapes and dtypes edited. Every case must end in an InputError or a model whose every value is
 * finite and whose packed layers agree with the config and pass validatePacked (outliers included); never
 * another exception and never a hang.
 */
import { endsCleanly } from '../helpers/errors.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUANT_CONFIG_FILE, type QuantConfig } from '../../src/io/packed-checkpoint.js';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { expectedTensorShapes } from '../../src/models/checkpoint-tensors.js';
import { loadModel } from '../../src/models/load.js';
import { packedLinearsOf } from '../../src/models/weak-deltas.js';
import { validatePacked } from '../../src/native/packed.js';
import { addOutliers, packedTinyStories } from '../helpers/packed.js';

const SEED = 20261202;
const RUNS = 100;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-fuzz-packed-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const caseDir = path.join(tmp, 'case');

let config: string;
let quantConfig: QuantConfig;
let model: Buffer;
let headerLength: number;
let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
let linears: string[];
/** The checkpoint with CSR outliers in OUTLIER_LINEAR, and its header. */
let outlierModel: Buffer;
let outlierHeaderLength: number;
let outlierHeader: typeof header;
const OUTLIER_LINEAR = 'model.layers.1.mlp.down_proj';

beforeAll(async () => {
  const dir = await packedTinyStories(path.join(tmp, 'packed'));
  const withOutliers = path.join(tmp, 'packed-outliers');
  fs.cpSync(dir, withOutliers, { recursive: true });
  addOutliers(withOutliers, OUTLIER_LINEAR, 7);
  outlierModel = fs.readFileSync(path.join(withOutliers, 'model.safetensors'));
  outlierHeaderLength = Number(outlierModel.readBigUInt64LE(0));
  outlierHeader = JSON.parse(outlierModel.subarray(8, 8 + outlierHeaderLength).toString('utf8'));
  config = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
  quantConfig = JSON.parse(fs.readFileSync(path.join(dir, QUANT_CONFIG_FILE), 'utf8'));
  model = fs.readFileSync(path.join(dir, 'model.safetensors'));
  headerLength = Number(model.readBigUInt64LE(0));
  header = JSON.parse(model.subarray(8, 8 + headerLength).toString('utf8'));
  linears = Object.keys(quantConfig.n_out);
  fs.mkdirSync(caseDir);
});

interface Case {
  qc: unknown;
  bytes: Uint8Array;
}

/** Loads the case; checks what a successful load returns. */
function load({ qc, bytes }: Case): void {
  fs.writeFileSync(path.join(caseDir, 'config.json'), config);
  fs.writeFileSync(path.join(caseDir, QUANT_CONFIG_FILE), JSON.stringify(qc));
  fs.writeFileSync(path.join(caseDir, 'model.safetensors'), bytes);
  const m = loadModel(caseDir);
  const shapes = expectedTensorShapes(m.config);
  for (const [name, t] of m.parameters()) {
    expect(t.data.every(Number.isFinite), name).toBe(true);
    expect(t.shape).toEqual(shapes.get(name));
  }
  const nOut = (qc as QuantConfig).n_out;
  const stored = openSafetensors(path.join(caseDir, 'model.safetensors'));
  const weakCounts = new Map(
    stored
      .names()
      .filter((n) => n.endsWith('.weak_idx'))
      .map((n) => [n.slice(0, -'.weak_idx'.length), stored.info(n).shape[0]]),
  );
  stored.close();
  const storedWeak = (name: string) => weakCounts.get(name) ?? 0;
  for (const [name, layer] of packedLinearsOf(m)) {
    const p = layer.packed;
    expect([p.rows, p.cols]).toEqual(shapes.get(`${name}.weight`));
    expect(p.weakIdx.length).toBe(nOut[name] ?? 0);
    expect(p.weakIdx.length, `${name}: stored weak columns dropped`).toBe(storedWeak(name));
    expect(p.weak.length).toBe(p.rows * p.weakIdx.length);
    expect(p.scales.every(Number.isFinite), `${name}.scales`).toBe(true);
    expect(p.weak.every(Number.isFinite), `${name}.weak`).toBe(true);
    p.weakIdx.forEach((j, i) => expect(j >= 0 && j < p.cols && (i === 0 || j > p.weakIdx[i - 1])).toBe(true));
    validatePacked(p, name); // outliers included: a loaded CSR is a valid one
    if (p.outliers !== undefined) expect(p.outliers.values.every(Number.isFinite), `${name} outliers`).toBe(true);
  }
}

/** The property: loading ends in an InputError (one line) or passes load's checks. */
function cleanOutcome(c: Case): boolean {
  return endsCleanly(() => load(c));
}

const run = (arb: () => fc.Arbitrary<Case>) =>
  fc.assert(
    fc.property(
      fc.constant(null).chain(() => arb()),
      (c) => cleanOutcome(c),
    ),
    { seed: SEED, numRuns: RUNS },
  );

/** The data-section offset of `tensor` in the checkpoint file. */
const dataAt = (tensor: string) => 8 + headerLength + header[tensor].data_offsets[0];
const bytesOf = (tensor: string) => header[tensor].data_offsets[1] - header[tensor].data_offsets[0];

/** Rewrites the checkpoint with `edit` applied to its list of tensors. */
function rewritten(edit: (names: string[]) => string[]): Buffer {
  const src = path.join(tmp, 'src.safetensors');
  const out = path.join(tmp, 'rewritten.safetensors');
  fs.writeFileSync(src, model);
  const st = openSafetensors(src);
  const tensors = edit(st.names()).map((name) => ({ name, ...st.info(name), data: st.readRaw(name) }));
  st.close();
  writeSafetensors(out, tensors, { format: 'pt' });
  return fs.readFileSync(out);
}

const packedSuffix = fc.constantFrom('qweight', 'scales', 'zeros', 'weak_idx', 'weak');

describe('packed checkpoint loader fuzz', () => {
  it('the valid checkpoint loads', () => {
    load({ qc: quantConfig, bytes: model });
  });

  it('quantization_config.json edits: n_out, bits, group size, a linear dropped or added', () => {
    run(() =>
      fc
        .tuple(
          fc.constantFrom(...linears),
          fc.constantFrom('n_out', 'bits', 'group_size', 'drop', 'embeddings'),
          fc.integer({ min: -1, max: 70 }),
        )
        .map(([linear, field, v]) => {
          const qc = structuredClone(quantConfig) as QuantConfig & Record<string, unknown>;
          if (field === 'n_out') qc.n_out[linear] = v;
          else if (field === 'bits') qc.bits = [2, 3, 4, 5, 8][Math.abs(v) % 5] as QuantConfig['bits'];
          else if (field === 'group_size') qc.group_size = v;
          else if (field === 'drop') delete qc.n_out[linear];
          else qc.embeddings = { 'model.embed_tokens': [2, 3, 4, 8][Math.abs(v) % 4] };
          return { qc, bytes: model };
        }),
    );
  });

  it('flipped bytes in packed tensors (codes, scales, zero points, weak indices and columns)', () => {
    run(() =>
      fc
        .tuple(
          fc.constantFrom(...linears),
          packedSuffix,
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }),
        )
        .map(([linear, suffix, flips]) => {
          const tensor = `${linear}.${suffix}`;
          const b = Buffer.from(model);
          for (const [at, x] of flips) b[dataAt(tensor) + (at % bytesOf(tensor))] ^= x;
          return { qc: quantConfig, bytes: b };
        }),
    );
  });

  it('non-finite scales, weak columns and full-precision weights', () => {
    const dense = Object.keys(header).filter((n) => header[n].dtype === 'F32');
    run(() =>
      fc
        .tuple(
          fc.oneof(
            fc.tuple(fc.constantFrom(...linears), fc.constantFrom('scales', 'weak')).map(([l, s]) => `${l}.${s}`),
            fc.constantFrom(...dense),
          ),
          fc.nat(),
          fc.constantFrom(NaN, Infinity, -Infinity),
        )
        .map(([tensor, k, value]) => {
          const b = Buffer.from(model);
          const f16 = header[tensor].dtype === 'F16';
          const at = dataAt(tensor) + (k % (bytesOf(tensor) / (f16 ? 2 : 4))) * (f16 ? 2 : 4);
          if (f16) b.writeUInt16LE(Number.isNaN(value) ? 0x7e00 : value > 0 ? 0x7c00 : 0xfc00, at);
          else b.writeFloatLE(value, at);
          expect(() => load({ qc: quantConfig, bytes: b })).toThrow(/element \d+ is (NaN|Infinity|-Infinity)/);
          return { qc: quantConfig, bytes: b };
        }),
    );
  });

  it('packed tensors removed, with n_out kept or set to 0', () => {
    run(() =>
      fc
        .tuple(
          fc.constantFrom(...linears),
          fc.subarray(['qweight', 'scales', 'zeros', 'weak_idx', 'weak']),
          fc.boolean(),
        )
        .map(([linear, removed, zeroOut]) => {
          const qc = structuredClone(quantConfig);
          if (zeroOut) qc.n_out[linear] = 0;
          const gone = new Set(removed.map((s) => `${linear}.${s}`));
          return { qc, bytes: rewritten((names) => names.filter((n) => !gone.has(n))) };
        }),
    );
  });

  it('header shape and dtype edits of packed tensors', () => {
    run(() =>
      fc
        .tuple(
          fc.constantFrom(...linears),
          packedSuffix,
          fc.constantFrom('dim+', 'dim-', 'swap', 'dtype'),
          fc.constantFrom('U8', 'I8', 'F16', 'BF16', 'I32', 'F32'),
        )
        .map(([linear, suffix, edit, dtype]) => {
          const h = structuredClone(header);
          const e = h[`${linear}.${suffix}`];
          if (edit === 'dim+') e.shape[0] += 1;
          else if (edit === 'dim-') e.shape[e.shape.length - 1] -= 1;
          else if (edit === 'swap') e.shape.reverse();
          else e.dtype = dtype;
          let text = JSON.stringify(h);
          text += ' '.repeat((8 - (text.length % 8)) % 8);
          const len = Buffer.alloc(8);
          len.writeBigUInt64LE(BigInt(text.length));
          return { qc: quantConfig, bytes: Buffer.concat([len, Buffer.from(text), model.subarray(8 + headerLength)]) };
        }),
    );
  });

  it('truncation and header length ± k', () => {
    run(() =>
      fc.oneof(
        fc.nat(model.length - 1).map((n) => ({ qc: quantConfig, bytes: model.subarray(0, n) })),
        fc.integer({ min: -16, max: 16 }).map((k) => {
          const b = Buffer.from(model);
          b.writeBigUInt64LE(BigInt(headerLength + k));
          return { qc: quantConfig, bytes: b };
        }),
      ),
    );
  });

  describe('with CSR outliers', () => {
    const outlierSuffix = fc.constantFrom('outlier_row_ptr', 'outlier_col_idx', 'outlier_values', 'qweight');
    const at = (tensor: string) => 8 + outlierHeaderLength + outlierHeader[tensor].data_offsets[0];
    const size = (tensor: string) => outlierHeader[tensor].data_offsets[1] - outlierHeader[tensor].data_offsets[0];

    it('the checkpoint with outliers loads, with them', () => {
      load({ qc: quantConfig, bytes: outlierModel });
    });

    it('flipped bytes in the outlier tensors (row pointers, column indices, values) and the codes', () => {
      run(() =>
        fc
          .tuple(
            outlierSuffix,
            fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }),
          )
          .map(([suffix, flips]) => {
            const tensor = `${OUTLIER_LINEAR}.${suffix}`;
            const b = Buffer.from(outlierModel);
            for (const [k, x] of flips) b[at(tensor) + (k % size(tensor))] ^= x;
            return { qc: quantConfig, bytes: b };
          }),
      );
    });

    it('outlier tensors removed, and header shape and dtype edits of them', () => {
      run(() =>
        fc.oneof(
          fc.subarray(['outlier_row_ptr', 'outlier_col_idx', 'outlier_values'], { minLength: 1 }).map((removed) => {
            const gone = new Set(removed.map((s) => `${OUTLIER_LINEAR}.${s}`));
            const src = path.join(tmp, 'src-outliers.safetensors');
            const out = path.join(tmp, 'rewritten-outliers.safetensors');
            fs.writeFileSync(src, outlierModel);
            const st = openSafetensors(src);
            const tensors = st
              .names()
              .filter((n) => !gone.has(n))
              .map((name) => ({ name, ...st.info(name), data: st.readRaw(name) }));
            st.close();
            writeSafetensors(out, tensors, { format: 'pt' });
            return { qc: quantConfig, bytes: fs.readFileSync(out) };
          }),
          fc
            .tuple(
              outlierSuffix,
              fc.constantFrom('dim+', 'dim-', 'rank', 'dtype'),
              fc.constantFrom('U8', 'I64', 'F16', 'F32', 'I32'),
            )
            .map(([suffix, edit, dtype]) => {
              const h = structuredClone(outlierHeader);
              const e = h[`${OUTLIER_LINEAR}.${suffix}`];
              if (edit === 'dim+') e.shape[0] += 1;
              else if (edit === 'dim-') e.shape[e.shape.length - 1] -= 1;
              else if (edit === 'rank') e.shape.push(1);
              else e.dtype = dtype;
              let text = JSON.stringify(h);
              text += ' '.repeat((8 - (text.length % 8)) % 8);
              const len = Buffer.alloc(8);
              len.writeBigUInt64LE(BigInt(text.length));
              const rest = outlierModel.subarray(8 + outlierHeaderLength);
              return { qc: quantConfig, bytes: Buffer.concat([len, Buffer.from(text), rest]) };
            }),
        ),
      );
    });
  });
});
