/**
 * Checkpoint directories: single file, sharded index (a real checkpoint split in two shards must
 * read back identically), and the ways an index can be broken; the packed checkpoint loader's checks
 * (n_out against the stored weak columns, finite scales and weak columns) and weak-column deltas; the packed
 * linears' CSR outliers (written and read back bit-exact, refused when inexact in fp16, every fault of the stored
 * CSR one line naming the file and the tensor, and a whole model loaded with outliers in one linear).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/io/dtype.js';
import { QUANT_CONFIG_FILE, packedTensors, readPackedLinear, readQuantConfig } from '../../src/io/packed-checkpoint.js';
import { openCheckpoint, openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { checkpointSha256, writeWeakDeltas } from '../../src/io/weak-deltas.js';
import { readConfig } from '../../src/models/families/registry.js';
import { loadModel } from '../../src/models/load.js';
import { applyWeakDeltas, packedLinearsOf, weakColumnsOf } from '../../src/models/weak-deltas.js';
import { packedRowBytes, type PackedWeight } from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { addOutliers, packedTinyStories } from '../helpers/packed.js';
import { randomPacked } from '../kernels/packed-helpers.js';
import { tinyStoriesDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-io-ckpt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

/** TinyStories split into two shards plus an index; `edit` may alter the weight_map before writing. */
function shardedCopy(edit: (weightMap: Record<string, string>) => void = () => undefined): string {
  const dir = path.join(tmp, `sharded${counter++}`);
  fs.mkdirSync(dir);
  const st = openSafetensors(path.join(tinyStoriesDir, 'model.safetensors'));
  const names = st.names();
  const weightMap: Record<string, string> = {};
  const shards = [names.slice(0, 7), names.slice(7)].map((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    part.forEach((name) => (weightMap[name] = file));
    writeSafetensors(
      path.join(dir, file),
      part.map((name) => ({ name, ...st.info(name), data: st.readRaw(name) })),
    );
    return file;
  });
  st.close();
  expect(shards).toHaveLength(2);
  edit(weightMap);
  fs.writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }),
  );
  return dir;
}

function errorOf(f: () => unknown): InputError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an InputError');
}

