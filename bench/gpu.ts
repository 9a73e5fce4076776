/**
 * `npm run bench -- --device gpu`: the WebGPU backend on the adapter `--device gpu` picks (src/gpu/device.ts
 * selectDevice: a hardware adapter through Dawn's default backend, else llvmpipe through OpenGL ES; forced by
 * WCT_GPU_BACKEND), each figure beside the CPU path in the same run:
 *  (a) the adapter's device-to-device copy bandwidth (copyBufferToBuffer, bytes read + written): the ceiling of
 *      a memory-bound kernel such as the decode GEMV; also host upload (writeBuffer) and read-back;
 *  (b) dense GEMM GFLOP/s at m = 512 (src/gpu/matmul.ts vs the addon's sgemm), with the largest difference
 *      between the two results (the WGSL kernel was tested on llvmpipe only: this checks it on the bench's GPU);
 *  (c) packed decode GEMV (m = 1), 4- and 3-bit, 0 / 0.3% / 3% weak columns, and 0.3% weak columns with 1% sparse
 *      outliers (GWQ-style CSR), GB/s of the packed weight's bytes as a fraction of (a), the weak columns' and the
 *      outliers' overhead, and the packed GEMM at m = 512 (src/gpu/packed.ts: the fused GEMV for m <= GEMV_MAX_M,
 *      the tiled GEMM above);
 *  (d) forward tokens/s and the WCT step of opt-125m- and llama-7b-shaped 2-layer packed models
 *      (bench/gpu-models.ts), CPU and GPU.
 *
 * Timing is wall clock around queue.onSubmittedWorkDone() (no timestamp queries: llvmpipe has none): a batch of
 * calls sized to fill `budget` seconds, best of 3 rounds, after a warm-up call that compiles the pipeline. Each
 * dispatch is submitted on its own, as the backend does. On a software adapter the GEMM's n and k are divided by
 * SOFTWARE_SCALE and the copy is 64 MiB, so the bench finishes in minutes; the report says so. Its figures are
 * then for correctness only: llvmpipe runs on the same CPU cores as the CPU path.
 * Writes bench/results/gpu.{json,md}. Standalone: `npm run build && node dist/bench/gpu.js`.
 */
import { modelSteps } from './gpu-models.js';
import fs from 'node:fs';
import os from 'node:os';
import { Usage } from '../src/gpu/buffers.js';
import { closeGpu, type Gpu, selectDevice } from '../src/gpu/device.js';
import { gemm } from '../src/gpu/matmul.js';
import { type GpuPackedWeight, packedGpu, packedToGpu, releasePacked } from '../src/gpu/packed.js';
import { loadNative } from '../src/native/addon.js';
import { packedBytes, packedMatmul, packedRowBytes, type PackedBits, type PackedWeight } from '../src/native/packed.js';
import { gemmDims, type NativeAddon } from '../src/native/types.js';
import { Rng } from '../src/util/rng.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { type Row, writeReport } from './report.js';

/** Divisor of the GEMM's n and k on a software adapter (llvmpipe: ~1-2 GFLOP/s). */
export const SOFTWARE_SCALE = 8;
/** The linears of llama-7b (N x K = out x in): the GEMV and GEMM shapes. */
const SHAPES: [number, number][] = [
  [4096, 4096],
  [11008, 4096],
  [4096, 11008],
];
const M = 512;
const WEAK_FRACTIONS: [string, number][] = [
  ['0', 0],
  ['0.3%', 0.003],
  ['3%', 0.03],
];
/** The GEMV's sparse-outlier variant: this fraction of the elements (beside 0.3% weak columns). */
const OUTLIER_FRACTION = 0.01;
/** Distinct device copies a hardware GEMV cycles through: over 4x an H200's 60 MB L2, so each call reads DRAM. */
const COLD_BYTES = 256 * 2 ** 20;

// ---- timing ----

/**
 * Best seconds per call of `f` on the device: batches filling about `budget` s, best of `rounds`. Also the
 * seconds per call spent enqueuing (recording and submitting, before the wait): where it is close to the total,
 * the figure is the CPU's dispatch overhead, not the kernel's time (no timestamp queries here to separate them).
 */
