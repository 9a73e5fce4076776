/**
 * Packed low-bit weight kernels, measured against this machine's own ceilings in the same run:
 *  (a) memory read bandwidth (every thread summing a 1 GiB buffer): the ceiling of a decode GEMV;
 *  (b) decode GEMV (m = 1) GB/s and its fraction of the read bandwidth probed right before it (a shared
 *      machine's bandwidth drifts within a run), 3- and 4-bit, weak columns 0 / 0.3% / 3% of K, cold: calls
 *      cycle through >= 3x L3 (COLD_BYTES) of distinct copies of the weight, so each streams it from DRAM as a
 *      model's decode step does;
 *  (b') hot decode rate on one thread (weights in L2, CPU time): each GEMV kernel's own arithmetic, the figure
 *      that says whether (b) can be bandwidth-bound and the steadiest one on a shared machine;
 *  (c) batched products at m = 512 (forward x Ŵᵀ and transposed dy Ŵ) vs dense cblas sgemm;
 *  (d) small m (batched decode, speculative decoding, short prompts): cold time per call of m = 1 .. 32 rows at the
 *      llama-7b shapes, as one call (the batched GEMV up to 16, reading each weight row once, the panel GEMM
 *      above) and as m calls of one row, with each m's ratio to m = 1;
 *  (e) GWQ-style CSR outliers: the cold decode GEMV of the same layer with 1% outliers against without them,
 *      measured in the same rounds (ratio per round, median), beside the ratio of the bytes they read; and the
 *      batched products at m = 512 with and without them.
 * Shapes are N x K (out x in) of opt-125m, opt-1.3b and llama-7b linears. Writes bench/results/packed.{json,md}.
 * Standalone: `npm run build && node dist/bench/packed.js`.
 */
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { loadNative } from '../src/native/addon.js';
import {
  packedBinding,
  packedBytes,
  packedMatmul,
  packedMatmulT,
  type PackedBits,
  type PackedWeight,
} from '../src/native/packed.js';
import { Rng } from '../src/util/rng.js';
import { hostMachine, writeReport, type Row } from './report.js';

const SHAPES: [string, number, number][] = [
  ['opt-125m', 768, 768],
  ['opt-125m', 3072, 768],
  ['opt-125m', 768, 3072],
  ['opt-1.3b', 2048, 2048],
  ['opt-1.3b', 8192, 2048],
  ['opt-1.3b', 2048, 8192],
  ['llama-7b', 4096, 4096],
  ['llama-7b', 11008, 4096],
  ['llama-7b', 4096, 11008],
];

/** Best seconds per call over a few rounds of calls filling about `budget` seconds each. */
function secondsPerCall(f: () => void, budget = 0.05, rounds = 3): number {
  f(); // warm-up
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    let iters = 0;
    const t0 = performance.now();
    let dt = 0;
    do {
      f();
      iters++;
      dt = (performance.now() - t0) / 1000;
    } while (dt < budget);
    best = Math.min(best, dt / iters);
  }
  return best;
}

/** Best seconds per call of each of `fs`, measured in turn for `rounds` rounds of about `budget` s each, so a
 * slow spell of this shared machine hits all of them rather than one side of a ratio. */
function interleavedSecondsPerCall(fs: (() => void)[], rounds = 4, budget = 0.05): number[] {
  const best = fs.map(() => Infinity);
  for (let r = 0; r < rounds; r++) fs.forEach((f, i) => (best[i] = Math.min(best[i], secondsPerCall(f, budget, 1))));
  return best;
}

