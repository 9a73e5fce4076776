/**
 * GWQ-style CSR outliers of a packed weight (kernels/PACKED.md, "Sparse outliers"): every native kernel
 * (dequantize, dequantizeRows, the decode GEMV, the small-m GEMV loop, the panel GEMM, dx = dy Ŵ, weakGrad and
 * outlierGrad) against the reference (src/native/packed-ref.ts) within PACKED_REL (packed-helpers.ts) as for
 * the dense part, on odd sizes (K not a multiple of 8, G not dividing K, groups inside blocks), with and
 * without perm and weak columns, with no, one, 1% and 5% outliers and a row holding 80% of its columns; the
 * native argument checks (a bad CSR throws, never crashes); determinism; validatePacked's refusals.
 */
import { describe, expect, it } from 'vitest';
import {
  dequantize,
  outlierGrad,
  packedMatmul,
  packedMatmulT,
  packedNative,
  packedRowBytes,
  validatePacked,
  type PackedWeight,
} from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { rand32 } from './helpers.js';
import { checkProducts, randomPacked, type PackedSpec } from './packed-helpers.js';

/** (K, group sizes): per row, on blocks, not dividing K, inside blocks (G % 8 != 0). */
const LAYOUTS: [number, number[]][] = [
  [13, [13, 5]],
  [129, [129, 8, 32, 43]],
  [172, [172, 64, 12]],
];

/** Outlier densities: none (an empty CSR), exactly one, 1%, 5%, 1% with one row at 80%. */
type Density = 'none' | 'one' | '1%' | '5%' | 'crowded';
const DENSITIES: Density[] = ['none', 'one', '1%', '5%', 'crowded'];

type BaseSpec = Omit<PackedSpec, 'outlierFrac' | 'outlierCrowd'>;

/** The spec with the density's outliers (`one`: in row floor(rows / 2), one of its cols - nOut free columns). */
function specFor(base: BaseSpec, d: Density): PackedSpec {
  switch (d) {
    case 'none':
      return { ...base, outlierFrac: 0 };
    case 'one':
      return { ...base, outlierCrowd: 1 / (base.cols - base.nOut) };
    case '1%':
      return { ...base, outlierFrac: 0.01 };
    case '5%':
      return { ...base, outlierFrac: 0.05 };
    case 'crowded':
      return { ...base, outlierFrac: 0.01, outlierCrowd: 0.8 };
  }
}

function nnz(w: PackedWeight): number {
  return w.outliers?.colIdx.length ?? 0;
}

type Outliers = NonNullable<PackedWeight['outliers']>;

/** The small weight of the argument checks (5 x 13, 3 bits, G 8, perm, 2 weak columns), without outliers. */
const SMALL: BaseSpec = { rows: 5, cols: 13, bits: 3, groupSize: 8, perm: true, nOut: 2, seed: 3 };

/** SMALL with 30% outliers, and those outliers. */
function smallWithOutliers(): { w: PackedWeight; o: Outliers } {
  const { w } = randomPacked({ ...SMALL, outlierFrac: 0.3 });
  return { w, o: w.outliers! };
}

/** w with some of its outlier arrays (and its qweight) replaced. */
function withOutliers(w: PackedWeight, over: Partial<Outliers>, qweight = w.qweight): PackedWeight {
  return { ...w, qweight, outliers: { ...w.outliers!, ...over } };
}

/** The first row of `o` with at least `n` outliers. */
function firstRowWith(o: Outliers, n: number): number {
  return o.rowPtr.findIndex((p, r) => r + 1 < o.rowPtr.length && o.rowPtr[r + 1] - p >= n);
}

/** A copy of o.colIdx with [p] set to j. */
function colIdxWith(o: Outliers, p: number, j: number): Int32Array {
  const c = o.colIdx.slice();
  c[p] = j;
  return c;
}

/** A copy of o.colIdx with [p] and [p + 1] swapped. */
function colIdxSwapped(o: Outliers, p: number): Int32Array {
  const c = o.colIdx.slice();
  [c[p], c[p + 1]] = [c[p + 1], c[p]];
  return c;
}