export async function gpuTimes(device: GPUDevice, f: (i: number) => void, budget = 0.25, rounds = 3) {
  const done = () => device.queue.onSubmittedWorkDone();
  f(0);
  await done(); // warm-up: pipeline compile, first-touch of the buffers
  let t0 = performance.now();
  f(1);
  await done();
  const one = Math.max((performance.now() - t0) / 1000, 1e-6);
  const n = Math.max(1, Math.min(2000, Math.ceil(budget / one)));
  let best = one;
  let enqueue = Infinity;
  for (let r = 0; r < rounds; r++) {
    t0 = performance.now();
    for (let i = 0; i < n; i++) f(i);
    const t1 = performance.now();
    await done();
    best = Math.min(best, (performance.now() - t0) / 1000 / n);
    enqueue = Math.min(enqueue, (t1 - t0) / 1000 / n);
  }
  return { seconds: best, enqueue };
}

/** Best seconds per call of `f` on the device (gpuTimes without the enqueue time). */
export async function gpuSeconds(device: GPUDevice, f: (i: number) => void, budget = 0.25, rounds = 3) {
  return (await gpuTimes(device, f, budget, rounds)).seconds;
}

/** Best seconds per call of a host function (the CPU path): batches of about `budget` s, best of `rounds`. */
function cpuSeconds(f: () => void, budget = 0.25, rounds = 3): number {
  f();
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const t0 = performance.now();
    let dt = 0;
    do {
      f();
      n++;
      dt = (performance.now() - t0) / 1000;
    } while (dt < budget);
    best = Math.min(best, dt / n);
  }
  return best;
}

function randomArray(n: number, rng: Rng): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.next() - 0.5;
  return a;
}

function randomBytes(n: number, rng: Rng): Uint8Array {
  const a = new Uint8Array(Math.ceil(n / 4) * 4);
  const u = new Uint32Array(a.buffer);
  for (let i = 0; i < u.length; i++) u[i] = Math.floor(rng.next() * 2 ** 32);
  return a.subarray(0, n);
}

// ---- (a) transfers ----

async function transferRows(gpu: Gpu, bytes: number): Promise<{ rows: Row[]; copyGBs: number }> {
  const { device, ctx } = gpu;
  const usage = Usage.COPY_SRC | Usage.COPY_DST | Usage.STORAGE;
  const a = device.createBuffer({ label: 'bench-copy-a', size: bytes, usage });
  const b = device.createBuffer({ label: 'bench-copy-b', size: bytes, usage });
  try {
    const copy = (i: number) => {
      const enc = device.createCommandEncoder();
      const [src, dst] = i % 2 === 0 ? [a, b] : [b, a];
      enc.copyBufferToBuffer(src, 0, dst, 0, bytes);
      device.queue.submit([enc.finish()]);
    };
    const sCopy = await gpuSeconds(device, copy, 0.3, 5);
    const copyGBs = (2 * bytes) / sCopy / 1e9;
    const host = new Float32Array(Math.min(bytes, 64 * 2 ** 20) / 4).fill(1);
    const sUpload = await gpuSeconds(device, () => device.queue.writeBuffer(a, 0, host), 0.3, 3);
    const arr = ctx.upload(host);
    let t0 = performance.now();
    await ctx.read(arr); // warm-up
    let sRead = Infinity;
    for (let r = 0; r < 3; r++) {
      t0 = performance.now();
      await ctx.read(arr);
      sRead = Math.min(sRead, (performance.now() - t0) / 1000);
    }
    const mib = (n: number) => `${n / 2 ** 20} MiB`;
    return {
      copyGBs,
      rows: [
        {
          transfer: 'device-to-device copyBufferToBuffer',
          size: mib(bytes),
          'ms per call': sCopy * 1e3,
          'GB/s': copyGBs,
          counts: 'bytes read + written',
        },
        {
          transfer: 'host -> device queue.writeBuffer',
          size: mib(host.byteLength),
          'ms per call': sUpload * 1e3,
          'GB/s': host.byteLength / sUpload / 1e9,
          counts: 'bytes written',
        },
        {
          transfer: 'device -> host read-back (copy + mapAsync)',
          size: mib(host.byteLength),
          'ms per call': sRead * 1e3,
          'GB/s': host.byteLength / sRead / 1e9,
          counts: 'bytes read',
        },
      ],
    };
  } finally {
    a.destroy();
    b.destroy();
  }
}

