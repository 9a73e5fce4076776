/**
 * The decode GEMV exists three times (AVX-512, AVX2, portable; kernels/src/packed_gemv.cc), plus the integer walk
 * of 3-bit per-row single inputs on AVX-512 VNNI CPUs (packed_gemv_int.cc, which forced "avx512" turns off): run
 * each forced path (WCT_CPU_PATH, read once at load, hence a child process per path) on the same weights
 * and compare with the reference, for every width and with a G % 16 == 8 group (AVX-512 half step), at an
 * aligned and an unaligned K, with and without CSR outliers, on one input row and on several (the batched GEMV's
 * tiles: m = 2, 3 = 2 + 1, 7 = 4 + 2 + 1, 8 = 4 + 4 and 16, each path with its own rows per pass).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADDON_RELATIVE_PATH, loadNative } from '../../src/native/addon.js';
import * as pref from '../../src/native/packed-ref.js';
import { packageRoot } from '../../src/util/package-root.js';
import { rand32 } from './helpers.js';
import { absProduct, expectWithin, magnitudes, randomPacked, type PackedSpec } from './packed-helpers.js';

/** A case: the weight and the number of input rows m. */
type PathCase = PackedSpec & { m: number };

const specs: PathCase[] = [2, 3, 4, 8].flatMap((bits, i): PathCase[] => [
  { rows: 37, cols: 1032, bits: bits as PackedSpec['bits'], groupSize: 1032, perm: false, nOut: 2, seed: 10 + i, m: 1 },
  { rows: 37, cols: 1032, bits: bits as PackedSpec['bits'], groupSize: 8, perm: true, nOut: 7, seed: 20 + i, m: 8 },
  // unaligned K: the row's last block padded, per row and with a shorter last group
  { rows: 37, cols: 1029, bits: bits as PackedSpec['bits'], groupSize: 1029, perm: false, nOut: 2, seed: 30 + i, m: 1 },
  { rows: 37, cols: 1029, bits: bits as PackedSpec['bits'], groupSize: 40, perm: true, nOut: 3, seed: 40 + i, m: 1 },
  { rows: 37, cols: 1029, bits: bits as PackedSpec['bits'], groupSize: 40, perm: true, nOut: 3, seed: 45 + i, m: 16 },
  { rows: 37, cols: 1029, bits: bits as PackedSpec['bits'], groupSize: 1029, perm: true, nOut: 5, seed: 35 + i, m: 7 },
  // groups starting inside blocks: the dequantized-rows GEMV
  { rows: 37, cols: 1029, bits: bits as PackedSpec['bits'], groupSize: 12, perm: false, nOut: 3, seed: 50 + i, m: 3 },
  // CSR outliers (1%, one row at 80%) on the walk and on the dequantized-rows GEMV
  {
    rows: 37,
    cols: 1029,
    bits: bits as PackedSpec['bits'],
    groupSize: 40,
    perm: true,
    nOut: 3,
    seed: 60 + i,
    outlierFrac: 0.01,
    outlierCrowd: 0.8,
    m: 3,
  },
  {
    rows: 37,
    cols: 1029,
    bits: bits as PackedSpec['bits'],
    groupSize: 12,
    perm: false,
    nOut: 0,
    seed: 70 + i,
    outlierFrac: 0.05,
    m: 2,
  },
]);

/** Child: rebuilds nothing, just calls the raw binding on the weights passed as JSON and prints y. */
const script = `
  const n = require(${JSON.stringify(path.join(packageRoot(), ADDON_RELATIVE_PATH))});
  const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const out = cases.map((c) => {
    const y = new Float32Array(c.m * c.rows);
    n.packedMatmul(c.rows, c.cols, c.bits, c.groupSize, Uint8Array.from(c.qweight), Float32Array.from(c.scales),
      Uint8Array.from(c.zeros), c.perm && Int32Array.from(c.perm), Int32Array.from(c.weakIdx), Float32Array.from(c.weak),
      c.outliers ? Int32Array.from(c.outliers.rowPtr) : null, c.outliers ? Int32Array.from(c.outliers.colIdx) : null,
      c.outliers ? Float32Array.from(c.outliers.values) : null, Float32Array.from(c.x), c.m, y);
    return Array.from(y);
  });
  console.log(JSON.stringify({ path: n.cpuPath(), out }));`;

describe('decode GEMV on every CPU path', () => {
  it('forced portable, avx2 and the native path agree with the reference', () => {
    const cases = specs.map((s) => ({ ...randomPacked(s), m: s.m, x: rand32(s.m * s.cols, s.seed) }));
    const expected = cases.map(({ w, m, x }) => {
      const y = new Float32Array(m * w.rows);
      pref.packedMatmul(w, x, m, y);
      return y;
    });
    const input = JSON.stringify(
      cases.map(({ w, m, x }) => ({
        ...w,
        m,
        qweight: Array.from(w.qweight),
        scales: Array.from(w.scales),
        zeros: Array.from(w.zeros),
        perm: w.perm && Array.from(w.perm),
        weakIdx: Array.from(w.weakIdx),
        weak: Array.from(w.weak),
        outliers: w.outliers && {
          rowPtr: Array.from(w.outliers.rowPtr),
          colIdx: Array.from(w.outliers.colIdx),
          values: Array.from(w.outliers.values),
        },
        x: Array.from(x),
      })),
    );
    const paths = new Set<string>();
    const forcedPaths = ['portable', 'avx2', ...(loadNative().cpuPath() === 'avx512' ? ['avx512'] : []), ''];
    for (const forced of forcedPaths) {
      const r = spawnSync(process.execPath, ['-e', script], {
        input,
        env: { ...process.env, WCT_CPU_PATH: forced },
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
      const { path: used, out } = JSON.parse(r.stdout) as { path: string; out: number[][] };
      if (forced !== '') expect(used).toBe(forced);
      paths.add(used);
      out.forEach((y, i) => {
        const { w, codes, m, x } = cases[i];
        const bound = absProduct(x, magnitudes(w, codes), m, w.rows, w.cols, true);
        expectWithin(y, expected[i], bound, `${used} case ${i} (m = ${m})`);
      });
    }
    expect(paths.size).toBeGreaterThanOrEqual(2);
  });
});