describe('packed kernels with CSR outliers vs reference', () => {
  it('the test weights are valid and have the outliers asked for', () => {
    const { w } = randomPacked(
      specFor({ rows: 9, cols: 172, bits: 3, groupSize: 12, perm: true, nOut: 5, seed: 1 }, 'one'),
    );
    validatePacked(w, 'one');
    expect(nnz(w)).toBe(1);
    const crowd = randomPacked(
      specFor({ rows: 9, cols: 172, bits: 3, groupSize: 12, perm: true, nOut: 5, seed: 2 }, 'crowded'),
    ).w;
    validatePacked(crowd, 'crowd');
    const o = crowd.outliers!;
    expect(o.rowPtr[5] - o.rowPtr[4]).toBe(Math.round(0.8 * 167));
    expect(o.rowPtr[1] - o.rowPtr[0]).toBe(Math.round(0.01 * 167));
  });

  it('dequantize and dequantizeRows are exact', () => {
    let seed = 1;
    for (const bits of [2, 3, 4, 8] as const) {
      for (const [cols, groupSizes] of LAYOUTS) {
        for (const groupSize of groupSizes) {
          for (const perm of [false, true]) {
            for (const d of DENSITIES) {
              const nOut = seed % 3 === 0 ? 0 : Math.min(5, cols - 2);
              const { w } = randomPacked(specFor({ rows: 11, cols, bits, groupSize, perm, nOut, seed: seed++ }, d));
              const label = `${cols} cols, ${bits} bits, G ${groupSize}, perm ${perm}, nnz ${nnz(w)}`;
              expect(dequantize(w), label).toEqual(pref.dequantize(w));
              const ids = Int32Array.of(5, 0, 5, 10);
              const [rows, rowsRef] = [new Float32Array(4 * cols), new Float32Array(4 * cols)];
              packedNative.dequantizeRows(w, ids, rows);
              pref.packedReference.dequantizeRows(w, ids, rowsRef);
              expect(rows, label).toEqual(rowsRef);
            }
          }
        }
      }
    }
  });

  for (const bits of [2, 3, 4, 8] as const) {
    it(`${bits}-bit products and gradients (GEMV m = 1, GEMV loop m = 3, panel GEMM m = 17)`, () => {
      let seed = 5000 * bits;
      for (const [cols, groupSizes] of LAYOUTS) {
        for (const groupSize of groupSizes) {
          for (const perm of [false, true]) {
            for (const nOut of [0, 5]) {
              for (const d of DENSITIES) {
                const spec = specFor({ rows: 13, cols, bits, groupSize, perm, nOut, seed: seed++ }, d);
                checkProducts(spec, 1);
                checkProducts(spec, seed % 2 === 0 ? 3 : 17);
              }
            }
          }
        }
      }
    });
  }

  it('outlierGrad over more input rows than one block (m = 300, 513)', () => {
    for (const [m, seed] of [
      [300, 14],
      [513, 15],
    ] as const) {
      const spec = { rows: 13, cols: 129, bits: 4 as const, groupSize: 43, perm: true, nOut: 2, seed };
      checkProducts({ ...spec, outlierFrac: 0.05, outlierCrowd: 0.8 }, m);
    }
  });

  it('many rows, several panels and threads, a crowded row at K = 4100', () => {
    checkProducts(
      {
        rows: 67,
        cols: 4100,
        bits: 4,
        groupSize: 128,
        perm: true,
        nOut: 7,
        seed: 11,
        outlierFrac: 0.01,
        outlierCrowd: 0.8,
      },
      1,
    );
    checkProducts(
      { rows: 67, cols: 4100, bits: 3, groupSize: 4100, perm: false, nOut: 0, seed: 12, outlierFrac: 0.05 },
      1,
    );
    checkProducts(
      {
        rows: 1100,
        cols: 1029,
        bits: 3,
        groupSize: 1029,
        perm: true,
        nOut: 3,
        seed: 13,
        outlierFrac: 0.01,
        outlierCrowd: 0.8,
      },
      17,
    );
  });

  it('reads the outlier values on every call, and x only at its K entries', () => {
    const { w } = randomPacked({
      rows: 7,
      cols: 13,
      bits: 4,
      groupSize: 5,
      perm: true,
      nOut: 1,
      seed: 9,
      outlierFrac: 0.3,
    });
    const o = w.outliers!;
    const r = firstRowWith(o, 1);
    const p = o.rowPtr[r];
    for (const m of [1, 17]) {
      const buf = new Float32Array(m * 13 + 8).fill(NaN);
      buf.set(rand32(m * 13, m));
      const x = buf.subarray(0, m * 13);
      const [y0, y1] = [new Float32Array(m * 7), new Float32Array(m * 7)];
      packedMatmul(w, x, m, y0);
      expect(y0.every(Number.isFinite), `m=${m}`).toBe(true);
      o.values[p] += 1;
      packedMatmul(w, x, m, y1);
      o.values[p] -= 1;
      expect(y1[r] - y0[r]).toBeCloseTo(x[o.colIdx[p]], 5);
    }
  });

  it('is deterministic: the same bits on every call (threaded dx and outlierGrad)', () => {
    const { w } = randomPacked({
      rows: 300,
      cols: 1029,
      bits: 4,
      groupSize: 64,
      perm: true,
      nOut: 3,
      seed: 21,
      outlierFrac: 0.05,
      outlierCrowd: 0.8,
    });
    const m = 40;
    const dy = rand32(m * 300, 1);
    const x = rand32(m * 1029, 2);
    const runs = [0, 1].map(() => {
      const dx = new Float32Array(m * 1029);
      packedMatmulT(w, dy, m, dx);
      const dv = new Float32Array(nnz(w));
      outlierGrad(w, dy, x, m, dv);
      return [dx, dv];
    });
    expect(runs[1][0]).toEqual(runs[0][0]);
    expect(runs[1][1]).toEqual(runs[0][1]);
  });
});