describe('openCheckpoint', () => {
  it('opens a directory with model.safetensors', () => {
    const ckpt = openCheckpoint(tinyStoriesDir);
    expect(ckpt.path).toBe(path.join(tinyStoriesDir, 'model.safetensors'));
    expect(ckpt.info('model.norm.weight')).toEqual({ dtype: 'F32', shape: [128] });
    ckpt.close();
  });

  it('presents a sharded checkpoint as one name -> tensor view, identical to the single file', () => {
    const dir = shardedCopy();
    const sharded = openCheckpoint(dir);
    const single = openCheckpoint(tinyStoriesDir);
    expect(sharded.path).toBe(path.join(dir, 'model.safetensors.index.json'));
    expect(new Set(sharded.names())).toEqual(new Set(single.names()));
    for (const name of single.names()) {
      expect(sharded.info(name)).toEqual(single.info(name));
      expect(sharded.readF32(name)).toEqual(single.readF32(name));
    }
    sharded.close();
    single.close();
  });

  it('accepts the index file itself', () => {
    const dir = shardedCopy();
    const ckpt = openCheckpoint(path.join(dir, 'model.safetensors.index.json'));
    expect(ckpt.has('lm_head.weight')).toBe(true);
    ckpt.close();
  });

  it('prefers model.safetensors when both are present (as transformers does)', () => {
    const dir = shardedCopy();
    fs.copyFileSync(path.join(tinyStoriesDir, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    const ckpt = openCheckpoint(dir);
    expect(ckpt.path).toBe(path.join(dir, 'model.safetensors'));
    ckpt.close();
  });

  it('a missing shard file names the index and the shard', () => {
    const dir = shardedCopy((m) => {
      m['model.norm.weight'] = 'model-00003-of-00002.safetensors';
    });
    expect(errorOf(() => openCheckpoint(dir)).message).toBe(
      `${path.join(dir, 'model.safetensors.index.json')}: weight_map: shard file model-00003-of-00002.safetensors not found`,
    );
  });

  it('a tensor listed in the index but absent from its shard', () => {
    const dir = shardedCopy((m) => {
      m['model.layers.9.mlp.up_proj.weight'] = 'model-00001-of-00002.safetensors';
    });
    expect(errorOf(() => openCheckpoint(dir)).message).toMatch(
      /index\.json: model\.layers\.9\.mlp\.up_proj\.weight: listed in weight_map for model-00001-of-00002\.safetensors but absent from that shard$/,
    );
  });

  it('an index without a weight_map object', () => {
    const dir = shardedCopy();
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": [1]}');
    expect(errorOf(() => openCheckpoint(dir)).message).toMatch(/index\.json: weight_map: missing or not an object/);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    expect(errorOf(() => openCheckpoint(dir)).message).toMatch(/index\.json: file: not valid JSON/);
  });

  it('a directory with neither file', () => {
    expect(errorOf(() => openCheckpoint(tmp)).message).toBe(
      `${tmp}: model.safetensors: not found (nor model.safetensors.index.json); expected a Hugging Face checkpoint directory`,
    );
  });
});

/** Overwrites bytes of tensor `name` of a safetensors file in place, from byte `at` of the tensor. */
function pokeTensor(file: string, name: string, at: number, bytes: Buffer): void {
  const st = openSafetensors(file);
  const whole = fs.readFileSync(file);
  const n = Number(whole.readBigUInt64LE(0));
  const begin = (JSON.parse(whole.subarray(8, 8 + n).toString()) as Record<string, { data_offsets: number[] }>)[name]
    .data_offsets[0];
  st.close();
  bytes.copy(whole, 8 + n + begin + at);
  fs.writeFileSync(file, whole);
}

/** The small OWQ checkpoint of TinyStories, made once for the describes that need it. */
let packedOnce: Promise<string> | undefined;
const packedCheckpoint = (): Promise<string> => (packedOnce ??= packedTinyStories(path.join(tmp, 'packed')));

describe("another tool's quantized checkpoint", () => {
  const withQuantization = (q: unknown): string => {
    const dir = path.join(tmp, `foreign${counter++}`);
    fs.cpSync(tinyStoriesDir, dir, { recursive: true });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, quantization_config: q }));
    return dir;
  };

  it('a quantization_config of GPTQ, AWQ or no quant_method is one InputError naming config.json and the field', () => {
    for (const [q, shown] of [
      [{ quant_method: 'gptq', bits: 4, group_size: 128 }, '"gptq"'],
      [{ quant_method: 'awq', bits: 4, version: 'gemm' }, '"awq"'],
      [{ bits: 4 }, 'null'],
    ] as const) {
      const dir = withQuantization(q);
      const file = path.join(dir, 'config.json');
      for (const load of [() => loadModel(dir), () => readConfig(dir)]) {
        expect(errorOf(load).message).toBe(
          `${file}: quantization_config.quant_method: ${shown} is a quantization this project does not read (only full-precision checkpoints and its own "wct-packed" ones; use the full-precision model)`,
        );
      }
    }
    const dir = withQuantization('gptq');
    expect(errorOf(() => loadModel(dir)).message).toBe(
      `${path.join(dir, 'config.json')}: quantization_config: expected an object, got "gptq"`,
    );
  });

  it('quantization_config null is no quantization', () => {
    expect(loadModel(withQuantization(null)).config.hiddenSize).toBe(readConfig(tinyStoriesDir).hiddenSize);
  });
});