// ---- (b) dense GEMM ----

/** Largest |gpu - cpu| over the largest |cpu|. */
function relDiff(gpu: Float32Array, cpu: Float32Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < cpu.length; i++) {
    d = Math.max(d, Math.abs(gpu[i] - cpu[i]));
    s = Math.max(s, Math.abs(cpu[i]));
  }
  return s === 0 ? d : d / s;
}

async function denseGemmRows(gpu: Gpu, native: NativeAddon | null, scale: number, rng: Rng): Promise<Row[]> {
  const { ctx, device } = gpu;
  const rows: Row[] = [];
  for (const [n0, k0] of SHAPES) {
    const [n, k] = [n0 / scale, k0 / scale].map(Math.round);
    const shape = `${M}x${n}x${k}`;
    if (Math.max(M * k, k * n, M * n) > ctx.maxElements) {
      rows.push({ 'm x n x k': shape, note: `exceeds the adapter's binding limit of ${ctx.maxElements} floats` });
      continue;
    }
    const a = randomArray(M * k, rng);
    const b = randomArray(k * n, rng);
    const d = gemmDims(M, n, k);
    const flop = 2 * M * n * k;
    const [ga, gb, gc] = [ctx.upload(a), ctx.upload(b), ctx.zeros(M * n)];
    const sGpu = await gpuSeconds(device, () => gemm(ga, gb, gc, d), 0.5);
    const row: Row = { 'm x n x k': shape, 'GPU GFLOP/s': flop / sGpu / 1e9, 'GPU ms': sGpu * 1e3 };
    if (native !== null) {
      const c = new Float32Array(M * n);
      const sCpu = cpuSeconds(() => native.gemm(a, b, c, d), 0.5);
      row['CPU GFLOP/s'] = flop / sCpu / 1e9;
      row['GPU / CPU'] = sCpu / sGpu;
      row['max |GPU-CPU| / max |CPU|'] = relDiff(await ctx.read(gc), c);
    }
    rows.push(row);
  }
  return rows;
}

// ---- (c) packed GEMV / GEMM (src/gpu/packed.ts) ----

/** Sets the code of packed column k in a row (the inverse of codeAt in src/native/packed.ts). */
function setCode(q: Uint8Array, rowStart: number, k: number, bits: number, code: number): void {
  for (let t = 0; t < bits; t++) {
    const bit = k * bits + t;
    const at = rowStart + (bit >> 3);
    q[at] = (q[at] & ~(1 << (bit & 7))) | (((code >> t) & 1) << (bit & 7));
  }
}

/**
 * A packed weight of random codes (speed does not depend on the values), per-row scales, nOut weak columns
 * whose codes are set to the zero point in `qweight` (validatePacked requires it).
 */
function randomWeight(
  rows: number,
  cols: number,
  bits: PackedBits,
  nOut: number,
  qweight: Uint8Array,
  rng: Rng,
): PackedWeight {
  const weakIdx = Int32Array.from({ length: nOut }, (_, j) => Math.floor((j * cols) / nOut));
  const zero = 2 ** (bits - 1);
  const rowBytes = packedRowBytes(cols, bits);
  for (let r = 0; r < rows; r++) for (const k of weakIdx) setCode(qweight, r * rowBytes, k, bits, zero);
  return {
    rows,
    cols,
    bits,
    groupSize: cols,
    qweight,
    scales: Float32Array.from({ length: rows }, () => 0.01 + 0.01 * rng.next()),
    zeros: new Uint8Array(rows).fill(zero),
    perm: null,
    weakIdx,
    weak: randomArray(rows * nOut, rng),
  };
}

