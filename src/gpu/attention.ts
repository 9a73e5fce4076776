/**
 * Causal grouped-query attention in WGSL, the AttentionDims contract of src/native/types.ts (oracle:
 * src/native/ref.ts). q: [B, Tq, H, D], k/v: [B, Tk, Hkv, D], probs: [B, H, Tq, Tk]; query i sees keys
 * j <= i + Tk - Tq (Tk > Tq with a KV cache, Tq = 1 when decoding), query head h reads kv head h / (H / Hkv).
 *
 * Forward, Tq >= a block of queries (prefill, evaluation, training): the query-tiled kernel, compiled per head dim
 * D. A workgroup owns a block of BQ queries of one (b, h); each query is S = ceil(D / 16) lanes holding a slice
 * of q and of the output in registers. The block walks the keys its last query sees in tiles of BK keys (K and V
 * loaded once per block into workgroup memory, 4 KiB each), and each step of SUB keys does an online softmax in
 * registers: scores (slices' partial dots summed in slice order through workgroup memory when S > 1), the step's
 * max, one rescale of the running sum and output, then p v. Barriers: two per tile (four per step more when
 * S > 1), against ~40 per 2048 keys in the row kernel; at D = 16 a block is 64 queries of one lane each. With
 * probs, lane slice s writes the raw scores of the keys j = s mod S and normalises them at the end.
 *
 * Forward, Tq below a block (decode): one workgroup of 256 per query row (b, h, i), q in workgroup memory. The
 * visible keys are walked in chunks of CHUNK scores held in workgroup memory with an online softmax (running
 * max and sum, the output rescaled per chunk), so any Tk works with one kernel: scores (one key per invocation, a D-long dot),
 * max and sum tree reductions (src/gpu/rows.ts), then P V with the invocations split into G = 256 / D key
 * groups of D lanes (contiguous v reads), the groups' partials summed in a fixed order. With probs, the raw
 * scores are written there first and normalised at the end by the invocation that wrote them; null probs
 * writes nothing of size Tq x Tk (inference). Decode (Tq = 1) is B H workgroups each reading its Tk keys once,
 * 256 keys at a time (the tiled kernel would give one query's keys to S lanes).
 *
 * Backward (dq, dk, dv overwritten; no float atomics, deterministic): (1) a workgroup per query row computes
 * dS = P (dP - Σ_j P dP) with dP_j = dout_i . v_j into a scratch of probs' size; (2) one invocation per dq
 * element sums scale dS_ij k_j over the visible keys; (3) one invocation per (b, kv head, key j, d) walks the
 * group's query heads and the queries that see j, in order, for dk = scale Σ dS_ij q_i and dv = Σ P_ij dout_i.
 * All arithmetic f32 (tolerances: test/gpu/attention.test.ts).
 */
import type { AttentionDims, Kernels } from '../native/types.js';
import { bytesFor, type GpuArray } from './array.js';
import { dispatch, f32, flatIndexWgsl, type GpuKernel, grid, need, params } from './dispatch.js';
import { bindingsWgsl, distinct, ROW_MAX_WG as ROW_WG, rowGrid, rowKernel } from './rows.js';

/** The largest head dim (q and dout rows live in workgroup memory, one lane per element in P V). */
export const ATTENTION_MAX_HEAD_DIM = ROW_WG;
/** Scores per chunk of the forward's online softmax (a multiple of ROW_WG: 8 KiB of workgroup memory). */
const CHUNK = 2048;
const WG = 64;

const PARAMS = /* wgsl */ `
struct Params {
  rows: u32, cols: u32, tq: u32, tk: u32,
  heads: u32, kvHeads: u32, headDim: u32, group: u32,
  kgroups: u32, hasProbs: u32, scale: f32, _pad: u32,
}`;

/** WGSL: the row (b, h, i) of a [B, H, Tq, ...] index and the offsets of its q row and its first key. */
const DECODE_ROW = /* wgsl */ `
struct Row { b: u32, h: u32, i: u32, kvh: u32, qo: u32, nVis: u32 }
fn decodeRow(row: u32) -> Row {
  let i = row % P.tq;
  let h = (row / P.tq) % P.heads;
  let b = row / (P.tq * P.heads);
  let vis = clamp(i32(i) + i32(P.tk) - i32(P.tq) + 1, 0, i32(P.tk));
  return Row(b, h, i, h / P.group, ((b * P.tq + i) * P.heads + h) * P.headDim, u32(vis));
}
fn kvOffset(r: Row, j: u32) -> u32 { return ((r.b * P.tk + j) * P.kvHeads + r.kvh) * P.headDim; }
`;