/** A packed weight of random bytes (speed does not depend on the values); nOut weak columns spread over K. */
function randomWeight(
  rows: number,
  cols: number,
  bits: PackedBits,
  groupSize: number,
  nOut: number,
  rng: Rng,
): PackedWeight {
  const groups = rows * (cols / groupSize);
  return {
    rows,
    cols,
    bits,
    groupSize,
    qweight: Uint8Array.from({ length: packedBytes(rows, cols, bits) }, () => Math.floor(rng.next() * 256)),
    scales: Float32Array.from({ length: groups }, () => 0.01 + 0.01 * rng.next()),
    zeros: new Uint8Array(groups).fill(2 ** (bits - 1)),
    perm: null,
    weakIdx: Int32Array.from({ length: nOut }, (_, j) => Math.floor((j * cols) / nOut)),
    weak: Float32Array.from({ length: rows * nOut }, () => rng.next() - 0.5),
  };
}

/** Bytes a GEMV reads from memory: packed codes, scales (f32) and zeros (u8), weak columns (f32); not x or y
 * (K + N floats, cache-resident). */
function weightBytes(w: PackedWeight): number {
  return w.qweight.length + 5 * w.scales.length + 4 * w.weak.length;
}

/** Total size of the distinct weight copies a cold GEMV cycles through: over 3x a 32 MiB L3, so no call finds
 * its weight in cache (a decode step reads every layer's weights once before coming back to this one). */
const COLD_BYTES = 100 * 2 ** 20;

/** Read bandwidth (GB/s) of every pool thread summing a 512 MiB buffer: the GEMV's ceiling, probed next to
 * each GEMV measurement so both see the same state of this shared machine. */
export function readBandwidth(): number {
  return packedBinding().benchReadBandwidth(2 ** 29, 2) / 1e9;
}

export function median(v: number[]): number {
  const s = [...v].sort((p, q) => p - q);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Cold GEMV against the read bandwidth, in `rounds` pairs: each round probes the bandwidth, then cycles
 * through the copies (f(i), i = 0 .. copies-1) for about `budget` s keeping its best seconds per call.
 * Returns the medians over rounds of the GEMV's GB/s (`bytes` per call), of the bandwidth, and of each
 * round's ratio of the two (a shared machine's bandwidth drifts and spikes; a ratio taken within one round
 * and a median over rounds are steady where a best or a single probe is not). */
function coldGemvVsBandwidth(f: (i: number) => void, copies: number, bytes: number, rounds = 5, budget = 0.08) {
  for (let i = 0; i < copies; i++) f(i); // warm-up: page in every copy
  const gbs: number[] = [];
  const bw: number[] = [];
  for (let r = 0; r < rounds; r++) {
    bw.push(readBandwidth());
    gbs.push(bytes / coldSeconds(f, copies, budget) / 1e9);
  }
  return { gbs: median(gbs), bandwidth: median(bw), fraction: median(gbs.map((g, r) => g / bw[r])) };
}

/**
 * w with `frac` of each row's columns as CSR outliers: round(frac * K) per row, evenly spread from a random offset
 * (sorted, distinct), random values; weak columns may coincide and codes are not set to the zero points (neither
 * changes the speed; validatePacked would refuse it, the kernels do not look).
 */
function withOutliers(w: PackedWeight, frac: number, rng: Rng): PackedWeight {
  const per = Math.round(frac * w.cols);
  const rowPtr = Int32Array.from({ length: w.rows + 1 }, (_, r) => r * per);
  const colIdx = new Int32Array(w.rows * per);
  for (let r = 0; r < w.rows; r++) {
    const u = rng.next();
    for (let t = 0; t < per; t++) colIdx[r * per + t] = Math.floor(((t + u) * w.cols) / per);
  }
  return { ...w, outliers: { rowPtr, colIdx, values: randomArray(colIdx.length, rng) } };
}

/** Bytes a GEMV reads of w's outliers: a 4-byte column and a 4-byte value each, and the row pointers. */
function outlierBytes(w: PackedWeight): number {
  return w.outliers === undefined ? 0 : 8 * w.outliers.colIdx.length + 4 * w.outliers.rowPtr.length;
}