/**
 * `frac` of each row's elements as sparse outliers (CSR, input columns ascending, none a weak column), spread
 * over the row at a per-row offset; their codes are set to the zero point in w.qweight as the format requires.
 */
function addOutliers(w: PackedWeight, frac: number, rng: Rng): void {
  const { rows, cols, bits } = w;
  const weak = new Set(w.weakIdx);
  const count = Math.max(1, Math.round(frac * cols));
  const rowBytes = packedRowBytes(cols, bits);
  const rowPtr = new Int32Array(rows + 1);
  const colIdx: number[] = [];
  for (let r = 0; r < rows; r++) {
    const off = r % 97;
    const cs = Array.from({ length: count }, (_, t) => (Math.floor((t * cols) / count) + off) % cols);
    for (const c of [...new Set(cs)].filter((c) => !weak.has(c)).sort((a, b) => a - b)) {
      colIdx.push(c);
      setCode(w.qweight, r * rowBytes, c, bits, w.zeros[r]);
    }
    rowPtr[r + 1] = colIdx.length;
  }
  w.outliers = { rowPtr, colIdx: Int32Array.from(colIdx), values: randomArray(colIdx.length, rng) };
}

/**
 * Bytes a GEMV reads: packed codes, scales (f32), zeros (u8), weak columns (f32), as stored on the host, and the
 * outliers' CSR (i32 row pointers and columns, f32 values as on the device).
 */
function weightBytes(w: PackedWeight): number {
  const o = w.outliers;
  const sparse = o === undefined ? 0 : 4 * (o.rowPtr.length + o.colIdx.length + o.values.length);
  return w.qweight.length + 5 * w.scales.length + 4 * w.weak.length + sparse;
}

async function packedGemvRows(gpu: Gpu, software: boolean, copyGBs: number, rng: Rng): Promise<Row[]> {
  const { ctx, device } = gpu;
  const rows: Row[] = [];
  for (const [n, k] of SHAPES) {
    const x = randomArray(k, rng);
    const gx = ctx.upload(x);
    const gy = ctx.zeros(n);
    const y = new Float32Array(n);
    for (const bits of [4, 3] as PackedBits[]) {
      const qweight = randomBytes(packedBytes(n, k, bits), rng);
      let base = 0;
      let weak03 = 0;
      const variants: [string, number, number][] = [
        ...WEAK_FRACTIONS.map(([label, frac]): [string, number, number] => [label, frac, 0]),
        ['0.3%', 0.003, OUTLIER_FRACTION],
      ];
      for (const [label, frac, outliers] of variants) {
        const w = randomWeight(n, k, bits, 2 * Math.round((frac * k) / 2), qweight, rng);
        if (outliers > 0) addOutliers(w, outliers, rng);
        const bytes = weightBytes(w);
        const copies = software ? 1 : Math.max(1, Math.ceil(COLD_BYTES / bytes));
        const ws: GpuPackedWeight[] = Array.from({ length: copies }, () => packedToGpu(ctx, w));
        const t = await gpuTimes(device, (i) => packedGpu.packedMatmul(ws[i % copies], gx, 1, gy), 0.25);
        const s = t.seconds;
        if (frac === 0) base = s;
        if (frac === 0.003 && outliers === 0) weak03 = s;
        const gbs = bytes / s / 1e9;
        for (const g of ws) releasePacked(g);
        const sCpu = cpuSeconds(() => packedMatmul(w, x, 1, y), 0.2);
        rows.push({
          'N x K': `${n}x${k}`,
          bits,
          'weak cols': `${label} (${w.weakIdx.length})`,
          outliers: outliers === 0 ? '0' : `${outliers * 100}% (${w.outliers!.colIdx.length})`,
          'GPU us': s * 1e6,
          'enqueue us': t.enqueue * 1e6,
          'GPU GB/s': gbs,
          'of copy BW': gbs / copyGBs,
          'weak overhead': s / base - 1,
          'outlier overhead': outliers === 0 ? '-' : s / weak03 - 1,
          'CPU us (warm)': sCpu * 1e6,
          'GPU / CPU': sCpu / s,
        });
      }
    }
  }
  return rows;
}

