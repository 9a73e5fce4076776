/**
 * Embedding lookup and its scatter-add backward in WGSL (the EmbeddingDims contract of src/native/types.ts;
 * oracle src/native/ref.ts). Ids are host Int32Arrays: validated on the host with the reference's message,
 * uploaded raw and recycled after the dispatch.
 *
 * Forward: one invocation per output element, out[n, c] = table[ids[n], c]; the table may be half storage (a frozen
 * table of an F16/BF16 checkpoint, src/gpu/half.ts): one kernel per read path, the load function TABLE_at.
 * Backward (dTable[ids[n], :] += dy[n, :]), deterministic without atomics: the host groups the positions by id
 * (a stable sort of 0..rows-1 by id: for each distinct id, its positions in increasing order) and uploads one
 * u32 buffer [ids of the U groups | U + 1 group offsets | positions]. One invocation per (group, column) loads
 * dTable's element, adds the group's dy rows in position order and stores it: the reference's sequence of f32
 * additions exactly, so the result equals the reference's bit for bit. O(rows * dim) work.
 *
 * A table over the binding limit (a 7B vocabulary, src/gpu/windows.ts) is bound in chunks of rows: the forward
 * runs once per chunk, writing the positions whose id is in it; the backward runs, per chunk, the groups of its
 * ids (a contiguous run of groups). Each output element is still written by one invocation, as unsplit.
 */
import { checkIds } from '../native/ref.js';
import type { EmbeddingDims, Kernels } from '../native/types.js';
import type { GpuArray } from './array.js';
import { need } from './dispatch.js';
import { readPath, variants } from './half.js';
import { pointwise, runPointwise } from './pointwise.js';
import { chunksOf, planChunks, type Reach, windowOf } from './windows.js';

const forwardKernel = variants((table) =>
  pointwise({
    label: 'embeddingForward',
    bindings: [
      { name: 'TABLE', access: 'read', read: table },
      { name: 'IDS', access: 'read', type: 'u32' },
      { name: 'O', access: 'read_write', flat: true },
    ],
    params: 'dim: u32, v0: u32, v1: u32,',
    body: /* wgsl */ `
  let n = i / P.dim;
  let c = i - n * P.dim;
  let id = IDS[n];
  if (id < P.v0 || id >= P.v1) { return; }
  O[i] = TABLE_at(id * P.dim + c);`,
  }),
);

/** A table [V, dim] read by rows: chunks of the vocabulary bind the rows they cover. */
function tableReach(table: GpuArray, dim: number): Reach {
  return { array: table, strides: [dim], width: dim };
}

/** out[n, :] = table[ids[n], :] for n < rows; ids outside [0, vocab) throw the reference's RangeError. */
export function embeddingForward(table: GpuArray, ids: Int32Array, out: GpuArray, d: EmbeddingDims): void {
  const { rows, dim: C, vocab: V } = d;
  need('embeddingForward', 'table', table, V * C);
  need('embeddingForward', 'ids', ids, rows);
  need('embeddingForward', 'out', out, rows * C);
  checkIds('embeddingForward', ids, rows, V);
  if (rows * C === 0) return;
  const { ctx } = out;
  const buf = ctx.uploadRaw(ids.subarray(0, rows), 'embedding ids');
  try {
    const kernel = forwardKernel(readPath(ctx.device, table.format));
    const reach = tableReach(table, C);
    for (const c of chunksOf([V], planChunks('embeddingForward', [V], [reach]))) {
      const [v0, v1] = [c.lo[0], c.lo[0] + c.size[0]];
      runPointwise(ctx, kernel, [windowOf(reach, c), buf, out], rows * C, C, v0, v1);
    }
  } finally {
    ctx.recycle(buf);
  }
}

const backwardKernel = pointwise({
  label: 'embeddingBackward',
  bindings: [
    { name: 'DY', access: 'read' },
    { name: 'GROUPS', access: 'read', type: 'u32' },
    { name: 'DT', access: 'read_write' },
  ],
  params: 'dim: u32, groups: u32,',
  body: /* wgsl */ `
  let g = i / P.dim;
  let c = i - g * P.dim;
  let o = GROUPS[g] * P.dim + c;
  let first = GROUPS[P.groups + g];
  let last = GROUPS[P.groups + g + 1u];
  let positions = 2u * P.groups + 1u;
  var acc = DT[o];
  for (var k = first; k < last; k++) { acc += DY[GROUPS[positions + k] * P.dim + c]; }
  DT[o] = acc;`,
});

/**
 * The positions 0..rows-1 grouped by id: [ids of the U groups | U + 1 offsets into positions | positions],
 * groups in increasing id order, positions increasing within a group.
 */
export function groupById(ids: Int32Array, rows: number): { groups: number; packed: Uint32Array } {
  const order = Uint32Array.from({ length: rows }, (_, k) => k).sort((a, b) => ids[a] - ids[b] || a - b);
  let groups = 0;
  for (let k = 0; k < rows; k++) if (k === 0 || ids[order[k]] !== ids[order[k - 1]]) groups++;
  const packed = new Uint32Array(2 * groups + 1 + rows);
  let g = -1;
  for (let k = 0; k < rows; k++) {
    if (k === 0 || ids[order[k]] !== ids[order[k - 1]]) {
      g++;
      packed[g] = ids[order[k]];
      packed[groups + g] = k;
    }
  }
  packed[2 * groups] = rows;
  packed.set(order, 2 * groups + 1);
  return { groups, packed };
}

/** The first of the `groups` (ids in increasing order at packed[0..groups)) whose id is at least `id`. */
function firstGroupAtLeast(packed: Uint32Array, groups: number, id: number): number {
  let lo = 0;
  let hi = groups;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (packed[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** dTable[ids[n], :] += dy[n, :] (ACCUMULATES; deterministic, in position order per id). */
export function embeddingBackward(dy: GpuArray, ids: Int32Array, dTable: GpuArray, d: EmbeddingDims): void {
  const { rows, dim: C, vocab: V } = d;
  need('embeddingBackward', 'dy', dy, rows * C);
  need('embeddingBackward', 'ids', ids, rows);
  need('embeddingBackward', 'dTable', dTable, V * C);
  checkIds('embeddingBackward', ids, rows, V);
  if (rows * C === 0) return;
  const { ctx } = dTable;
  const { groups, packed } = groupById(ids, rows);
  const buf = ctx.uploadRaw(packed, 'embedding groups');
  try {
    const reach = tableReach(dTable, C);
    for (const c of chunksOf([V], planChunks('embeddingBackward', [V], [reach]))) {
      // the groups whose id is in the chunk's rows: contiguous, groups being in increasing id order
      const g0 = firstGroupAtLeast(packed, groups, c.lo[0]);
      const g1 = firstGroupAtLeast(packed, groups, c.lo[0] + c.size[0]);
      runPointwise(ctx, backwardKernel, [dy, buf, windowOf(reach, c)], [g0 * C, g1 * C], C, groups);
    }
  } finally {
    ctx.recycle(buf);
  }
}

export const embeddingKernels = { embeddingForward, embeddingBackward } satisfies Partial<Kernels<GpuArray>>;