/** Distinct copies of w filling COLD_BYTES (outliers included), so that each call streams one from DRAM. */
function coldCopies(w: PackedWeight): PackedWeight[] {
  const bytes = weightBytes(w) + outlierBytes(w);
  return Array.from({ length: Math.ceil(COLD_BYTES / bytes) }, (_, i) => {
    if (i === 0) return w;
    const o = w.outliers;
    return {
      ...w,
      qweight: w.qweight.slice(),
      scales: w.scales.slice(),
      zeros: w.zeros.slice(),
      weak: w.weak.slice(),
      outliers: o && { rowPtr: o.rowPtr.slice(), colIdx: o.colIdx.slice(), values: o.values.slice() },
    };
  });
}

/** Best cold seconds per call of f over its copies in about `budget` s. */
function coldSeconds(f: (i: number) => void, copies: number, budget: number): number {
  let s = Infinity;
  const t0 = performance.now();
  do {
    const c0 = performance.now();
    for (let i = 0; i < copies; i++) f(i);
    s = Math.min(s, (performance.now() - c0) / 1000 / copies);
  } while ((performance.now() - t0) / 1000 < budget);
  return s;
}

/** The cold decode GEMV (and the m = 512 products) of a layer with 1% outliers against the same layer without. */
function outlierRows(rng: Rng): { gemv: Row[]; gemm: Row[] } {
  const frac = 0.01;
  const gemv: Row[] = [];
  for (const [model, n, k, bits, g] of [
    ['opt-1.3b', 2048, 8192, 4, 128],
    ['llama-7b', 4096, 4096, 4, 128],
    ['llama-7b', 11008, 4096, 4, 128],
    ['llama-7b', 4096, 4096, 3, 4096],
  ] as const) {
    const w = randomWeight(n, k, bits, g, 2 * Math.round((0.003 * k) / 2), rng);
    const wo = withOutliers(w, frac, rng);
    const [plain, sparse] = [coldCopies(w), coldCopies(wo)];
    const x = randomArray(k, rng);
    const y = new Float32Array(n);
    const fs = [(i: number) => packedMatmul(plain[i], x, 1, y), (i: number) => packedMatmul(sparse[i], x, 1, y)];
    const copies = [plain.length, sparse.length];
    fs.forEach((f, j) => {
      for (let i = 0; i < copies[j]; i++) f(i); // warm-up: page in every copy
    });
    const ratios: number[] = [];
    const [us0, us1]: number[][] = [[], []];
    for (let r = 0; r < 5; r++) {
      const [s0, s1] = fs.map((f, j) => coldSeconds(f, copies[j], 0.08));
      us0.push(s0 * 1e6);
      us1.push(s1 * 1e6);
      ratios.push(s1 / s0);
    }
    gemv.push({
      model,
      'N x K': `${n}x${k}`,
      bits,
      G: g,
      outliers: `${frac * 100}% (${wo.outliers!.colIdx.length})`,
      'us without': median(us0),
      'us with': median(us1),
      'time ratio': median(ratios),
      'bytes ratio': (weightBytes(w) + outlierBytes(wo)) / weightBytes(w),
    });
  }
  const [n, k, m] = [4096, 4096, 512];
  const w = randomWeight(n, k, 4, 128, 12, rng);
  const wo = withOutliers(w, frac, rng);
  const x = randomArray(m * k, rng);
  const dy = randomArray(m * n, rng);
  const y = new Float32Array(m * n);
  const dx = new Float32Array(m * k);
  const [fwd0, fwd1, dx0, dx1] = interleavedSecondsPerCall(
    [
      () => packedMatmul(w, x, m, y),
      () => packedMatmul(wo, x, m, y),
      () => packedMatmulT(w, dy, m, dx),
      () => packedMatmulT(wo, dy, m, dx),
    ],
    3,
  );
  const gemm = [
    { product: 'y = x Ŵᵀ', 'ms without': fwd0 * 1e3, 'ms with': fwd1 * 1e3, 'time ratio': fwd1 / fwd0 },
    { product: 'dx = dy Ŵ', 'ms without': dx0 * 1e3, 'ms with': dx1 * 1e3, 'time ratio': dx1 / dx0 },
  ].map((r) => ({ 'N x K': `${n}x${k}`, m, outliers: `${frac * 100}% (${wo.outliers!.colIdx.length})`, ...r }));
  return { gemv, gemm };
}