async function packedGemmRows(gpu: Gpu, scale: number, rng: Rng): Promise<Row[]> {
  const { ctx, device } = gpu;
  const rows: Row[] = [];
  for (const [n0, k0] of SHAPES) {
    const [n, k] = [n0 / scale, k0 / scale].map(Math.round);
    const x = randomArray(M * k, rng);
    const [gx, gy] = [ctx.upload(x), ctx.zeros(M * n)];
    const y = new Float32Array(M * n);
    for (const bits of [4, 3] as PackedBits[]) {
      const w = randomWeight(
        n,
        k,
        bits,
        2 * Math.round((0.003 * k) / 2),
        randomBytes(packedBytes(n, k, bits), rng),
        rng,
      );
      const gw = packedToGpu(ctx, w);
      const flop = 2 * M * n * k;
      const s = await gpuSeconds(device, () => packedGpu.packedMatmul(gw, gx, M, gy), 0.5);
      releasePacked(gw);
      const sCpu = cpuSeconds(() => packedMatmul(w, x, M, y), 0.5);
      rows.push({
        'm x N x K': `${M}x${n}x${k}`,
        bits,
        'weak cols': `0.3% (${w.weakIdx.length})`,
        'GPU GFLOP/s': flop / s / 1e9,
        'CPU GFLOP/s': flop / sCpu / 1e9,
        'GPU / CPU': sCpu / s,
        'max |GPU-CPU| / max |CPU|': relDiff(await ctx.read(gy), y),
      });
    }
  }
  return rows;
}

// ---- (d) model steps (bench/gpu-models.ts) ----

/**
 * One prepared model step on one device: weights resident, inputs ready. `run()` records and submits (GPU) or
 * computes (CPU) one step; `sync()` waits until the device finished it (a no-op on the CPU). `tokens` per step.
 */
export interface PreparedStep {
  run(): void;
  sync(): Promise<void>;
  tokens: number;
}

/** A measure on one model shape, CPU and GPU prepared the same way (null: not available on that device). */
export interface ModelStepPair {
  /** e.g. `opt-125m-shaped, 2 layers` or `llama-7b-shaped, 2 layers`. */
  model: string;
  measure: 'forward' | 'WCT step';
  cpu: PreparedStep | null;
  gpu: PreparedStep | null;
  /** Why a side is missing (e.g. a tensor over the adapter's binding limit). */
  note?: string;
}

