/** src/gpu/device.ts on this machine's adapter (llvmpipe where there is no GPU): one device, reported, closed. */
import { describe, expect, it } from 'vitest';
import { closeGpu, getGpu } from '../../src/gpu/device.js';

describe('gpu device', () => {
  it('opens once, reports the adapter and its limits, and closes', async () => {
    const g = await getGpu();
    expect(await getGpu()).toBe(g);
    const r = g.report;
    expect(r.description.length).toBeGreaterThan(0);
    expect(r.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    // the adapter's compute limits were asked for (a compatibility device's defaults are 128 and 16 KiB)
    expect(r.limits.maxComputeInvocationsPerWorkgroup).toBe(g.adapter.limits.maxComputeInvocationsPerWorkgroup);
    expect(r.limits.maxComputeWorkgroupStorageSize).toBe(g.adapter.limits.maxComputeWorkgroupStorageSize);
    expect(Array.isArray(r.features)).toBe(true);
    await closeGpu();
    const again = await getGpu();
    expect(again).not.toBe(g);
    await closeGpu();
  });
});