describe('packed checkpoint loader', () => {
  let packedDir: string;
  const linear = 'model.layers.0.self_attn.q_proj';
  const copyOf = (): string => {
    const dir = path.join(tmp, `packed${counter++}`);
    fs.cpSync(packedDir, dir, { recursive: true });
    return dir;
  };
  const editQuantConfig = (dir: string, edit: (qc: { n_out: Record<string, number> }) => void) => {
    const file = path.join(dir, QUANT_CONFIG_FILE);
    const qc = JSON.parse(fs.readFileSync(file, 'utf8'));
    edit(qc);
    fs.writeFileSync(file, JSON.stringify(qc));
  };
  beforeAll(async () => {
    packedDir = await packedCheckpoint();
  });

  it('loads, with the weak columns quantization_config.json lists', () => {
    const model = loadModel(packedDir);
    const layer = packedLinearsOf(model).get(linear)!;
    expect(layer.packed.weakIdx.length).toBe(readQuantConfig(packedDir).n_out[linear]);
    expect(layer.packed.weakIdx.length).toBeGreaterThan(0);
  });

  it('config.json names the format in quantization_config; quantization_config.json records the source', () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(packedDir, 'config.json'), 'utf8'));
    expect(cfg.quantization_config).toEqual({
      quant_method: 'wct-packed',
      format: 'wct-packed',
      version: 1,
      bits: 4,
      group_size: 0,
      method: 'owq',
    });
    const source = JSON.parse(fs.readFileSync(path.join(tinyStoriesDir, 'config.json'), 'utf8'));
    const { quantization_config: _, ...rest } = cfg;
    expect(rest).toEqual(source);
    expect(readQuantConfig(packedDir).source).toBe(path.resolve(tinyStoriesDir));
    expect(readConfig(packedDir).hiddenSize).toBe(readConfig(tinyStoriesDir).hiddenSize);
  });

  it('files written before source or quantization_config still load', () => {
    const dir = copyOf();
    editQuantConfig(dir, (qc) => {
      delete (qc as { source?: string }).source;
    });
    fs.copyFileSync(path.join(tinyStoriesDir, 'config.json'), path.join(dir, 'config.json'));
    expect(readQuantConfig(dir).source).toBeUndefined();
    expect(packedLinearsOf(loadModel(dir)).size).toBeGreaterThan(0);
  });

  it('a wct-packed quantization_config without quantization_config.json is refused, not loaded as full precision', () => {
    const dir = copyOf();
    fs.rmSync(path.join(dir, QUANT_CONFIG_FILE));
    expect(errorOf(() => loadModel(dir)).message).toBe(
      `${path.join(dir, 'config.json')}: quantization_config.quant_method: "wct-packed", but quantization_config.json is missing beside it (a packed checkpoint needs both)`,
    );
  });

  it('n_out 0 for a linear whose weak columns are stored is refused, not a silent drop', () => {
    const dir = copyOf();
    editQuantConfig(dir, (qc) => {
      qc.n_out[linear] = 0;
    });
    expect(errorOf(() => loadModel(dir)).message).toBe(
      `${path.join(dir, 'model.safetensors')}: ${linear}.weak_idx: stored, but quantization_config.json gives ${linear} no weak columns (n_out 0): they would be dropped`,
    );
  });

  it('n_out larger than the stored weak columns', () => {
    const dir = copyOf();
    editQuantConfig(dir, (qc) => {
      qc.n_out[linear] += 1;
    });
    expect(errorOf(() => loadModel(dir)).message).toMatch(
      new RegExp(`${linear.replaceAll('.', '\\.')}\\.weak_idx: I32 \\[\\d+\\] does not match the config`),
    );
  });

  it('a NaN scale, an infinite weak column: the tensor and the first bad element', () => {
    const scales = copyOf();
    const nan = Buffer.alloc(2);
    nan.writeUInt16LE(0x7e00);
    pokeTensor(path.join(scales, 'model.safetensors'), `${linear}.scales`, 2 * 5, nan);
    expect(errorOf(() => loadModel(scales)).message).toBe(
      `${path.join(scales, 'model.safetensors')}: tensor ${linear}.scales: element 5 is NaN (stored values must be finite)`,
    );
    const weak = copyOf();
    const inf = Buffer.alloc(2);
    inf.writeUInt16LE(0x7c00);
    pokeTensor(path.join(weak, 'model.safetensors'), `${linear}.weak`, 0, inf);
    expect(errorOf(() => loadModel(weak)).message).toMatch(
      new RegExp(`tensor ${linear.replaceAll('.', '\\.')}\\.weak: element 0 is Infinity`),
    );
  });

  it('packed tensors are checked against the config before any tensor is read', () => {
    const dir = copyOf();
    editQuantConfig(dir, (qc) => {
      (qc as unknown as { group_size: number }).group_size = 16;
    });
    const nan = Buffer.alloc(4);
    nan.writeFloatLE(NaN);
    pokeTensor(path.join(dir, 'model.safetensors'), 'model.norm.weight', 0, nan);
    expect(errorOf(() => loadModel(dir)).message).toMatch(
      /model\.layers\.0\.self_attn\.q_proj\.scales: F16 \[128,1\] does not match the config \(expected F16 \[128,8\]\)/,
    );
  });

  it('a packed tensor of a linear quantization_config.json does not list is unused', () => {
    const dir = copyOf();
    editQuantConfig(dir, (qc) => {
      delete qc.n_out[linear];
    });
    expect(errorOf(() => loadModel(dir)).message).toMatch(
      new RegExp(`${linear.replaceAll('.', '\\.')}\\.weight: missing`),
    );
  });

  it('weak-column deltas with a NaN, or for a linear the base lacks, are refused', () => {
    const model = loadModel(packedDir);
    const layers = weakColumnsOf(model);
    const deltas = path.join(tmp, 'deltas.safetensors');
    const bad = new Map([...layers].map(([name, w]) => [name, { ...w, data: Float32Array.from(w.data) }] as const));
    bad.get(linear)!.data[3] = NaN;
    writeWeakDeltas(deltas, bad, { baseSha256: checkpointSha256(packedDir), recipeHash: 'x', step: 1 });
    expect(errorOf(() => applyWeakDeltas(model, deltas, packedDir)).message).toBe(
      `${deltas}: tensor ${linear}.weak: element 3 is NaN (stored values must be finite)`,
    );
    bad.get(linear)!.data[3] = 0;
    bad.set('model.layers.0.nope', { rows: 1, nOut: 1, data: Float32Array.of(0) });
    writeWeakDeltas(deltas, bad, { baseSha256: checkpointSha256(packedDir), recipeHash: 'x', step: 1 });
    expect(errorOf(() => applyWeakDeltas(model, deltas, packedDir)).message).toBe(
      `${deltas}: tensors: 1 tensor(s) for no weak columns of the base: model.layers.0.nope.weak`,
    );
    const fifo = path.join(tmp, 'deltas-fifo.safetensors');
    execFileSync('mkfifo', [fifo]);
    expect(errorOf(() => applyWeakDeltas(model, fifo, packedDir)).message).toBe(`${fifo}: not a regular file (a FIFO)`);
  });
});