function randomArray(n: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n }, () => rng.next() - 0.5);
}

function gemvRows(rng: Rng, shapes = SHAPES): Row[] {
  const rows: Row[] = [];
  for (const [model, n, k] of shapes) {
    const x = randomArray(k, rng);
    const y = new Float32Array(n);
    for (const bits of [3, 4] as PackedBits[]) {
      for (const [weakLabel, weakFrac, g] of [
        ['0', 0, k],
        ['0.3%', 0.003, k],
        ['3%', 0.03, k],
        ['0 (G=128)', 0, 128],
      ] as const) {
        const w = randomWeight(n, k, bits, g, 2 * Math.round((weakFrac * k) / 2), rng);
        const ws = Array.from({ length: Math.ceil(COLD_BYTES / weightBytes(w)) }, (_, i) =>
          i === 0
            ? w
            : {
                ...w,
                qweight: w.qweight.slice(),
                scales: w.scales.slice(),
                zeros: w.zeros.slice(),
                weak: w.weak.slice(),
              },
        );
        const { gbs, bandwidth, fraction } = coldGemvVsBandwidth(
          (i) => packedMatmul(ws[i], x, 1, y),
          ws.length,
          weightBytes(w),
        );
        rows.push({
          model,
          'N x K': `${n}x${k}`,
          bits,
          'weak cols': `${weakLabel} (${w.weakIdx.length})`,
          us: (weightBytes(w) / gbs) * 1e-3,
          'GB/s': gbs,
          'read BW GB/s': bandwidth,
          'of read BW': fraction,
        });
      }
    }
  }
  return rows;
}

/**
 * Packed products at m = 512 against dense cblas sgemm on a dense weight of the same shape, each pair measured
 * in turn in every one of `rounds` rounds (best call of the round); ratio = dense time / packed time, the median of
 * the rounds' ratios (a shared machine's slow spells hit both sides of a round, not one side of a best).
 */
function gemmRows(rng: Rng, rounds = 5): Row[] {
  const native = loadNative();
  const m = 512;
  return SHAPES.map(([model, n, k]) => {
    const w = randomWeight(n, k, 4, 128, 2 * Math.round((0.003 * k) / 2), rng);
    const dense = randomArray(n * k, rng);
    const x = randomArray(m * k, rng);
    const dy = randomArray(m * n, rng);
    const y = new Float32Array(m * n);
    const dx = new Float32Array(m * k);
    const gemm = (
      a: Float32Array,
      b: Float32Array,
      c: Float32Array,
      mm: number,
      nn: number,
      kk: number,
      transB: boolean,
    ) =>
      native.gemm(a, b, c, {
        batch: 1,
        m: mm,
        n: nn,
        k: kk,
        transA: false,
        transB,
        alpha: 1,
        beta: 0,
        strideA: 0,
        strideB: 0,
        strideC: 0,
      });
    const fs = [
      () => gemm(x, dense, y, m, n, k, true),
      () => packedMatmul(w, x, m, y),
      () => gemm(dy, dense, dx, m, k, n, false),
      () => packedMatmulT(w, dy, m, dx),
    ];
    const t: number[][] = fs.map(() => []);
    for (let r = 0; r < rounds; r++) interleavedSecondsPerCall(fs, 1).forEach((s, i) => t[i].push(s));
    const gflop = (2 * m * n * k) / 1e9;
    return {
      model,
      'N x K': `${n}x${k}`,
      'dense fwd GFLOP/s': gflop / median(t[0]),
      'packed fwd GFLOP/s': gflop / median(t[1]),
      'fwd ratio': median(t[0].map((d, r) => d / t[1][r])),
      'dense dx GFLOP/s': gflop / median(t[2]),
      'packed dx GFLOP/s': gflop / median(t[3]),
      'dx ratio': median(t[2].map((d, r) => d / t[3][r])),
    };
  });
}

