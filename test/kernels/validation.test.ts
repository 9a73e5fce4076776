/** The native side validates every argument and throws JS errors (never crashes); the loader routes by dtype. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADDON_RELATIVE_PATH, kernelsFor } from '../../src/native/addon.js';
import { packageRoot } from '../../src/util/package-root.js';
import { gemmDims, type FloatArray, type GemmDims } from '../../src/native/types.js';
import { expectClose, native, rand32, ref } from './helpers.js';

const f32 = (n: number) => new Float32Array(n);

describe('loader', () => {
  it('routes Float32Array to native and Float64Array to the reference', () => {
    expect(kernelsFor(f32(1)).name).toBe('native');
    expect(kernelsFor(new Float64Array(1)).name).toBe('reference');
    expect(() => kernelsFor(new Int32Array(1) as unknown as FloatArray)).toThrow(
      /expected a Float32Array or Float64Array, got Int32Array/,
    );
  });

  it('finds the addon under the package root', () => {
    expect(fs.existsSync(path.join(packageRoot(), 'package.json'))).toBe(true);
    expect(fs.existsSync(path.join(packageRoot(), ADDON_RELATIVE_PATH))).toBe(true);
  });

  it('reports the CPU path, bf16 support and threads', () => {
    expect(['avx512', 'avx2', 'portable']).toContain(native.cpuPath());
    expect(typeof native.bf16Native()).toBe('boolean');
    const before = native.threads();
    expect(before).toBeGreaterThanOrEqual(1);
    native.setThreads(1);
    expect(native.threads()).toBe(1);
    expect(native.blasThreads()).toBe(1);
    native.setThreads(3);
    expect([native.threads(), native.blasThreads()]).toEqual([3, 3]);
    native.setThreads(before);
    expect(native.threads()).toBe(before);
    expect(native.blasThreads()).toBe(before);
    expect(() => native.setThreads(0)).toThrow(RangeError);
  });

  it('describes its build and the CPU features the dispatch found', () => {
    const b = native.buildInfo();
    expect(b.compiler).toMatch(/^(gcc|clang) \d+\.\d+/);
    expect(b.openblas).toMatch(/^OpenBLAS \d+\.\d+\.\d+ .*\(core \w+\)$/);
    expect(b.onednn).toMatch(/^\d+\.\d+\.\d+ \(/);
    expect(Number(b.openmp)).toBeGreaterThanOrEqual(201107); // OpenMP 3.1 or later, yyyymm
    const features = b.cpuFeatures.split(' ').filter((f) => f !== '');
    for (const f of features)
      expect([
        'avx512f',
        'avx512dq',
        'avx512bw',
        'avx512vl',
        'avx512vbmi',
        'avx512vnni',
        'avx2',
        'fma',
        'f16c',
      ]).toContain(f);
    expect(native.cpuPath() === 'avx512').toBe(
      ['avx512f', 'avx512dq', 'avx512bw', 'avx512vl'].every((f) => features.includes(f)),
    );
  });

  it('runs the forced portable and avx2 paths with the same results', () => {
    const x = rand32(4099, 1, -5, 5);
    const expected = f32(x.length);
    ref.unaryForward('gelu', x, expected);
    const script = `
      const n = require(${JSON.stringify(path.join(packageRoot(), ADDON_RELATIVE_PATH))});
      const x = Float32Array.from(JSON.parse(process.argv[1])), y = new Float32Array(x.length);
      n.unaryForward(1, x, y);
      const s = new Float32Array(x.length); n.softmaxForward(x, s, 1, x.length);
      console.log(JSON.stringify({ path: n.cpuPath(), y: Array.from(y), sum: s.reduce((a, b) => a + b, 0) }));`;
    for (const forced of ['portable', 'avx2']) {
      const r = spawnSync(process.execPath, ['-e', script, JSON.stringify(Array.from(x))], {
        env: { ...process.env, WCT_CPU_PATH: forced },
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { path: string; y: number[]; sum: number };
      if (forced === 'portable') expect(out.path).toBe('portable');
      expectClose(out.y, expected, { rtol: 4e-7, atol: 1e-7 }, `gelu on ${out.path}`);
      expect(out.sum).toBeCloseTo(1, 4);
    }
  });
});

describe('native argument validation', () => {
  it('rejects arrays of the wrong type with a TypeError naming the argument', () => {
    expect(() => native.gemm(new Float64Array(4), f32(4), f32(4), gemmDims(2, 2, 2))).toThrow(
      /^gemm: a must be a Float32Array, got Float64Array$/,
    );
    expect(() => native.affine(f32(2), [0, 0] as unknown as Float32Array, 1, 0)).toThrow(TypeError);
    expect(() =>
      native.embeddingForward(f32(4), new Float64Array(2) as unknown as Int32Array, f32(4), {
        rows: 2,
        dim: 2,
        vocab: 2,
      }),
    ).toThrow(/ids must be a Int32Array, got Float64Array/);
    expect(() =>
      native.crossEntropyForward(f32(4), f32(2) as unknown as Int32Array, f32(2), f32(2), {
        rows: 2,
        vocab: 2,
        ignoreIndex: -100,
      }),
    ).toThrow(TypeError);
  });

  it('rejects buffers that are too small with a RangeError naming the argument', () => {
    expect(() => native.gemm(f32(4), f32(4), f32(3), gemmDims(2, 2, 2))).toThrow(
      /^gemm: c has 3 elements, needs at least 4$/,
    );
    expect(() => native.gemm(f32(8), f32(4), f32(8), gemmDims(2, 2, 2, { batch: 3, strideA: 4, strideC: 4 }))).toThrow(
      /gemm: a has 8 elements, needs at least 12/,
    );
    expect(() => native.gemmBf16(f32(4), f32(3), f32(4), gemmDims(2, 2, 2))).toThrow(/gemmBf16: b has 3 elements/);
    expect(() =>
      native.binary('add', f32(6), f32(2), f32(5), { shape: [2, 3], stridesA: [3, 1], stridesB: [0, 1] }),
    ).toThrow(/binary: b has 2 elements, needs at least 3/);
    expect(() => native.sumTo(f32(6), f32(2), { shape: [2, 3], stridesA: [0, 1], stridesB: [0, 1] })).toThrow(
      /sumTo: out has 2 elements, needs at least 3/,
    );
    expect(() => native.rmsnormForward(f32(6), f32(2), f32(6), f32(2), { rows: 2, cols: 3, eps: 1e-5 })).toThrow(
      /rmsnormForward: w has 2 elements/,
    );
    expect(() =>
      native.layernormBackward(f32(6), f32(3), f32(2), f32(1), f32(6), f32(6), f32(3), f32(3), {
        rows: 2,
        cols: 3,
        eps: 1e-5,
      }),
    ).toThrow(/rstd has 1 elements/);
    expect(() => native.softmaxBackward(f32(6), f32(6), f32(5), { rows: 2, cols: 3 })).toThrow(/softmaxBackward: dx/);
    expect(() =>
      native.rope(f32(8), f32(8), f32(1), f32(2), { batch: 1, seq: 2, heads: 1, headDim: 4 }, false),
    ).toThrow(/^rope: cos has 1 elements, needs at least 4$/);
    const d = { batch: 1, tq: 2, tk: 3, heads: 2, kvHeads: 1, headDim: 4, scale: 0.5 };
    expect(() => native.attentionForward(f32(16), f32(12), f32(12), f32(16), f32(11), d)).toThrow(
      /attentionForward: probs has 11 elements, needs at least 12/,
    );
    expect(() =>
      native.attentionBackward(f32(16), f32(12), f32(11), f32(12), f32(16), f32(16), f32(12), f32(12), d),
    ).toThrow(/attentionBackward: v has 11/);
    expect(() =>
      native.crossEntropyForward(f32(4), new Int32Array(1), f32(2), f32(2), { rows: 2, vocab: 2, ignoreIndex: -100 }),
    ).toThrow(/targets has 1 elements/);
    expect(() => native.embeddingBackward(f32(4), new Int32Array(2), f32(3), { rows: 2, dim: 2, vocab: 2 })).toThrow(
      /dTable has 3 elements/,
    );
    expect(() => native.unaryBackward('relu', f32(4), f32(4), f32(3))).toThrow(/unaryBackward: dx has 3 elements/);
  });

  it('rejects bad dims', () => {
    expect(() => native.gemm(f32(4), f32(4), f32(4), gemmDims(-2, 2, 2))).toThrow(
      /gemm: m must be a non-negative integer/,
    );
    expect(() => native.gemm(f32(4), f32(4), f32(4), gemmDims(1.5, 2, 2))).toThrow(RangeError);
    expect(() => native.gemm(f32(4), f32(4), f32(4), { m: 2, n: 2, k: 2 } as GemmDims)).toThrow(
      /gemm: batch must be a number, got undefined/,
    );
    expect(() => native.gemm(f32(4), f32(4), f32(4), gemmDims(2 ** 40, 2 ** 40, 2))).toThrow(RangeError);
    expect(() => native.softmaxForward(f32(4), f32(4), { rows: 2 ** 30, cols: 2 ** 30 })).toThrow(RangeError);
    expect(() =>
      native.binary('add', f32(1), f32(1), f32(1), {
        shape: [1, 1, 1, 1, 1, 1, 1, 1, 1],
        stridesA: [0, 0, 0, 0, 0, 0, 0, 0, 0],
        stridesB: [0, 0, 0, 0, 0, 0, 0, 0, 0],
      }),
    ).toThrow(/rank 9/);
  });

  it('keeps working after rejected calls', () => {
    const c = f32(4);
    native.gemm(Float32Array.from([1, 2, 3, 4]), Float32Array.from([1, 0, 0, 1]), c, gemmDims(2, 2, 2));
    expect(Array.from(c)).toEqual([1, 2, 3, 4]);
  });
});
