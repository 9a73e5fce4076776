/**
 * Dispatch errors: WebGPU reports a shader that does not compile (or any validation error) asynchronously and
 * the dispatch does nothing; the backend turns it into an error at the next read-back, naming the message.
 */
import { expect, it } from 'vitest';
import { dispatch } from '../../src/gpu/dispatch.js';
import { down, useGpu } from './helpers.js';
const gpu = useGpu();
it("a shader that does not compile fails the next read-back with Dawn's message", async () => {
  const { ctx } = gpu();
  const a = ctx.zeros(4);
  dispatch(
    ctx,
    { label: 'bad', code: '@compute @workgroup_size(1) fn main() { let x: f32 = -inf; }' },
    [a],
    null,
    [1, 1, 1],
  );
  await expect(down(a)).rejects.toThrow(/the device reported \d+ error\(s\); the first: .*unresolved value 'inf'/s);
});