const FORWARD = rowKernel(
  'attentionForward',
  `${PARAMS}\n${DECODE_ROW}\nconst CHUNK: u32 = ${CHUNK}u;\nvar<workgroup> qs: array<f32, ${ATTENTION_MAX_HEAD_DIM}>;\nvar<workgroup> S: array<f32, ${CHUNK}>;`,
  ['Q', 'K', 'V', 'Out!', 'Probs!'],
  /* wgsl */ `
  // n is the row (b, h, i) and o = n * Tk its probs offset (cols = Tk).
  let r = decodeRow(n);
  let D = P.headDim;
  for (var e = lid; e < D; e += ROW_WG) { qs[e] = Q[r.qo + e]; }
  workgroupBarrier();
  let e0 = lid % D;      // P V lane: output element
  let g = lid / D;       // P V key group (g < kgroups active)
  var m = -3.402823466e38;
  var l = 0.0;
  var acc = 0.0;
  for (var j0 = 0u; j0 < r.nVis; j0 += CHUNK) {
    let cnt = min(CHUNK, r.nVis - j0);
    var mx = -3.402823466e38;
    for (var jj = lid; jj < cnt; jj += ROW_WG) {
      let ko = kvOffset(r, j0 + jj);
      var s = 0.0;
      for (var e = 0u; e < D; e++) { s = fma(qs[e], K[ko + e], s); }
      s = s * P.scale;
      S[jj] = s;
      mx = max(mx, s);
      if (P.hasProbs != 0u) { Probs[o + j0 + jj] = s; }
    }
    let mn = max(m, reduceMax(lid, mx));
    var ls = 0.0;
    for (var jj = lid; jj < cnt; jj += ROW_WG) { let p = exp(S[jj] - mn); S[jj] = p; ls += p; }
    let alpha = exp(m - mn);
    l = l * alpha + reduceSum(lid, ls);
    var part = 0.0;
    if (g < P.kgroups) {
      for (var jj = g; jj < cnt; jj += P.kgroups) { part = fma(S[jj], V[kvOffset(r, j0 + jj) + e0], part); }
    }
    workgroupBarrier();
    red[lid] = part;
    workgroupBarrier();
    if (lid < D) {
      var t = 0.0;
      for (var gg = 0u; gg < P.kgroups; gg++) { t += red[gg * D + lid]; }
      acc = acc * alpha + t;
    }
    workgroupBarrier();
    m = mn;
  }
  if (lid < D) { Out[r.qo + lid] = select(0.0, acc / l, r.nVis > 0u); }
  if (P.hasProbs != 0u) {
    let inv = 1.0 / l;
    for (var j = lid; j < P.tk; j += ROW_WG) { Probs[o + j] = select(0.0, exp(Probs[o + j] - m) * inv, j < r.nVis); }
  }`,
);

/** Invocations of a tiled workgroup at most (queries per workgroup times slices per query). */
const TILE_WG = 64;
/** Floats of one K (and one V) tile in workgroup memory: 4 KiB each. */
const TILE_FLOATS = 1024;
/** Elements of q and of the output one invocation holds (a longer head is split into slices of lanes). */
const SLICE_MAX = 16;

/** The tiled forward's compile-time shape for head dim D. */
interface TileShape {
  /** Slices per query and their length (s sl >= D). */
  s: number;
  sl: number;
  /** Queries per workgroup, keys per K/V tile, keys per online-softmax step. */
  bq: number;
  bk: number;
  sub: number;
}

function tileShape(D: number): TileShape {
  const s = Math.ceil(D / SLICE_MAX);
  const bk = Math.min(64, 2 ** Math.floor(Math.log2(Math.max(1, TILE_FLOATS / D))));
  return { s, sl: Math.ceil(D / s), bq: Math.max(1, Math.floor(TILE_WG / s)), bk, sub: Math.min(bk, 16) };
}

/**
 * WGSL of the query-tiled forward for head dim D (specialised: every loop over D or a step is constant, so
 * q, the output and the step's scores stay in registers). Lane lid is slice lid % S of query lid / S of the
 * block; slices' partial dots meet in workgroup memory, summed in slice order.
 */
