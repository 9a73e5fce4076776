/**
 * selectDevice on a machine with no adapter at all: `gpu` fails with the packages to install (the Vulkan loader
 * and Mesa's), `auto` stays on the CPU. A file of its own (vitest runs each file in its own process): EGL reads
 * EGL_PLATFORM once per process, so a platform EGL refuses is set before anything opens. Where Dawn's default
 * backend has a hardware adapter, `gpu` takes it instead (the assertion that holds on that machine).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { closeGpu, GpuUnavailableError, MESA_PACKAGES, selectDevice, VULKAN_PACKAGES } from '../../src/gpu/device.js';
import { probeBackend } from '../../src/gpu/probe.js';

afterAll(async () => {
  await closeGpu();
});

describe('selectDevice without any adapter', () => {
  it('gpu names the packages to install; auto stays on the CPU', async () => {
    const before = process.env.EGL_PLATFORM;
    const forced = process.env.WCT_GPU_BACKEND;
    process.env.EGL_PLATFORM = 'no-such-platform';
    delete process.env.WCT_GPU_BACKEND;
    try {
      const dflt = await probeBackend('default');
      const auto = await selectDevice('auto');
      const gpu = await selectDevice('gpu').then(
        (r) => r,
        (e: unknown) => e,
      );
      if (dflt.adapter !== null && !dflt.adapter.software) {
        expect(auto.gpu?.report.software).toBe(false);
        return;
      }
      expect(auto.gpu).toBeNull();
      expect(gpu).toBeInstanceOf(GpuUnavailableError);
      const message = (gpu as Error).message;
      expect(message).toMatch(/^--device gpu: no WebGPU adapter\. Dawn's default backend/);
      expect(message).toContain('EGL_PLATFORM is no-such-platform');
      for (const p of [...VULKAN_PACKAGES, ...MESA_PACKAGES]) expect(message).toContain(p);
      expect(message).toContain('`wct env` shows what each backend found');
    } finally {
      if (before === undefined) delete process.env.EGL_PLATFORM;
      else process.env.EGL_PLATFORM = before;
      if (forced !== undefined) process.env.WCT_GPU_BACKEND = forced;
    }
  });
});
