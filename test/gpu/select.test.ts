/**
 * Device selection (src/gpu/device.ts selectDevice, planDevice) and the child-process backend probe
 * (src/gpu/probe.ts) on this machine's adapters, and the plan for the adapters of other machines (synthetic
 * probes). On a machine without a GPU, Dawn's default backend finds nothing and OpenGL ES gives llvmpipe: `auto`
 * stays on the CPU, `gpu` opens llvmpipe in the same process after the default backend was probed (in a child,
 * and once in-process too).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gemm } from '../../src/gpu/matmul.js';
import {
  closeGpu,
  forcedBackend,
  getGpu,
  GpuUnavailableError,
  planDevice,
  selectDevice,
} from '../../src/gpu/device.js';
import { type BackendProbe, diagnosticLines, probeBackend } from '../../src/gpu/probe.js';
import { gemmDims } from '../../src/native/types.js';
import { down, up } from './helpers.js';

// the plan follows the adapters found, not a forced backend
const forcedBefore = process.env.WCT_GPU_BACKEND;
beforeAll(() => {
  delete process.env.WCT_GPU_BACKEND;
});
afterAll(async () => {
  await closeGpu();
  if (forcedBefore !== undefined) process.env.WCT_GPU_BACKEND = forcedBefore;
});

const hardware: BackendProbe = {
  backend: 'default',
  adapter: {
    description: 'NVIDIA H200',
    vendor: 'nvidia',
    architecture: 'hopper',
    device: '',
    software: false,
    features: ['shader-f16', 'subgroups'],
    limits: {},
  },
  error: null,
  diagnostics: [],
  ms: 1,
};
const lavapipe: BackendProbe = {
  ...hardware,
  adapter: { ...hardware.adapter!, description: 'llvmpipe', software: true },
};
const none: BackendProbe = {
  backend: 'default',
  adapter: null,
  error: 'no adapter',
  diagnostics: ["Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file"],
  ms: 1,
};

describe('planDevice', () => {
  it('auto takes a hardware adapter only; gpu falls back to the software one through opengles', () => {
    expect(planDevice('auto', hardware, null).backend).toBe('default');
    expect(planDevice('gpu', hardware, null).backend).toBe('default');
    expect(planDevice('auto', lavapipe, null)).toEqual({
      backend: null,
      reason: expect.stringContaining('only a software adapter, llvmpipe'),
    });
    expect(planDevice('gpu', lavapipe, null).backend).toBe('opengles');
    const auto = planDevice('auto', none, null);
    expect(auto.backend).toBeNull();
    expect(auto.reason).toContain("found no adapter (no adapter: Couldn't load Vulkan: libvulkan.so.1");
    expect(planDevice('gpu', none, null).backend).toBe('opengles');
  });

  it('cpu stays on the CPU; WCT_GPU_BACKEND forces its backend', () => {
    expect(planDevice('cpu', hardware, 'default').backend).toBeNull();
    expect(planDevice('auto', none, 'opengles')).toEqual({ backend: 'opengles', reason: 'WCT_GPU_BACKEND=opengles' });
    expect(planDevice('gpu', hardware, 'opengles').backend).toBe('opengles');
    expect(forcedBackend(undefined)).toBeNull();
    expect(forcedBackend('')).toBeNull();
    expect(forcedBackend('default')).toBe('default');
    expect(() => forcedBackend('vulkan')).toThrow('WCT_GPU_BACKEND: expected default or opengles, got "vulkan"');
  });

  it('diagnosticLines drops blank lines and source locations', () => {
    const err = 'Warning: eglInitialize failed\n - While trying\n    at CheckEGL (/x/UtilsEGL.cpp:89)\n\n';
    expect(diagnosticLines(err)).toEqual(['Warning: eglInitialize failed', ' - While trying']);
  });
});

describe('probeBackend (child process)', () => {
  it('opengles: the llvmpipe adapter, software, with its limits, and no error', async () => {
    const p = await probeBackend('opengles');
    expect(p.error).toBeNull();
    expect(p.adapter?.software).toBe(true);
    expect(p.adapter?.description).toMatch(/OpenGL ES/);
    expect(p.adapter?.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(p.adapter?.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
  });

  it('default: an adapter, or the reason with the diagnostics Dawn printed', async () => {
    const p = await probeBackend('default');
    if (p.adapter === null) {
      expect(p.error).toBe('no adapter');
      expect(p.diagnostics.join('\n')).toMatch(/Vulkan|vulkan/);
    } else expect(p.error).toBeNull();
  });
});

describe('selectDevice', () => {
  it('cpu: no device', async () => {
    expect(await selectDevice('cpu')).toEqual({ gpu: null, note: 'device: cpu (--device cpu)' });
  });

  it('auto: a hardware adapter or the CPU with the reason; gpu then opens a device in the same process', async () => {
    const dflt = await probeBackend('default');
    const auto = await selectDevice('auto');
    if (dflt.adapter === null || dflt.adapter.software) {
      expect(auto.gpu).toBeNull();
      expect(auto.note).toMatch(/^device: cpu \(Dawn's default backend/);
      expect(auto.note).toContain('--device gpu would use the software adapter');
    } else expect(auto.gpu?.report.software).toBe(false);
    await closeGpu();

    // the default backend probed in this process too (Dawn's instance of it kept alive meanwhile)
    const { create } = (await import('webgpu')) as typeof import('webgpu');
    const instance = create([]);
    await instance.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions);

    const sel = await selectDevice('gpu');
    const g = sel.gpu!;
    expect(g).not.toBeNull();
    if (dflt.adapter === null || dflt.adapter.software) {
      expect(g.report.backend).toBe('opengles');
      expect(g.report.software).toBe(true);
      expect(sel.note).toMatch(/^device: gpu, OpenGL.* \(software, the OpenGL ES backend; /);
    }
    // the device works: a 3x3 GEMM
    const a = up(g.ctx, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const eye = up(g.ctx, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
    const c = g.ctx.zeros(9);
    gemm(a, eye, c, gemmDims(3, 3, 3));
    expect([...(await down(c))]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);

    // opened once: the same device again, and another backend refused until closed
    expect((await selectDevice('gpu')).gpu).toBe(g);
    await expect(getGpu(g.report.backend === 'default' ? 'opengles' : 'default')).rejects.toThrow(
      /device is open on the .* backend/,
    );
    void instance;
    await closeGpu();
  });

  it('an unknown choice is an error naming the choices', async () => {
    await expect(selectDevice('tpu' as 'gpu')).rejects.toBeInstanceOf(GpuUnavailableError);
  });
});