/** Only the m = 512 products (c), as their rows (`node -e` on this export; a minute or two). */
export function runGemmBench(): Row[] {
  return gemmRows(new Rng(7));
}

/** Input rows of the small-m table: the batched decode GEMV up to 16, the panel GEMM above. */
const SMALL_M = [1, 2, 4, 8, 16, 17, 32];

/**
 * Cold time per call at small m, for each llama-7b shape in 4-bit per row, 4-bit G = 128 and 3-bit per row: one
 * packedMatmul of m rows against m packedMatmul calls of one row each (what m <= 16 ran before the batched GEMV,
 * and what each row still costs alone), all measured in each of 5 rounds in turn; medians over rounds, every
 * ratio the median of the rounds' ratios ('vs m = 1': this m's call against the same round's m = 1 call).
 */
function smallMRows(rng: Rng): Row[] {
  const rows: Row[] = [];
  for (const [n, k] of SHAPES.filter(([model]) => model === 'llama-7b').map(([, n, k]) => [n, k])) {
    for (const [bits, g] of [
      [4, k],
      [4, 128],
      [3, k],
    ] as const) {
      const copies = coldCopies(randomWeight(n, k, bits, g, 0, rng));
      const xs = SMALL_M.map((m) => randomArray(m * k, rng));
      const y = new Float32Array(SMALL_M[SMALL_M.length - 1] * n);
      const batched = (j: number) => (i: number) => packedMatmul(copies[i], xs[j], SMALL_M[j], y);
      const single = (j: number) => (i: number) => {
        for (let t = 0; t < SMALL_M[j]; t++)
          packedMatmul(copies[i], xs[j].subarray(t * k, (t + 1) * k), 1, y.subarray(t * n, (t + 1) * n));
      };
      for (let i = 0; i < copies.length; i++) batched(0)(i); // warm-up: page in every copy
      const [one, many]: number[][][] = [SMALL_M.map(() => []), SMALL_M.map(() => [])];
      for (let r = 0; r < 5; r++) {
        SMALL_M.forEach((_, j) => {
          one[j].push(coldSeconds(batched(j), copies.length, 0.08));
          many[j].push(coldSeconds(single(j), copies.length, 0.08));
        });
      }
      SMALL_M.forEach((m, j) =>
        rows.push({
          'N x K': `${n}x${k}`,
          bits,
          G: g,
          m,
          'us per call': median(one[j]) * 1e6,
          'us per call, m calls of m = 1': median(many[j]) * 1e6,
          'one call / m calls': median(one[j].map((s, r) => s / many[j][r])),
          'vs m = 1': median(one[j].map((s, r) => s / one[0][r])),
        }),
      );
    }
  }
  return rows;
}

/** Only the small-m section (d), as its rows: `node dist/bench/packed.js --small-m` (about a minute). */
export function runSmallMBench(): Row[] {
  return smallMRows(new Rng(13));
}

/** CPU seconds (this process, user + system) per call of f over calls filling about `budget` CPU seconds: on a
 * shared machine a single-threaded call's CPU time leaves out the time other jobs held its core. */
function cpuSecondsPerCall(f: () => void, budget: number): number {
  f(); // warm-up
  const c0 = process.cpuUsage();
  let iters = 0;
  let us = 0;
  do {
    f();
    iters++;
    const c = process.cpuUsage(c0);
    us = c.user + c.system;
  } while (us < budget * 1e6);
  return us / 1e6 / iters;
}

/** Bytes of the hot weights: small enough to stay in one core's L2 (2 MiB and more on the machines in use). */
const HOT_BYTES = 2 ** 20;