function tiledForwardCode(D: number): string {
  const { s: S, sl: SL, bq: BQ, bk: BK, sub: SUB } = tileShape(D);
  const score =
    S === 1
      ? `for (var u = 0u; u < SUB; u++) { sc[u] = dotSlice(&qv, e0, kb + u) * P.scale; }`
      : `workgroupBarrier();
      for (var u = 0u; u < SUB; u++) { part[(qi * S + sl) * SUB + u] = dotSlice(&qv, e0, kb + u); }
      workgroupBarrier();
      for (var u = 0u; u < SUB; u++) {
        var t = 0.0;
        for (var w = 0u; w < S; w++) { t += part[(qi * S + w) * SUB + u]; }
        sc[u] = t * P.scale;
      }`;
  return /* wgsl */ `
${PARAMS}
${bindingsWgsl(['Q', 'K', 'V', 'Out!', 'Probs!'])}
const D: u32 = ${D}u;
const S: u32 = ${S}u;
const SL: u32 = ${SL}u;
const BQ: u32 = ${BQ}u;
const BK: u32 = ${BK}u;
const SUB: u32 = ${SUB}u;
var<workgroup> Ks: array<f32, ${BK * D}>;
var<workgroup> Vs: array<f32, ${BK * D}>;
${S === 1 ? '' : `var<workgroup> part: array<f32, ${BQ * S * SUB}>;`}

// q (this lane's slice, starting at element e0) . key kk of the tile
fn dotSlice(qv: ptr<function, array<f32, SL>>, e0: u32, kk: u32) -> f32 {
  var d = 0.0;
  for (var e = 0u; e < SL; e++) { if (e0 + e < D) { d = fma((*qv)[e], Ks[kk * D + e0 + e], d); } }
  return d;
}

@compute @workgroup_size(${BQ * S}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let nqb = (P.tq + BQ - 1u) / BQ;
  let n = wg.x + wg.y * nwg.x;
  if (n >= P.rows) { return; } // rows = B H nqb here
  let h = (n / nqb) % P.heads;
  let b = n / (nqb * P.heads);
  let kvh = h / P.group;
  let qi = lid / S;
  let sl = lid % S;
  let e0 = ${S === 1 ? '0u' : 'sl * SL'};
  let i = (n % nqb) * BQ + qi;
  let live = i < P.tq;
  let off = i32(P.tk) - i32(P.tq);
  let nVis = select(0u, u32(clamp(i32(i) + off + 1, 0, i32(P.tk))), live);
  let iLast = min((n % nqb) * BQ + BQ, P.tq) - 1u;
  let kEnd = u32(clamp(i32(iLast) + off + 1, 0, i32(P.tk))); // keys the block sees
  let qo = ((b * P.tq + i) * P.heads + h) * D;
  let po = ((b * P.heads + h) * P.tq + i) * P.tk;
  var qv: array<f32, SL>;
  for (var e = 0u; e < SL; e++) { qv[e] = select(0.0, Q[qo + e0 + e], live && e0 + e < D); }
  var acc: array<f32, SL>;
  var sc: array<f32, SUB>;
  var m = -3.402823466e38;
  var l = 0.0;
  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    workgroupBarrier();
    for (var t = lid; t < BK * D; t += BQ * S) {
      let j = k0 + t / D;
      let kvo = ((b * P.tk + j) * P.kvHeads + kvh) * D + t % D;
      Ks[t] = select(0.0, K[kvo], j < P.tk);
      Vs[t] = select(0.0, V[kvo], j < P.tk);
    }
    workgroupBarrier();
    for (var kb = 0u; kb < BK; kb += SUB) {
      ${score}
      var mx = m;
      for (var u = 0u; u < SUB; u++) { if (k0 + kb + u < nVis) { mx = max(mx, sc[u]); } }
      let alpha = exp(m - mx);
      l = l * alpha;
      for (var e = 0u; e < SL; e++) { acc[e] = acc[e] * alpha; }
      for (var u = 0u; u < SUB; u++) {
        let j = k0 + kb + u;
        if (j < nVis) {
          if (P.hasProbs != 0u && j % S == sl) { Probs[po + j] = sc[u]; }
          let p = exp(sc[u] - mx);
          l += p;
          for (var e = 0u; e < SL; e++) { if (e0 + e < D) { acc[e] = fma(p, Vs[(kb + u) * D + e0 + e], acc[e]); } }
        }
      }
      m = mx;
    }
  }
  if (!live) { return; }
  for (var e = 0u; e < SL; e++) { if (e0 + e < D) { Out[qo + e0 + e] = select(0.0, acc[e] / l, nVis > 0u); } }
  if (P.hasProbs != 0u) {
    let inv = 1.0 / l;
    for (var j = sl; j < P.tk; j += S) { Probs[po + j] = select(0.0, exp(Probs[po + j] - m) * inv, j < nVis); }
  }
}
`;
}

const tiledForwards = new Map<number, GpuKernel>();

