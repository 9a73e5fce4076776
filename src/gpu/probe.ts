/**
 * Probing one of Dawn's backends in a child process: which adapter it offers (description, software or
 * hardware, features, limits), or why it was refused, with Dawn's own diagnostics.
 *
 * Why a child process: Dawn writes its diagnostics for a refused backend (`Couldn't load Vulkan: libvulkan.so.1
 * ...`, `eglInitialize failed ...`, lavapipe's `shaderUniform*ArrayDynamicIndexing required`) straight to file
 * descriptor 2 from native code, which Node cannot redirect within a process. A child's stderr is captured
 * instead: `wct env` shows it as the reason a backend was refused, and `--device auto` probes Dawn's default
 * backend without printing it to the user's terminal. A child also leaves the parent free to open any backend
 * afterwards (the process's device is opened once: src/gpu/device.ts).
 *
 * The child asks for a compatibility adapter (the only kind the GLES backend offers; a core adapter is
 * returned where one exists, as device.ts does) and a device with the adapter's compute limits, destroyed at
 * once: an adapter whose device cannot be made is reported as refused.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/** Which of Dawn's backends to try: `opengles` (llvmpipe, CI), or the platform's default (Vulkan/Metal/D3D12). */
export type GpuBackend = 'default' | 'opengles';

export const GPU_BACKENDS: readonly GpuBackend[] = ['default', 'opengles'];

/** An adapter as a probe or an opened device reports it. */
export interface AdapterSummary {
  /** Adapter description as Dawn gives it, e.g. `OpenGL version OpenGL ES 3.2 Mesa 22.3.6`. */
  description: string;
  vendor: string;
  architecture: string;
  device: string;
  /** llvmpipe, lavapipe, SwiftShader, WARP, or Dawn's fallback adapter: a CPU renderer, for correctness only. */
  software: boolean;
  features: string[];
  /** Limits (numbers only): the adapter's from a probe, the device's from an opened device. */
  limits: Record<string, number>;
}

export interface BackendProbe {
  backend: GpuBackend;
  /** The adapter found, or null when the backend was refused. */
  adapter: AdapterSummary | null;
  /** Why the backend was refused (null when an adapter was found). */
  error: string | null;
  /** What Dawn (and EGL, Vulkan's loader) wrote on stderr during the probe, line by line. */
  diagnostics: string[];
  /** Milliseconds of the probe, child process start included. */
  ms: number;
}

/** The limits `wct env` shows and the kernels size their work from. */
export const KEY_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/** The compute limits a device asks of its adapter (the kernels size workgroups from them). */
export const COMPUTE_LIMITS = [
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
] as const;

/** Adapter info of a CPU renderer (Dawn's `isFallbackAdapter` where it sets it, else the known names). */
export function isSoftware(info: {
  description: string;
  device: string;
  vendor: string;
  architecture: string;
  isFallbackAdapter?: boolean;
}): boolean {
  if (info.isFallbackAdapter === true) return true;
  const words = `${info.description} ${info.device} ${info.vendor} ${info.architecture}`.toLowerCase();
  return /llvmpipe|lavapipe|softpipe|swiftshader|warp|microsoft basic render/.test(words);
}

/** What the child prints: the adapter's fields as read one by one (they are getters), or the error. */
interface ChildResult {
  info?: { description: string; vendor: string; architecture: string; device: string; isFallbackAdapter?: boolean };
  features?: string[];
  limits?: Record<string, number>;
  error?: string;
}

// The child's program (an ES module given to `node -e`): argv = [url of the webgpu package, backend, limits].
const CHILD = `
const [url, backend, wanted] = process.argv.slice(1);
process.env.EGL_PLATFORM ??= 'surfaceless';
const done = (r) => process.stdout.write(JSON.stringify(r) + '\\n', () => process.exit(0));
try {
  const { create } = await import(url);
  const gpu = create(backend === 'opengles' ? ['backend=opengles'] : []);
  const adapter = await gpu.requestAdapter({ featureLevel: 'compatibility' });
  if (adapter === null) done({ error: 'no adapter' });
  else {
    const i = adapter.info;
    const info = { description: i.description, vendor: i.vendor, architecture: i.architecture, device: i.device,
      isFallbackAdapter: i.isFallbackAdapter };
    const limits = {};
    for (const k in adapter.limits) if (typeof adapter.limits[k] === 'number') limits[k] = adapter.limits[k];
    const requiredLimits = {};
    for (const k of wanted.split(',')) requiredLimits[k] = adapter.limits[k];
    const features = [...adapter.features].sort();
    try {
      const device = await adapter.requestDevice({ requiredLimits });
      device.destroy();
      done({ info, features, limits });
    } catch (e) {
      done({ info, features, limits, error: 'the adapter refused a device: ' + (e?.message ?? String(e)) });
    }
  }
} catch (e) {
  done({ error: String(e?.message ?? e) });
}
`;

/** file: URL of the `webgpu` package's entry (the child imports it by URL, from any working directory). */
function webgpuUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
}

/** Dawn's stderr as lines: blank lines and the trailing source locations (`    at CheckEGL (...)`) dropped. */
export function diagnosticLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '' && !/^\s+at .*\(.*:\d+\)$/.test(l));
}

/** Probes `backend` in a child process (a few hundred ms); never throws: a failure is the probe's `error`. */
export function probeBackend(backend: GpuBackend, timeoutMs = 60_000): Promise<BackendProbe> {
  const t0 = performance.now();
  const env = { ...process.env, EGL_PLATFORM: process.env.EGL_PLATFORM ?? 'surfaceless' };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', CHILD, webgpuUrl(), backend, COMPUTE_LIMITS.join(',')],
      { env, timeout: timeoutMs, maxBuffer: 16 * 2 ** 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const diagnostics = diagnosticLines(stderr);
        const ms = performance.now() - t0;
        const line = stdout.trim().split('\n').pop() ?? '';
        let r: ChildResult;
        try {
          r = JSON.parse(line) as ChildResult;
        } catch {
          const how = err === null ? 'printed no result' : `failed (${err.killed ? 'timed out' : err.message})`;
          r = { error: `the probe process ${how}` };
        }
        const adapter: AdapterSummary | null =
          r.info === undefined
            ? null
            : {
                description: r.info.description,
                vendor: r.info.vendor,
                architecture: r.info.architecture,
                device: r.info.device,
                software: isSoftware(r.info),
                features: r.features ?? [],
                limits: r.limits ?? {},
              };
        const refused = r.error !== undefined;
        resolve({
          backend,
          adapter: refused ? null : adapter,
          error: refused ? (adapter === null ? r.error! : `${adapter.description}: ${r.error}`) : null,
          diagnostics,
          ms,
        });
      },
    );
  });
}
