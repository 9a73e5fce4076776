/**
 * The WGSL AdamW step (src/gpu/adamw.ts) against the reference (src/native/ref.ts, double arithmetic with
 * f32 stores): odd sizes, several steps with bias corrections, weight decay, a clipping gradScale, the
 * multi-tensor adamwMany, and the refusal of aliased state.
 */
import { describe, expect, it } from 'vitest';
import { adamw, adamwMany } from '../../src/gpu/adamw.js';
import type { AdamWStepParams } from '../../src/native/types.js';
import { expectClose, rand32, ref, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

const SIZES = [1, 3, 7, 127, 129, 1023];

/** Gradients are drawn in [-G_MAX, G_MAX]: m stays within G_MAX, v within G_MAX². */
const G_MAX = 0.1;
/**
 * m and v: two products and a sum in f32 vs one rounding of the double result. The sum can cancel (m = 0.9 m +
 * 0.1 g with opposite signs), so the bound is a few ulp of the terms, not of the result: 2^-22 of the state's
 * bound absolute, plus 1e-6 relative. θ: its own
 * rounding (2^-24 relative), plus the update lr m / (sqrt(v) + ε) (|update| <= ~lr) off by a few ulp through
 * m, v, the division and sqrt: 1e-6 relative of lr = 1e-2 is 1e-8 absolute.
 */
const ADAMW_STATE_TOL = (bound: number): Tol => ({ rtol: 1e-6, atol: 2 ** -22 * bound });
const ADAMW_THETA_TOL = (lr: number): Tol => ({ rtol: 3e-7, atol: 4e-6 * lr });

const gpu = useGpu();

function stepParams(t: number, gradScale: number): AdamWStepParams {
  const beta1 = 0.9;
  const beta2 = 0.999;
  return { lr: 1e-2, beta1, beta2, eps: 1e-8, weightDecay: 0.1, c1: 1 - beta1 ** t, c2: 1 - beta2 ** t, gradScale };
}

async function check(n: number, gradScale: number, seed: number): Promise<void> {
  const { ctx } = gpu();
  const th = rand32(n, seed);
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  const gt = up(ctx, th);
  const gm = ctx.zeros(n);
  const gv = ctx.zeros(n);
  for (let t = 1; t <= 3; t++) {
    const g = rand32(n, seed + t, -G_MAX, G_MAX);
    const p = stepParams(t, gradScale);
    ref.adamw(th, g, m, v, p);
    adamw(gt, up(ctx, g), gm, gv, p);
    const label = `adamw n=${n} gradScale=${gradScale} step ${t}`;
    expectClose(await down(gm), m, ADAMW_STATE_TOL(G_MAX), `${label} m`);
    expectClose(await down(gv), v, ADAMW_STATE_TOL(G_MAX ** 2), `${label} v`);
    expectClose(await down(gt), th, ADAMW_THETA_TOL(p.lr), `${label} theta`);
  }
}

describe('gpu adamw', () => {
  it('three steps on odd sizes, unclipped and clipped', async () => {
    for (const n of SIZES) {
      await check(n, 1, n);
      await check(n, 0.37, n + 50);
    }
  });

  it('adamwMany: each tensor as the reference updates it, and a list of the wrong length named', async () => {
    const { ctx } = gpu();
    const want = SIZES.map((n) => ({ th: rand32(n, n), m: new Float32Array(n), v: new Float32Array(n) }));
    const got = want.map((w) => ({ th: up(ctx, w.th), m: ctx.zeros(w.th.length), v: ctx.zeros(w.th.length) }));
    const p = stepParams(1, 0.37);
    const gs = SIZES.map((n) => rand32(n, n + 1, -G_MAX, G_MAX));
    want.forEach((w, i) => ref.adamw(w.th, gs[i], w.m, w.v, p));
    const pick = (k: 'th' | 'm' | 'v') => got.map((x) => x[k]);
    adamwMany(
      pick('th'),
      gs.map((g) => up(ctx, g)),
      pick('m'),
      pick('v'),
      p,
    );
    for (const [i, w] of want.entries()) {
      expectClose(await down(got[i].m), w.m, ADAMW_STATE_TOL(G_MAX), `adamwMany tensor ${i} m`);
      expectClose(await down(got[i].v), w.v, ADAMW_STATE_TOL(G_MAX ** 2), `adamwMany tensor ${i} v`);
      expectClose(await down(got[i].th), w.th, ADAMW_THETA_TOL(p.lr), `adamwMany tensor ${i} theta`);
    }
    expect(() => adamwMany(pick('th'), [], pick('m'), pick('v'), p)).toThrow(
      `adamwMany: gs has 0 entries, expected ${SIZES.length}`,
    );
  });

  it('validates lengths and refuses aliased state', () => {
    const { ctx } = gpu();
    const p = stepParams(1, 1);
    expect(() => adamw(ctx.zeros(4), ctx.zeros(4), ctx.zeros(3), ctx.zeros(4), p)).toThrow(
      'adamw: m has 3 elements, needs at least 4',
    );
    const m = ctx.zeros(4);
    expect(() => adamw(ctx.zeros(4), ctx.zeros(4), m, m, p)).toThrow(/adamw: two outputs must not share a buffer/);
  });
});
