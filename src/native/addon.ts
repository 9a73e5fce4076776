/**
 * Loader of the native addon (build/Release/wct_native.node, built by `npm rebuild` / node-gyp from
 * binding.gyp) and the kernel router: Float32Array data runs on the native kernels, Float64Array data on
 * the TypeScript reference (ref.ts), which is exact enough for finite-difference gradient checks.
 *
 * The raw binding takes positional numbers (cheaper to read in C++ than object properties); `wrap`
 * adapts it to the Kernels interface. All buffer validation happens in C++ and throws TypeError /
 * RangeError naming the kernel and the argument.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { packageRoot } from '../util/package-root.js';
import { dropoutMask, referenceKernels } from './ref.js';
import type { AddonBinding, KernelBinding } from './binding.js';
import type { BinaryOp, FloatArray, Kernels, NativeAddon, UnaryOp } from './types.js';

export const ADDON_RELATIVE_PATH = 'build/Release/wct_native.node';

/** Op codes shared with kernels/include/wct_elementwise.h. */
const BINARY_OPS: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3 };
const UNARY_OPS: Record<UnaryOp, number> = { relu: 0, gelu: 1, silu: 2, exp: 3, neg: 4 };

function opCode<T extends string>(table: Record<T, number>, op: T, fn: string): number {
  const code = Object.hasOwn(table, op) ? table[op] : undefined;
  if (code === undefined)
    throw new TypeError(`${fn}: unknown op ${JSON.stringify(op)} (expected one of ${Object.keys(table).join(', ')})`);
  return code;
}

function wrap(raw: KernelBinding): NativeAddon {
  return {
    name: 'native',
    gemm: (a, b, c, d) =>
      raw.gemm(a, b, c, d.batch, d.m, d.n, d.k, d.transA, d.transB, d.alpha, d.beta, d.strideA, d.strideB, d.strideC),
    gemmBf16: (a, b, c, d) =>
      raw.gemmBf16(
        a,
        b,
        c,
        d.batch,
        d.m,
        d.n,
        d.k,
        d.transA,
        d.transB,
        d.alpha,
        d.beta,
        d.strideA,
        d.strideB,
        d.strideC,
      ),
    syrk: (a, c, d) => raw.syrk(a, c, d.n, d.k, d.alpha, d.beta),
    binary: (op, a, b, out, d) =>
      raw.binary(opCode(BINARY_OPS, op, 'binary'), a, b, out, d.shape, d.stridesA, d.stridesB),
    affine: (x, out, alpha, beta) => raw.affine(x, out, alpha, beta),
    sumTo: (x, out, d) => raw.sumTo(x, out, d.shape, d.stridesA),
    sumInto: (x, out, scale) => {
      if (out.length < 1) throw new RangeError('sumInto: out has 0 elements, needs at least 1');
      out[0] = raw.sumAll(x) * scale;
    },
    sumSquaresInto: (x, out) => {
      if (out.length < 1) throw new RangeError('sumSquaresInto: out has 0 elements, needs at least 1');
      out[0] += raw.sumSquares(x);
    },
    adamw: (theta, g, m, v, p) =>
      raw.adamw(theta, g, m, v, p.lr, p.beta1, p.beta2, p.eps, p.weightDecay, p.c1, p.c2, p.gradScale),
    adamwMany: (thetas, gs, ms, vs, p) =>
      raw.adamwMany(thetas, gs, ms, vs, p.lr, p.beta1, p.beta2, p.eps, p.weightDecay, p.c1, p.c2, p.gradScale),
    // Memory-bound loops with no native version: the reference's, on Float32Array (copy is TypedArray.set).
    broadcastScalar: referenceKernels.broadcastScalar,
    fill: referenceKernels.fill,
    copy: referenceKernels.copy,
    // acc += x is the threaded binary add written over acc (each element read before it is written).
    accumulate: (acc, x) => {
      if (acc.length < x.length)
        throw new RangeError(`accumulate: acc has ${acc.length} elements, needs at least ${x.length}`);
      raw.binary(BINARY_OPS.add, acc, x, acc, [x.length], [1], [1]);
    },
    scaleBy: referenceKernels.scaleBy,
    unaryForward: (op, x, out) => raw.unaryForward(opCode(UNARY_OPS, op, 'unaryForward'), x, out),
    unaryBackward: (op, x, dy, dx) => raw.unaryBackward(opCode(UNARY_OPS, op, 'unaryBackward'), x, dy, dx),
    rmsnormForward: (x, w, out, rstd, d) => raw.rmsnormForward(x, w, out, rstd, d.rows, d.cols, d.eps),
    rmsnormBackward: (x, w, rstd, dy, dx, dw, d) => raw.rmsnormBackward(x, w, rstd, dy, dx, dw, d.rows, d.cols),
    layernormForward: (x, w, b, out, mean, rstd, d) =>
      raw.layernormForward(x, w, b, out, mean, rstd, d.rows, d.cols, d.eps),
    layernormBackward: (x, w, mean, rstd, dy, dx, dw, db, d) =>
      raw.layernormBackward(x, w, mean, rstd, dy, dx, dw, db, d.rows, d.cols),
    softmaxForward: (x, out, d) => raw.softmaxForward(x, out, d.rows, d.cols),
    softmaxBackward: (y, dy, dx, d) => raw.softmaxBackward(y, dy, dx, d.rows, d.cols),
    rope: (x, out, cos, sin, d, inverse) => raw.rope(x, out, cos, sin, d.batch, d.seq, d.heads, d.headDim, inverse),
    attentionForward: (q, k, v, out, probs, d) =>
      raw.attentionForward(q, k, v, out, probs, d.batch, d.tq, d.tk, d.heads, d.kvHeads, d.headDim, d.scale),
    attentionBackward: (q, k, v, probs, dout, dq, dk, dv, d) =>
      raw.attentionBackward(
        q,
        k,
        v,
        probs,
        dout,
        dq,
        dk,
        dv,
        d.batch,
        d.tq,
        d.tk,
        d.heads,
        d.kvHeads,
        d.headDim,
        d.scale,
      ),
    crossEntropyForward: (logits, targets, losses, lse, d) =>
      raw.crossEntropyForward(logits, targets, losses, lse, d.rows, d.vocab, d.ignoreIndex),
    crossEntropyBackward: (logits, targets, lse, rowScale, dlogits, d) =>
      raw.crossEntropyBackward(logits, targets, lse, rowScale, dlogits, d.rows, d.vocab, d.ignoreIndex),
    embeddingForward: (table, ids, out, d) => raw.embeddingForward(table, ids, out, d.rows, d.dim, d.vocab),
    embeddingBackward: (dy, ids, dTable, d) => raw.embeddingBackward(dy, ids, dTable, d.rows, d.dim, d.vocab),
    dropout: (x, draw, scale, out) => raw.dropout(x, dropoutMask(draw, x.length), scale, out),
    bf16Native: () => raw.bf16Native(),
    benchSgemmDirect: (m, n, k, iters) => raw.benchSgemmDirect(m, n, k, iters),
    threads: () => raw.threads(),
    setThreads: (n) => raw.setThreads(n),
    cpuPath: () => raw.cpuPath(),
    blasThreads: () => raw.blasThreads(),
    buildInfo: () => raw.buildInfo(),
  };
}