/** Best seconds per step of a prepared step: a warm-up step, then `rounds` timed steps, each synced. */
export async function timeStep(step: PreparedStep, rounds = 3): Promise<number> {
  step.run();
  await step.sync();
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    step.run();
    await step.sync();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

async function modelRows(gpu: Gpu): Promise<Row[]> {
  const rows: Row[] = [];
  for (const p of await modelSteps(gpu)) {
    const sCpu = p.cpu === null ? null : await timeStep(p.cpu);
    const sGpu = p.gpu === null ? null : await timeStep(p.gpu);
    const tokens = (p.gpu ?? p.cpu)?.tokens ?? 0;
    rows.push({
      model: p.model,
      measure: p.measure,
      'CPU s': sCpu ?? 'n/a',
      'GPU s': sGpu ?? 'n/a',
      'CPU tokens/s': sCpu === null ? 'n/a' : tokens / sCpu,
      'GPU tokens/s': sGpu === null ? 'n/a' : tokens / sGpu,
      'GPU / CPU': sCpu === null || sGpu === null ? 'n/a' : sCpu / sGpu,
      note: p.note ?? '',
    });
  }
  return rows;
}

// ---- the report ----

function nativeOrNull(): { native: NativeAddon | null; note: string } {
  try {
    const native = loadNative();
    return { native, note: `${native.cpuPath()} kernels, ${native.threads()} threads` };
  } catch (e) {
    return { native: null, note: `no CPU path: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** Runs the GPU bench on `--device gpu`'s adapter; returns the markdown report's path. */
export async function runGpuBench(): Promise<string> {
  const { gpu, note } = await selectDevice('gpu');
  if (gpu === null) throw new Error(`bench --device gpu: ${note}`);
  const rng = new Rng(11);
  const { native, note: cpuNote } = nativeOrNull();
  const software = gpu.report.software;
  const scale = software ? SOFTWARE_SCALE : 1;
  const log = (s: string) => process.stderr.write(`bench gpu: ${s}\n`);
  try {
    log(note);
    log('transfers');
    const { rows: transfer, copyGBs } = await transferRows(gpu, software ? 64 * 2 ** 20 : 256 * 2 ** 20);
    log('dense GEMM');
    const dense = await denseGemmRows(gpu, native, scale, rng);
    let gemv: Row[];
    let packedGemm: Row[];
    if (native === null) {
      gemv = [{ status: `not run: ${cpuNote}` }];
      packedGemm = gemv;
    } else {
      log('packed GEMV');
      gemv = await packedGemvRows(gpu, software, copyGBs, rng);
      log('packed GEMM');
      packedGemm = await packedGemmRows(gpu, scale, rng);
    }
    log('model steps');
    const models = await modelRows(gpu);
    const scaled = software
      ? `; software adapter: GEMM n and k divided by ${SOFTWARE_SCALE}, copy of 64 MiB, GEMV on one weight copy (figures for correctness, not speed: the adapter runs on the CPU's cores)`
      : '';
    const r = gpu.report;
    const { md } = writeReport({
      name: 'gpu',
      machine: {
        adapter: `${r.description} (${r.software ? 'software' : 'hardware'}, backend ${r.backend})`,
        'adapter vendor / device': `${r.vendor || '-'} / ${r.device || '-'}`,
        'shader-f16': String(r.features.includes('shader-f16')),
        subgroups: String(r.features.includes('subgroups')),
        'max storage binding MiB': r.limits.maxStorageBufferBindingSize / 2 ** 20,
        selection: note,
        cpu: os.cpus()[0]?.model ?? 'unknown',
        'cpu path': cpuNote,
        node: process.version,
        timing: `wall clock around queue.onSubmittedWorkDone, best of 3+ batches${scaled}`,
      },
      sections: [
        { title: 'Transfers', rows: transfer },
        { title: `Dense GEMM at m = ${M} (WGSL tiled GEMM vs the addon's sgemm, same data)`, rows: dense },
        {
          title: `Packed decode GEMV (m = 1), per-row scales; GB/s = packed weight bytes (codes + f32 scales + u8 zeros + f32 weak columns + the outliers' CSR: i32 row pointers and columns, f32 values) per second; of copy BW = that / the copy's read+write GB/s above${software ? '' : `; calls cycle through ${COLD_BYTES / 2 ** 20} MiB of device copies of the weight (> L2)`}; weak overhead = time / time without weak columns - 1; outlier overhead = time / time of the same weight without outliers (0.3% weak columns) - 1; enqueue us = the CPU's time to record and submit one call (on Vulkan/Metal/D3D12, close to GPU us means the figure is dispatch overhead, not the kernel; Dawn's OpenGL ES backend runs the work inside submit, so there it is the whole time)`,
          rows: gemv,
        },
        { title: `Packed GEMM at m = ${M} (0.3% weak columns, per-row scales)`, rows: packedGemm },
        { title: 'Model steps: forward (seqlen 512) and WCT step, 2-layer models', rows: models },
      ],
    });
    return md;
  } finally {
    await closeGpu();
  }
}

if (isEntryPoint(import.meta.url)) {
  parseBenchArgs({
    usage: 'node dist/bench/gpu.js',
    describe:
      'The WebGPU bench on the adapter `--device gpu` picks (a hardware adapter, else llvmpipe; WCT_GPU_BACKEND forces the backend), each figure beside the CPU path: copy bandwidth, dense GEMM, packed GEMV / GEMM, 2-layer model steps. Writes bench/results/gpu.{json,md} and prints the markdown. Also `npm run bench -- --device gpu`.',
  });
  process.stdout.write(fs.readFileSync(await runGpuBench(), 'utf8'));
}
