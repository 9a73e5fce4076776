/**
 * `wct env`: what this installation runs on. The package and node versions, the native addon's build and
 * threads, and for each of Dawn's backends (default: Vulkan/Metal/D3D12; opengles: Mesa's llvmpipe) the adapter
 * it offers (software or hardware, features, the limits the kernels depend on) or why it was refused, with
 * Dawn's own diagnostics; then the device `--device auto` and `--device gpu` would use. Each backend is probed in
 * a child process (src/gpu/probe.ts), so Dawn's stderr is shown here as the reason, not as this command's error.
 * `--json` prints the same as one JSON object.
 */
import { createRequire } from 'node:module';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { BACKEND_ENV, type DevicePlan, forcedBackend, planDevice } from '../../gpu/device.js';
import { type BackendProbe, GPU_BACKENDS, KEY_LIMITS, probeBackend } from '../../gpu/probe.js';
import { loadNative } from '../../native/addon.js';
import { packageInfo } from '../../util/package-root.js';
import { runHandler } from '../run.js';

interface EnvArgs {
  json: boolean;
}

/** Features the kernels use where the adapter has them. */
const KEY_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

interface EnvReport {
  package: { name: string; version: string };
  node: string;
  addon: ReturnType<ReturnType<typeof loadNative>['buildInfo']> & { cpuPath: string; threads: number };
  webgpu: string;
  environment: Record<string, string | null>;
  backends: BackendProbe[];
  /** Settings that the GPU commands would refuse (a bad WCT_GPU_BACKEND). */
  problems: string[];
  /** What `--device auto` and `--device gpu` would open. */
  device: { auto: DevicePlan; gpu: DevicePlan & { works: boolean } };
}

function webgpuVersion(): string {
  const req = createRequire(import.meta.url);
  return (req(req.resolve('webgpu/package.json')) as { version: string }).version;
}

async function gather(): Promise<EnvReport> {
  const native = loadNative();
  const backends = await Promise.all(GPU_BACKENDS.map((b) => probeBackend(b)));
  let forced: ReturnType<typeof forcedBackend> = null;
  const problems: string[] = [];
  try {
    forced = forcedBackend();
  } catch (e) {
    problems.push(`${(e as Error).message} (ignored here; the GPU commands refuse it)`);
  }
  const byName = (b: string) => backends.find((p) => p.backend === b)!;
  const gpu = planDevice('gpu', byName('default'), forced);
  return {
    package: packageInfo(),
    node: process.version,
    addon: { ...native.buildInfo(), cpuPath: native.cpuPath(), threads: native.threads() },
    webgpu: webgpuVersion(),
    environment: {
      [BACKEND_ENV]: process.env[BACKEND_ENV] ?? null,
      EGL_PLATFORM: process.env.EGL_PLATFORM ?? null,
    },
    backends,
    problems,
    device: {
      auto: planDevice('auto', byName('default'), forced),
      gpu: { ...gpu, works: gpu.backend !== null && byName(gpu.backend).adapter !== null },
    },
  };
}

function mib(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(0)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`;
}

function limitText(name: string, v: number | undefined): string {
  if (v === undefined) return `${name} ?`;
  return /Size$/.test(name) ? `${name} ${mib(v)}` : `${name} ${v}`;
}

function backendText(p: BackendProbe): string[] {
  const head = `backend ${p.backend}${p.backend === 'default' ? ' (Vulkan/Metal/D3D12)' : ' (OpenGL ES: Mesa llvmpipe)'}`;
  const lines: string[] = [];
  if (p.adapter === null) {
    lines.push(`${head}: refused: ${p.error}`);
  } else {
    const a = p.adapter;
    lines.push(`${head}: ${a.software ? 'software' : 'hardware'} adapter ${JSON.stringify(a.description)}`);
    lines.push(`  vendor ${a.vendor || '-'}, architecture ${a.architecture || '-'}, device ${a.device || '-'}`);
    lines.push(`  ${KEY_FEATURES.map((f) => `${f} ${a.features.includes(f) ? 'yes' : 'no'}`).join(', ')}`);
    lines.push(`  limits: ${KEY_LIMITS.map((k) => limitText(k, a.limits[k])).join(', ')}`);
    lines.push(`  features: ${a.features.join(' ') || 'none'}`);
  }
  if (p.diagnostics.length > 0) {
    lines.push("  Dawn's diagnostics (stderr of the probe):");
    for (const d of p.diagnostics) lines.push(`    ${d}`);
  }
  return lines;
}

function planText(choice: string, plan: DevicePlan, works = true): string {
  const where = plan.backend === null ? 'cpu' : `gpu through the ${plan.backend} backend`;
  return `--device ${choice}: ${where} (${plan.reason})${works ? '' : ': that backend was refused, see above'}`;
}

function text(r: EnvReport): string {
  const a = r.addon;
  return [
    `${r.package.name} ${r.package.version}, node ${r.node}`,
    `addon: ${a.compiler}; ${a.openblas}; oneDNN ${a.onednn}; OpenMP ${a.openmp}`,
    `cpu: ${a.cpuPath} kernels (features: ${a.cpuFeatures || 'none of avx2/avx512'}); threads ${a.threads}`,
    `webgpu ${r.webgpu} (Dawn); ${Object.entries(r.environment)
      .map(([k, v]) => `${k}=${v ?? '(unset)'}`)
      .join(', ')}`,
    ...r.problems.map((p) => `problem: ${p}`),
    ...r.backends.flatMap(backendText),
    planText('auto', r.device.auto),
    planText('gpu', r.device.gpu, r.device.gpu.works),
  ].join('\n');
}

export const envCommand: CommandModule<object, EnvArgs> = {
  command: 'env',
  describe: "Show the versions, the native build, and the GPU adapters Dawn's backends offer (or why not)",
  builder: (y: Argv) =>
    y.option('json', {
      type: 'boolean',
      default: false,
      describe: 'Print one JSON object instead of text',
    }) as unknown as Argv<EnvArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<EnvArgs>) => {
    const r = await gather();
    process.stdout.write(args.json ? `${JSON.stringify(r, null, 2)}\n` : `${text(r)}\n`);
  }),
};