let rawModule: AddonBinding | null = null;
let cached: NativeAddon | null = null;

/**
 * The addon module as node loads it (every binding family: addon.cc, optim.cc, packed.cc, quant.cc), loaded
 * once; throws an Error saying what to run when it cannot. Typed views: loadNative(), packedBinding(), quantBinding().
 */
export function loadAddonModule(): AddonBinding {
  if (rawModule !== null) return rawModule;
  const root = packageRoot();
  const file = path.join(root, ADDON_RELATIVE_PATH);
  // libgomp reads its wait policy once, when the addon's dlopen loads it: idle OpenMP threads then sleep
  // instead of spinning, so a busy machine slows a run in proportion rather than many times over.
  process.env.OMP_WAIT_POLICY ??= 'passive';
  try {
    rawModule = createRequire(import.meta.url)(file) as AddonBinding;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `wct: cannot load the native addon ${file}: ${reason}\n` +
        `Fix: run \`npm rebuild\` in ${root} (it runs node-gyp on binding.gyp). If the build fails for lack of ` +
        `BLAS or oneDNN, install them with \`apt-get install libopenblas-openmp-dev libdnnl-dev\`, then \`npm rebuild\`.`,
      { cause: err },
    );
  }
  return rawModule!;
}

/** Loads (once) and returns the native kernels. */
export function loadNative(): NativeAddon {
  if (cached === null) cached = wrap(loadAddonModule());
  return cached;
}

/** The kernels for an array: native for Float32Array, the reference for Float64Array. */
export function kernelsFor(data: FloatArray): Kernels {
  if (data instanceof Float32Array) return loadNative();
  if (data instanceof Float64Array) return referenceKernels;
  const kind = (data as unknown as object)?.constructor?.name ?? typeof data;
  throw new TypeError(`kernelsFor: expected a Float32Array or Float64Array, got ${kind}`);
}

/**
 * Runs `fn` with the process's stderr pointed at /dev/null (restored when it settles): for C++ libraries that
 * print on stderr with no switch to stop them (Dawn's adapter warnings while an adapter is requested). Keep `fn`
 * short: anything the process itself writes to stderr meanwhile is lost too.
 */
export async function withStderrMuted<T>(fn: () => Promise<T>): Promise<T> {
  const raw = loadAddonModule();
  const saved = raw.muteStderr();
  try {
    return await fn();
  } finally {
    raw.restoreStderr(saved);
  }
}