/**
 * Hot decode rate on one thread: the weight (HOT_BYTES, the real K, as many rows as fit, a multiple of 16)
 * stays in L2, so the time (CPU time, cpuSecondsPerCall) is the kernel's own arithmetic, not DRAM's: the rate a GEMV must beat for its cold
 * call to be bandwidth-bound (times the threads), and the least disturbed figure on a shared machine (it needs
 * the core, not the memory bus). For each K of the llama-7b shapes: 4-bit and 3-bit per row and G = 128, 4-bit
 * with 3% weak columns, each at m = 1 and m = 8; every kernel timed in each of 5 rounds in turn (best of each
 * round), medians; 'vs 4-bit row' = this rate over the 4-bit per-row m = 1 rate of the same round, 'm = 8 / m = 1'
 * the time of one m = 8 call over one m = 1 call of the same weight.
 */
function hotRows(rng: Rng): Row[] {
  const native = loadNative();
  const before = native.threads();
  native.setThreads(1);
  try {
    const rows: Row[] = [];
    for (const k of [4096, 11008]) {
      const variants = [
        ['4-bit row', 4, k, 0],
        ['4-bit G=128', 4, 128, 0],
        ['3-bit row', 3, k, 0],
        ['3-bit G=128', 3, 128, 0],
        ['4-bit row, 3% weak', 4, k, 2 * Math.round((0.03 * k) / 2)],
      ] as const;
      const ws = variants.map(([, bits, g, nOut]) => {
        const n = 16 * Math.max(1, Math.floor(HOT_BYTES / packedBytes(16, k, bits)));
        return randomWeight(n, k, bits, g, nOut, rng);
      });
      const x = randomArray(8 * k, rng);
      const y = new Float32Array(8 * Math.max(...ws.map((w) => w.rows)));
      const fs = ws.flatMap((w) => [1, 8].map((m) => () => packedMatmul(w, x, m, y)));
      const secs: number[][] = fs.map(() => []);
      for (let r = 0; r < 5; r++) fs.forEach((f, i) => secs[i].push(cpuSecondsPerCall(f, 0.03)));
      variants.forEach(([label], v) => {
        const [one, eight] = [secs[2 * v], secs[2 * v + 1]];
        rows.push({
          K: k,
          kernel: label,
          rows: ws[v].rows,
          'GB/s m=1': weightBytes(ws[v]) / median(one) / 1e9,
          'vs 4-bit row': median(one.map((s, r) => weightBytes(ws[v]) / s / (weightBytes(ws[0]) / secs[0][r]))),
          'GB/s m=8': weightBytes(ws[v]) / median(eight) / 1e9,
          'm = 8 / m = 1': median(eight.map((s, r) => s / one[r])),
        });
      });
    }
    return rows;
  } finally {
    native.setThreads(before);
  }
}

/** Only the hot decode-rate section, as its rows: `node dist/bench/packed.js --hot` (about 10 s). */
export function runHotBench(): Row[] {
  return hotRows(new Rng(17));
}

/** Only the decode GEMV section (b), as its rows, at the shapes of `model` (all when undefined):
 * `node dist/bench/packed.js --gemv [--model llama-7b]`. */
export function runGemvBench(model?: string): Row[] {
  const shapes = SHAPES.filter(([m]) => model === undefined || m === model);
  if (shapes.length === 0) throw new Error(`no bench shapes of model ${model}`);
  return gemvRows(new Rng(7), shapes);
}

/** Only the outlier section (e), as its rows: `node dist/bench/packed.js --outliers` (a few seconds). */
export function runOutlierBench(): { gemv: Row[]; gemm: Row[] } {
  return outlierRows(new Rng(11));
}

