/**
 * Fused cross-entropy with an ignore index in WGSL (the CrossEntropyDims contract of src/native/types.ts;
 * oracle src/native/ref.ts). Targets are a host Int32Array: validated on the host with the reference's
 * message, uploaded raw and recycled after the dispatch.
 *
 * Forward: one workgroup of 256 per row (rows beyond 65535 fold into the grid's y). Each invocation takes the
 * max of its strided share of the row's logits, a tree in workgroup memory gives the row max; the same for
 * Σ exp(logit - max); invocation 0 writes lse = max + log(sum) and loss = lse - logit[target], 0 for
 * ignored rows (whose lse is still written, as the reference's). The sum is f32: ceil(V / 256) serial adds per
 * invocation (125 at V = 32000) then a tree, so its relative error stays near 1e-6 and lse's absolute error near
 * that (log's derivative 1 / sum).
 * Backward: one invocation per logit, dlogits = (exp(logit - lse) - onehot) * rowScale, 0 on ignored rows
 * (overwritten).
 * Logits over the binding limit (src/gpu/windows.ts): the forward dispatches chunks of rows (one row must fit a
 * binding), the backward splits with the element index (pointwise.ts); the results are the unsplit ones bit for bit.
 */
import { checkTargets } from '../native/ref.js';
import type { CrossEntropyDims, Kernels } from '../native/types.js';
import type { GpuArray } from './array.js';
import { dispatch, f32, type GpuKernel, grid, need, params } from './dispatch.js';
import { bindingsWgsl, distinct, pointwise, runPointwise, WG } from './pointwise.js';
import { treeReduceWgsl } from './reduce.js';
import { chunksOf, originOf, planChunks, windowOf } from './windows.js';

const forwardKernel: GpuKernel = {
  label: 'crossEntropyForward',
  code: /* wgsl */ `
${bindingsWgsl(
  [
    { name: 'L', access: 'read' },
    { name: 'TGT', access: 'read', type: 'i32' },
    { name: 'LOSS', access: 'read_write' },
    { name: 'LSE', access: 'read_write' },
  ],
  'rows: u32, vocab: u32, ignore: i32, row0: u32, o_L: u32,',
)}
${treeReduceWgsl('rowMax', 'max(a, b)')}
${treeReduceWgsl('rowSum', 'a + b')}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = P.row0 + wg.x + wg.y * nwg.x;
  if (row >= P.rows) { return; }
  let o = P.o_L + row * P.vocab;
  var mx = -3.4028234e38; // the lowest finite f32 (WGSL has no -inf literal)
  for (var k = li; k < P.vocab; k += ${WG}u) { mx = max(mx, L[o + k]); }
  mx = rowMax(li, mx);
  var s = 0.0;
  for (var k = li; k < P.vocab; k += ${WG}u) { s += exp(L[o + k] - mx); }
  s = rowSum(li, s);
  if (li == 0u) {
    let lse = mx + log(s);
    LSE[row] = lse;
    let t = TGT[row];
    if (t == P.ignore) { LOSS[row] = 0.0; } else { LOSS[row] = lse - L[o + u32(t)]; }
  }
}
`,
};

function uploadTargets(logits: GpuArray, targets: Int32Array, rows: number): GPUBuffer {
  return logits.ctx.uploadRaw(targets.subarray(0, rows), 'cross-entropy targets');
}

/** losses[n] = lse[n] - logits[n, targets[n]] (0 where ignored); lse[n] written for every row. */
export function crossEntropyForward(
  logits: GpuArray,
  targets: Int32Array,
  losses: GpuArray,
  lse: GpuArray,
  d: CrossEntropyDims,
): void {
  const { rows, vocab: V } = d;
  need('crossEntropyForward', 'logits', logits, rows * V);
  need('crossEntropyForward', 'targets', targets, rows);
  need('crossEntropyForward', 'losses', losses, rows);
  need('crossEntropyForward', 'lse', lse, rows);
  checkTargets('crossEntropyForward', targets, d);
  distinct('crossEntropyForward', losses, logits, lse);
  distinct('crossEntropyForward', lse, logits);
  if (rows === 0) return;
  const buf = uploadTargets(logits, targets, rows);
  try {
    // Over the binding limit: chunks of rows, the logits bound where the chunk's rows are (one row must fit).
    const reach = { array: logits, strides: [V], width: V };
    for (const c of chunksOf([rows], planChunks('crossEntropyForward', [rows], [reach]))) {
      const w = windowOf(reach, c);
      const p = params(c.lo[0] + c.size[0], V, d.ignoreIndex, c.lo[0], originOf(w));
      dispatch(logits.ctx, forwardKernel, [w, buf, losses, lse], p, grid(logits.ctx, c.size[0], 1));
    }
  } finally {
    logits.ctx.recycle(buf);
  }
}

const backwardKernel = pointwise({
  label: 'crossEntropyBackward',
  bindings: [
    { name: 'L', access: 'read', flat: true },
    { name: 'TGT', access: 'read', type: 'i32' },
    { name: 'LSE', access: 'read' },
    { name: 'D', access: 'read_write', flat: true },
  ],
  params: 'vocab: u32, ignore: i32, scale: f32,',
  body: /* wgsl */ `
  let row = i / P.vocab;
  let t = TGT[row];
  if (t == P.ignore) { D[i] = 0.0; return; }
  let onehot = select(0.0, 1.0, u32(t) == i - row * P.vocab);
  D[i] = (exp(L[i] - LSE[row]) - onehot) * P.scale;`,
});

/** dlogits = (softmax(logits) - onehot(target)) * rowScale, zero rows where ignored (overwritten). */
export function crossEntropyBackward(
  logits: GpuArray,
  targets: Int32Array,
  lse: GpuArray,
  rowScale: number,
  dlogits: GpuArray,
  d: CrossEntropyDims,
): void {
  const { rows, vocab: V } = d;
  need('crossEntropyBackward', 'logits', logits, rows * V);
  need('crossEntropyBackward', 'targets', targets, rows);
  need('crossEntropyBackward', 'lse', lse, rows);
  need('crossEntropyBackward', 'dlogits', dlogits, rows * V);
  checkTargets('crossEntropyBackward', targets, d);
  if (rows * V === 0) return;
  distinct('crossEntropyBackward', dlogits, logits, lse); // before the upload, so a refusal leaks nothing
  const buf = uploadTargets(logits, targets, rows);
  try {
    runPointwise(logits.ctx, backwardKernel, [logits, buf, lse, dlogits], rows * V, V, d.ignoreIndex, f32(rowScale));
  } finally {
    logits.ctx.recycle(buf);
  }
}

export const crossEntropyKernels = { crossEntropyForward, crossEntropyBackward } satisfies Partial<Kernels<GpuArray>>;