describe('packed outlier argument checks', () => {
  const { w, o } = smallWithOutliers();
  const x = new Float32Array(13);
  const y = new Float32Array(5);
  const withO = (over: Partial<Outliers>): PackedWeight => withOutliers(w, over);

  it('native calls throw RangeError / TypeError naming the argument (never crash)', () => {
    expect(o.colIdx.length).toBeGreaterThan(4);
    expect(() => packedMatmul(withO({ rowPtr: o.rowPtr.subarray(1) }), x, 1, y)).toThrow(
      /^packedMatmul: outlierRowPtr has 5 elements, needs at least 6$/,
    );
    expect(() => packedMatmul(withO({ rowPtr: o.rowPtr.map((p) => p + 1) }), x, 1, y)).toThrow(
      /outlierRowPtr\[0\] = 1, expected 0/,
    );
    const dec = o.rowPtr.slice();
    dec[2] = dec[3] + 1;
    expect(() => packedMatmulT(withO({ rowPtr: dec }), y, 1, x)).toThrow(
      /^packedMatmulT: outlierRowPtr decreases at row 2/,
    );
    const far = o.rowPtr.slice();
    far[5] += 1000;
    expect(() => packedMatmul(withO({ rowPtr: far }), x, 1, y)).toThrow(
      /outlierColIdx has \d+ elements, needs at least/,
    );
    expect(() => packedMatmul(withO({ values: o.values.subarray(1) }), x, 1, y)).toThrow(
      /outlierValues has \d+ elements/,
    );
    const p1 = o.rowPtr[firstRowWith(o, 1)];
    expect(() => packedNative.dequantizeInto(withO({ colIdx: colIdxWith(o, p1, 13) }), new Float32Array(65))).toThrow(
      /^dequantize: outlierColIdx\[\d+\] = 13 \(row \d+\) is outside \[0, 13\)$/,
    );
    const neg = colIdxWith(o, p1, -1);
    expect(() => packedMatmul(withO({ colIdx: neg }), x, 17, new Float32Array(85))).toThrow(/is outside/);
    const unsorted = colIdxSwapped(o, o.rowPtr[firstRowWith(o, 2)]);
    expect(() => outlierGrad(withO({ colIdx: unsorted }), y, x, 1, new Float32Array(o.colIdx.length))).toThrow(
      /^outlierGrad: outlierColIdx must be sorted ascending without repeats within a row/,
    );
    expect(() => outlierGrad(w, y, x, 1, new Float32Array(o.colIdx.length - 1))).toThrow(
      /^outlierGrad: dvalues has \d+ elements, needs at least/,
    );
    expect(() => outlierGrad(w, y, x, 2, new Float32Array(o.colIdx.length))).toThrow(
      /dy has 5 elements, needs at least 10/,
    );
  });

  it('outliers absent, or an empty CSR, give the dense results', () => {
    const { w: dense } = randomPacked(SMALL);
    const empty: PackedWeight = {
      ...dense,
      outliers: { rowPtr: new Int32Array(6), colIdx: new Int32Array(0), values: new Float32Array(0) },
    };
    const xs = rand32(13, 4);
    const [a, b] = [new Float32Array(5), new Float32Array(5)];
    packedMatmul(dense, xs, 1, a);
    packedMatmul(empty, xs, 1, b);
    expect(b).toEqual(a);
    outlierGrad(dense, y, x, 1, new Float32Array(0));
  });
});