/** The tiled forward for head dim D (compiled once per D). */
function tiledForward(D: number): GpuKernel {
  let k = tiledForwards.get(D);
  if (k === undefined) {
    k = { label: `attentionForward tiled D=${D}`, code: tiledForwardCode(D) };
    tiledForwards.set(D, k);
  }
  return k;
}

const BACKWARD_DS = rowKernel(
  'attentionBackward dS',
  `${PARAMS}\n${DECODE_ROW}\nvar<workgroup> dos: array<f32, ${ATTENTION_MAX_HEAD_DIM}>;`,
  ['V', 'Probs', 'Dout', 'DS!'],
  /* wgsl */ `
  let r = decodeRow(n);
  let D = P.headDim;
  for (var e = lid; e < D; e += ROW_WG) { dos[e] = Dout[r.qo + e]; }
  workgroupBarrier();
  var pd = 0.0;
  for (var j = lid; j < r.nVis; j += ROW_WG) {
    let vo = kvOffset(r, j);
    var dp = 0.0;
    for (var e = 0u; e < D; e++) { dp = fma(dos[e], V[vo + e], dp); }
    DS[o + j] = dp;
    pd = fma(Probs[o + j], dp, pd);
  }
  let rowDot = reduceSum(lid, pd);
  for (var j = lid; j < P.tk; j += ROW_WG) {
    DS[o + j] = select(0.0, Probs[o + j] * (DS[o + j] - rowDot), j < r.nVis);
  }`,
);

/** A flat kernel over `count` (a Params field) invocations: `body` runs with `idx` in scope. */
function flatKernel(label: string, names: string[], count: string, body: string): GpuKernel {
  const code = /* wgsl */ `
${PARAMS}
${DECODE_ROW}
${bindingsWgsl(names)}
${flatIndexWgsl(WG)}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = flatIndex(gid, nwg);
  if (idx >= ${count}) { return; }
  ${body}
}
`;
  return { label, code };
}

// dq[b, i, h, e] = scale Σ_j dS[b, h, i, j] k[b, j, kvh, e]; cols = B Tq H D here.
const BACKWARD_DQ = flatKernel(
  'attentionBackward dq',
  ['K', 'DS', 'Dq!'],
  'P.cols',
  /* wgsl */ `
  let e = idx % P.headDim;
  let qrow = idx / P.headDim; // (b * Tq + i) * H + h
  let h = qrow % P.heads;
  let i = (qrow / P.heads) % P.tq;
  let b = qrow / (P.heads * P.tq);
  let r = decodeRow((b * P.heads + h) * P.tq + i);
  let so = ((b * P.heads + h) * P.tq + i) * P.tk;
  var acc = 0.0;
  for (var j = 0u; j < r.nVis; j++) { acc = fma(DS[so + j], K[kvOffset(r, j) + e], acc); }
  Dq[idx] = P.scale * acc;`,
);

// dk[b, j, kvh, e] = scale Σ_{h in group, i >= j - (Tk - Tq)} dS[b, h, i, j] q[b, i, h, e]; dv likewise with P
// and dout; cols = B Tk Hkv D here.
const BACKWARD_DKDV = flatKernel(
  'attentionBackward dk dv',
  ['Q', 'Probs', 'Dout', 'DS', 'Dk!', 'Dv!'],
  'P.cols',
  /* wgsl */ `
  let e = idx % P.headDim;
  let krow = idx / P.headDim; // (b * Tk + j) * Hkv + kvh
  let kvh = krow % P.kvHeads;
  let j = (krow / P.kvHeads) % P.tk;
  let b = krow / (P.kvHeads * P.tk);
  let i0 = u32(max(0, i32(j) - (i32(P.tk) - i32(P.tq))));
  var ak = 0.0;
  var av = 0.0;
  for (var h = kvh * P.group; h < (kvh + 1u) * P.group; h++) {
    for (var i = i0; i < P.tq; i++) {
      let so = ((b * P.heads + h) * P.tq + i) * P.tk + j;
      let qo = ((b * P.tq + i) * P.heads + h) * P.headDim + e;
      ak = fma(DS[so], Q[qo], ak);
      av = fma(Probs[so], Dout[qo], av);
    }
  }
  Dk[idx] = P.scale * ak;
  Dv[idx] = av;`,
);

function checkDims(kernel: string, d: AttentionDims): void {
  if (d.kvHeads === 0 ? d.heads !== 0 : d.heads % d.kvHeads !== 0) {
    throw new RangeError(`${kernel}: heads (${d.heads}) must be a multiple of kvHeads (${d.kvHeads})`);
  }
  if (d.headDim > ATTENTION_MAX_HEAD_DIM) {
    throw new RangeError(`${kernel}: headDim ${d.headDim} exceeds the GPU kernel's ${ATTENTION_MAX_HEAD_DIM}`);
  }
}

