/**
 * src/gpu/device.ts: the report of the adapter it opens, and the error when there is none. A file of its own
 * (vitest runs each file in its own process): EGL reads EGL_PLATFORM once per process, so the missing-adapter
 * case sets a platform EGL refuses before the first getGpu().
 */
import { afterAll, describe, expect, it } from 'vitest';
import { closeGpu, GpuUnavailableError, getGpu, MESA_PACKAGES } from '../../src/gpu/device.js';

afterAll(async () => {
  await closeGpu();
});

describe('gpu device without an adapter', () => {
  it('fails with the packages to install', async () => {
    const before = process.env.EGL_PLATFORM;
    process.env.EGL_PLATFORM = 'no-such-platform';
    try {
      const err = await getGpu('opengles').then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(GpuUnavailableError);
      const message = (err as Error).message;
      for (const p of MESA_PACKAGES) expect(message).toContain(p);
      expect(message).toContain('EGL_PLATFORM is no-such-platform');
    } finally {
      if (before === undefined) delete process.env.EGL_PLATFORM;
      else process.env.EGL_PLATFORM = before;
    }
  });
});