describe('validatePacked refuses a broken CSR', () => {
  const { w, o } = smallWithOutliers();
  const bad = (over: Partial<Outliers>, q?: Uint8Array) => () =>
    validatePacked(withOutliers(w, over, q), 'mlp.up_proj');
  const r2 = firstRowWith(o, 2);
  const at = o.rowPtr[r2];

  it('accepts the valid weight', () => {
    expect(() => validatePacked(w, 'mlp.up_proj')).not.toThrow();
  });

  it('row pointers: wrong length, not from 0, decreasing, not ending at nnz', () => {
    expect(bad({ rowPtr: o.rowPtr.subarray(1) })).toThrow(
      /^mlp\.up_proj: outliers\.rowPtr has 5 elements, expected 6$/,
    );
    expect(bad({ rowPtr: o.rowPtr.map((p, i) => (i === 0 ? 1 : p)) })).toThrow(
      /^mlp\.up_proj: outliers\.rowPtr \[0\] = 1, expected 0$/,
    );
    const dec = o.rowPtr.slice();
    dec[2] = dec[3] + 1;
    expect(bad({ rowPtr: dec })).toThrow(/^mlp\.up_proj: outliers\.rowPtr decreases at row 2 \(\d+ then \d+\)$/);
    expect(bad({ rowPtr: o.rowPtr.map((p, i) => (i === 5 ? p - 1 : p)) })).toThrow(
      /^mlp\.up_proj: outliers\.rowPtr \[5\] = \d+, expected the outlier count \d+$/,
    );
    expect(bad({ values: o.values.subarray(1) })).toThrow(
      /^mlp\.up_proj: outliers\.values has \d+ elements, expected \d+$/,
    );
  });

  it('column indices: out of range, unsorted, duplicated, on a weak column', () => {
    const withCol = (p: number, j: number) => colIdxWith(o, p, j);
    expect(bad({ colIdx: withCol(at + 1, 13) })).toThrow(
      /^mlp\.up_proj: outliers\.colIdx \[\d+\] = 13 \(row \d\) is outside \[0, 13\)$/,
    );
    expect(bad({ colIdx: withCol(at, -2) })).toThrow(/outliers\.colIdx \[\d+\] = -2 \(row \d\) is outside/);
    expect(bad({ colIdx: colIdxSwapped(o, at) })).toThrow(
      /outliers\.colIdx \[\d+\] = \d+ \(row \d\) is not above the previous \d+ \(unsorted or duplicated\)/,
    );
    expect(bad({ colIdx: withCol(at + 1, o.colIdx[at]) })).toThrow(/unsorted or duplicated/);
    // a weak column between its neighbours, so that only the overlap is wrong (its code is the zero point too)
    const weakCol = w.weakIdx[0];
    const rowCols = Array.from(o.colIdx.subarray(at, o.rowPtr[r2 + 1]));
    const c = o.colIdx.slice();
    c.set(
      [...rowCols.slice(1), weakCol].sort((a, b) => a - b),
      at,
    );
    expect(bad({ colIdx: c })).toThrow(
      new RegExp(`outliers\\.colIdx \\[\\d+\\] = ${weakCol} \\(row ${r2}\\) is a weak column`),
    );
  });

  it('a code at an outlier that is not its zero point', () => {
    const q = w.qweight.slice();
    const j = o.colIdx[at];
    const k = w.perm!.indexOf(j);
    const rowBytes = packedRowBytes(13, 3);
    // flip the lowest bit of the outlier's 3-bit code
    const bit = k * 3;
    q[r2 * rowBytes + (bit >> 3)] ^= 1 << (bit & 7);
    expect(bad({}, q)).toThrow(
      new RegExp(`^mlp\\.up_proj: qweight code of outlier \\(${r2}, ${j}\\) is \\d, not its zero point \\d$`),
    );
  });
});