/** The uniform of every attention kernel; `cols` is the kernel's own extent (see each kernel). */
function attentionParams(
  d: AttentionDims,
  cols: number,
  hasProbs: boolean,
  rows = d.batch * d.heads * d.tq,
): ArrayBuffer {
  const { tq, tk, heads: H, kvHeads: Hkv, headDim: D } = d;
  const kgroups = D === 0 ? 1 : Math.floor(ROW_WG / D);
  return params(rows, cols, tq, tk, H, Hkv, D, Hkv === 0 ? 1 : H / Hkv, kgroups, hasProbs ? 1 : 0, f32(d.scale));
}

/** out = softmax(scale q kᵀ + causal mask) v per head; probs (when given) saved for the backward. */
export function attentionForward(
  q: GpuArray,
  k: GpuArray,
  v: GpuArray,
  out: GpuArray,
  probs: GpuArray | null,
  d: AttentionDims,
): void {
  const { batch: B, tq, tk, heads: H, kvHeads: Hkv, headDim: D } = d;
  checkDims('attentionForward', d);
  need('attentionForward', 'q', q, B * tq * H * D);
  need('attentionForward', 'k', k, B * tk * Hkv * D);
  need('attentionForward', 'v', v, B * tk * Hkv * D);
  need('attentionForward', 'out', out, B * tq * H * D);
  if (probs !== null) need('attentionForward', 'probs', probs, B * H * tq * tk);
  distinct('attentionForward', probs === null ? { out } : { out, probs }, { q, k, v });
  const rows = B * H * tq;
  if (rows === 0 || D === 0) return;
  const { ctx } = q;
  // Without probs the kernel writes none; WebGPU still wants a buffer at that binding.
  const sink = probs ?? ctx.acquire(16, 'attention no probs');
  const { bq } = tileShape(D);
  if (tq >= bq) {
    const blocks = B * H * Math.ceil(tq / bq);
    const p = attentionParams(d, tk, probs !== null, blocks);
    dispatch(ctx, tiledForward(D), [q, k, v, out, sink], p, rowGrid(ctx, blocks));
  } else {
    dispatch(ctx, FORWARD(ROW_WG), [q, k, v, out, sink], attentionParams(d, tk, probs !== null), rowGrid(ctx, rows));
  }
  if (probs === null) ctx.recycle(sink as GPUBuffer);
}

/** dq, dk, dv overwritten from dout and the forward's probs. */
export function attentionBackward(
  q: GpuArray,
  k: GpuArray,
  v: GpuArray,
  probs: GpuArray,
  dout: GpuArray,
  dq: GpuArray,
  dk: GpuArray,
  dv: GpuArray,
  d: AttentionDims,
): void {
  const { batch: B, tq, tk, heads: H, kvHeads: Hkv, headDim: D } = d;
  checkDims('attentionBackward', d);
  const arrays: [string, GpuArray, number][] = [
    ['q', q, B * tq * H * D],
    ['k', k, B * tk * Hkv * D],
    ['v', v, B * tk * Hkv * D],
    ['probs', probs, B * H * tq * tk],
    ['dout', dout, B * tq * H * D],
    ['dq', dq, B * tq * H * D],
    ['dk', dk, B * tk * Hkv * D],
    ['dv', dv, B * tk * Hkv * D],
  ];
  for (const [name, arr, len] of arrays) need('attentionBackward', name, arr, len);
  distinct('attentionBackward', { dq, dk, dv }, { q, k, v, probs, dout });
  const { ctx } = q;
  const nq = B * tq * H * D;
  const nk = B * tk * Hkv * D;
  // Tk = 0 or Tq = 0 still runs: the loops are empty and the gradients get written as zeros.
  if (nq === 0 && nk === 0) return;
  const ds = ctx.acquire(bytesFor(B * H * tq * tk), 'attention dS');
  dispatch(ctx, BACKWARD_DS(ROW_WG), [v, probs, dout, ds], attentionParams(d, tk, true), rowGrid(ctx, B * H * tq));
  dispatch(ctx, BACKWARD_DQ, [k, ds, dq], attentionParams(d, nq, true), grid(ctx, nq, WG));
  dispatch(ctx, BACKWARD_DKDV, [q, probs, dout, ds, dk, dv], attentionParams(d, nk, true), grid(ctx, nk, WG));
  ctx.recycle(ds);
}

export const attentionKernels = { attentionForward, attentionBackward } satisfies Pick<
  Kernels<GpuArray>,
  'attentionForward' | 'attentionBackward'
>;