/** x rounded to the nearest fp16 (as a packed checkpoint stores scales, weak columns and outliers). */
const f16 = (a: Float32Array): Float32Array => a.map((v) => f16BitsToF32(f32ToF16Bits(v)));

describe('packed checkpoint outliers', () => {
  const name = 'model.layers.0.mlp.up_proj';
  /** A random packed weight (unaligned K, groups of 12, perm, weak columns, 5% outliers and a crowded row),
   * its floats exact in fp16. */
  const weight = (): PackedWeight => {
    const { w } = randomPacked({
      rows: 9,
      cols: 29,
      bits: 3,
      groupSize: 12,
      perm: true,
      nOut: 3,
      seed: 5,
      outlierFrac: 0.05,
      outlierCrowd: 0.8,
    });
    const o = w.outliers!;
    return { ...w, scales: f16(w.scales), weak: f16(w.weak), outliers: { ...o, values: f16(o.values) } };
  };
  const layout = { bits: 3, groupSize: 12, nOut: 3 };
  /** Writes the weight's tensors (after `edit`) to a fresh file and reads the linear back. */
  const roundTrip = (
    w: PackedWeight,
    edit: (t: ReturnType<typeof packedTensors>) => void = () => undefined,
    file = path.join(tmp, `outliers${counter++}.safetensors`),
  ) => {
    const tensors = packedTensors(name, w);
    edit(tensors);
    writeSafetensors(file, tensors);
    const st = openSafetensors(file);
    try {
      return { file, w: readPackedLinear(st, name, [w.rows, w.cols], layout) };
    } finally {
      st.close();
    }
  };
  /** The tensor `suffix` of the written weight, its data replaced. */
  const replace =
    (suffix: string, data: Int32Array | Float32Array | Uint8Array) => (t: ReturnType<typeof packedTensors>) => {
      const e = t.find((x) => x.name === `${name}.${suffix}`)!;
      e.data = data;
      if (e.shape.length === 1) e.shape = [data.length];
    };

  it('round-trips bit-exact beside the other packed tensors', () => {
    const w = weight();
    const names = packedTensors(name, w).map((t) => t.name);
    expect(names).toEqual(
      expect.arrayContaining([`${name}.outlier_row_ptr`, `${name}.outlier_col_idx`, `${name}.outlier_values`]),
    );
    const back = roundTrip(w).w;
    expect(back).toEqual(w);
    expect(pref.dequantize(back)).toEqual(pref.dequantize(w));
    // an empty CSR writes nothing and reads back as no outliers
    const none = {
      ...w,
      outliers: { rowPtr: new Int32Array(10), colIdx: new Int32Array(0), values: new Float32Array(0) },
    };
    expect(packedTensors(name, none).some((t) => t.name.includes('outlier'))).toBe(false);
    expect(roundTrip(none).w.outliers).toBeUndefined();
  });

  it('refuses to write a value that fp16 does not hold exactly', () => {
    const w = weight();
    const o = w.outliers!;
    const values = o.values.slice();
    values[o.rowPtr[4] + 2] = 0.1;
    expect(() => packedTensors(name, { ...w, outliers: { ...o, values } })).toThrow(
      `${name}.outlier_values: element ${o.rowPtr[4] + 2} (row 4, column ${o.colIdx[o.rowPtr[4] + 2]}) is 0.10000000149011612, not exact in fp16 (round the outliers to fp16 before packing: they are stored as F16)`,
    );
  });

  it('each fault of the stored CSR is one line naming the file, the tensor and the fault', () => {
    const w = weight();
    const o = w.outliers!;
    const r = 4; // the crowded row
    const at = o.rowPtr[r];
    const fault = (edit: (t: ReturnType<typeof packedTensors>) => void): string => {
      const file = path.join(tmp, `outliers${counter++}.safetensors`);
      const message = errorOf(() => roundTrip(w, edit, file)).message;
      expect(message.split('\n')).toHaveLength(1);
      expect(message.startsWith(`${file}: `), message).toBe(true);
      return message.slice(file.length + 2);
    };
    const cols = (f: (c: Int32Array) => void) => {
      const c = o.colIdx.slice();
      f(c);
      return replace('outlier_col_idx', c);
    };
    expect(fault(cols((c) => ([c[at], c[at + 1]] = [c[at + 1], c[at]])))).toBe(
      `${name}.outlier_col_idx: [${at + 1}] = ${o.colIdx[at]} (row ${r}) is not above the previous ${o.colIdx[at + 1]} (unsorted or duplicated)`,
    );
    expect(fault(cols((c) => (c[at + 1] = c[at])))).toBe(
      `${name}.outlier_col_idx: [${at + 1}] = ${o.colIdx[at]} (row ${r}) is not above the previous ${o.colIdx[at]} (unsorted or duplicated)`,
    );
    expect(fault(cols((c) => (c[at] = 29)))).toBe(
      `${name}.outlier_col_idx: [${at}] = 29 (row ${r}) is outside [0, 29)`,
    );
    expect(fault(cols((c) => (c[at] = -1)))).toBe(
      `${name}.outlier_col_idx: [${at}] = -1 (row ${r}) is outside [0, 29)`,
    );
    // a weak column in the crowded row, in order
    const weakCol = w.weakIdx[0];
    const row = Array.from(o.colIdx.subarray(at, o.rowPtr[r + 1]));
    const withWeak = [...row.slice(1), weakCol].sort((a, b) => a - b);
    expect(fault(cols((c) => c.set(withWeak, at)))).toBe(
      `${name}.outlier_col_idx: [${at + withWeak.indexOf(weakCol)}] = ${weakCol} (row ${r}) is a weak column`,
    );
    const ptr = (f: (p: Int32Array) => void) => {
      const p = o.rowPtr.slice();
      f(p);
      return replace('outlier_row_ptr', p);
    };
    expect(fault(ptr((p) => (p[0] = 1)))).toBe(`${name}.outlier_row_ptr: [0] = 1, expected 0`);
    expect(fault(ptr((p) => (p[3] = p[4] + 1)))).toBe(
      `${name}.outlier_row_ptr: decreases at row 3 (${o.rowPtr[4] + 1} then ${o.rowPtr[4]})`,
    );
    expect(fault(ptr((p) => (p[9] -= 1)))).toBe(
      `${name}.outlier_row_ptr: [9] = ${o.rowPtr[9] - 1}, expected the outlier count ${o.colIdx.length}`,
    );
    // the code at an outlier is not its zero point
    const q = w.qweight.slice();
    const k = w.perm!.indexOf(o.colIdx[at]);
    q[r * packedRowBytes(29, 3) + ((k * 3) >> 3)] ^= 1 << ((k * 3) & 7);
    expect(fault(replace('qweight', q))).toMatch(
      new RegExp(
        `^${name.replaceAll('.', '\\.')}\\.qweight: code of outlier \\(${r}, ${o.colIdx[at]}\\) is \\d, not its zero point \\d$`,
      ),
    );
    // shapes, dtypes, a missing tensor, a non-finite value
    expect(fault(replace('outlier_row_ptr', o.rowPtr.subarray(1)))).toBe(
      `${name}.outlier_row_ptr: I32 [9] does not match the config (expected I32 [10])`,
    );
    expect(fault(replace('outlier_values', o.values.subarray(1)))).toBe(
      `${name}.outlier_values: F16 [${o.colIdx.length - 1}] does not match the config (expected F16 [${o.colIdx.length}])`,
    );
    expect(
      fault((t) =>
        t.splice(
          t.findIndex((x) => x.name === `${name}.outlier_values`),
          1,
        ),
      ),
    ).toBe(
      `${name}.outlier_values: missing, but ${name}.outlier_row_ptr is stored (outliers are outlier_row_ptr, outlier_col_idx, outlier_values: all three or none)`,
    );
    const nan = o.values.slice();
    nan[3] = NaN;
    expect(fault(replace('outlier_values', nan))).toBe(
      `tensor ${name}.outlier_values: element 3 is NaN (stored values must be finite)`,
    );
  });

  let packedDir: string;
  beforeAll(async () => {
    packedDir = await packedCheckpoint();
  });

  it('a whole model loads with outliers in one linear (older files: none)', () => {
    const layerName = 'model.layers.0.self_attn.q_proj';
    const plain = packedLinearsOf(loadModel(packedDir)).get(layerName)!.packed;
    expect(plain.outliers).toBeUndefined();
    const dir = path.join(tmp, `packed-outliers${counter++}`);
    fs.cpSync(packedDir, dir, { recursive: true });
    const withOutliers = addOutliers(dir, layerName);
    const loaded = packedLinearsOf(loadModel(dir)).get(layerName)!.packed;
    expect(loaded.outliers).toEqual(withOutliers.outliers);
    expect(pref.dequantize(loaded)).toEqual(pref.dequantize(withOutliers));
    expect(loaded.outliers!.colIdx.length).toBeGreaterThan(plain.rows);
  });
});