export function runPackedBench(): string {
  const native = loadNative();
  const rng = new Rng(7);
  process.stderr.write('bench: read bandwidth\n');
  const bw = (threads: number) => {
    const before = native.threads();
    native.setThreads(threads);
    const b = packedBinding().benchReadBandwidth(2 ** 30, 3) / 1e9;
    native.setThreads(before);
    return b;
  };
  const bandwidth = bw(native.threads());
  const bandwidth1 = bw(1);
  process.stderr.write('bench: packed GEMV\n');
  const gemv = gemvRows(rng);
  process.stderr.write('bench: hot decode rate\n');
  const hot = hotRows(rng);
  process.stderr.write('bench: packed GEMM at m = 512\n');
  const gemm = gemmRows(rng);
  process.stderr.write('bench: small m\n');
  const small = smallMRows(rng);
  process.stderr.write('bench: outliers\n');
  const outliers = outlierRows(rng);
  const { md } = writeReport({
    name: 'packed',
    machine: hostMachine(),
    sections: [
      {
        title: 'Read bandwidth (1 GiB buffer, summed by every thread)',
        rows: [
          { threads: native.threads(), 'GB/s': bandwidth },
          { threads: 1, 'GB/s': bandwidth1 },
        ],
      },
      {
        title: `Decode GEMV (m = 1), cold: calls cycle through ${COLD_BYTES / 2 ** 20} MiB of distinct weight copies (> 3x L3) so every call streams its weight from DRAM; per-row scales unless G given; GB/s = bytes read (packed codes + scales/zeros + weak columns) per second; 5 rounds, each probing the read bandwidth (512 MiB) and then timing the GEMV (best call of the round); medians over rounds, the fraction being the median of the rounds' ratios`,
        rows: gemv,
      },
      {
        title: `Hot decode rate, one thread: ${HOT_BYTES / 2 ** 20} MiB weights at the real K (in L2), CPU time per call (other jobs' time on the core left out), so the kernel's own arithmetic; 5 rounds, every kernel in turn, medians; 'vs 4-bit row' = GB/s over the 4-bit per-row m = 1 GB/s of the same round; a cold GEMV is bandwidth-bound where this rate times the threads exceeds the read bandwidth`,
        rows: hot,
      },
      {
        title:
          "Batched products at m = 512 vs dense cblas sgemm (4-bit, G = 128, 0.3% weak columns); 5 rounds, each timing the four in turn (best call of the round); GFLOP/s from medians, ratios = medians of the rounds' ratios (dense time / packed time)",
        rows: gemm,
      },
      {
        title: `Small m, cold (${COLD_BYTES / 2 ** 20} MiB of weight copies): one call of m rows (batched decode GEMV for m <= 16, dequantized panels + sgemm above) vs m calls of one row; 5 rounds, each timing every m both ways (best call of the round); medians; ratios = medians of the rounds' ratios`,
        rows: small,
      },
      {
        title: `CSR outliers: cold decode GEMV (m = 1) of the same layer with 1% of its weights as outliers vs without (0.3% weak columns), ${COLD_BYTES / 2 ** 20} MiB of copies each; 5 rounds, each timing both (best call of the round); medians; time ratio = the median of the rounds' ratios; bytes ratio = (packed + outlier bytes) / packed bytes, the ratio a bandwidth-bound GEMV would show`,
        rows: outliers.gemv,
      },
      {
        title: 'CSR outliers: batched products at m = 512 with 1% outliers vs without (4-bit, G = 128)',
        rows: outliers.gemm,
      },
    ],
  });
  return md;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  const flag = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  if (process.argv.includes('--hot')) process.stdout.write(`${JSON.stringify(runHotBench(), null, 2)}\n`);
  else if (process.argv.includes('--gemv'))
    process.stdout.write(`${JSON.stringify(runGemvBench(flag('--model')), null, 2)}\n`);
  else if (process.argv.includes('--outliers')) process.stdout.write(`${JSON.stringify(runOutlierBench(), null, 2)}\n`);
  else if (process.argv.includes('--small-m')) process.stdout.write(`${JSON.stringify(runSmallMBench(), null, 2)}\n`);
  else process.stdout.write(fs.readFileSync(runPackedBench(), 'utf8'));
}
