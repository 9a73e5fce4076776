/**
 * `wct env`: the versions, the addon's build, each Dawn backend's adapter or the reason it was refused, and what
 * `--device auto` / `--device gpu` would use. On every machine of this project OpenGL ES gives Mesa's llvmpipe:
 * it is listed as a software adapter with its limits; Dawn's diagnostics appear in the output, not on stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cliPath, type CliResult } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';

/** The CLI with WCT_GPU_BACKEND unset: the plan then follows the adapters found, not a forced backend. */
function wct(args: string[]): CliResult {
  const env = { ...process.env };
  delete env.WCT_GPU_BACKEND;
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', timeout: 120_000, cwd: repoRoot, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;

interface Probe {
  backend: string;
  adapter: { description: string; software: boolean; features: string[]; limits: Record<string, number> } | null;
  error: string | null;
  diagnostics: string[];
}

describe('wct env', () => {
  it('--json: the opengles adapter is software with its limits; every backend has an adapter or a reason', () => {
    const r = wct(['env', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const env = JSON.parse(r.stdout) as {
      package: { version: string };
      node: string;
      addon: { compiler: string; threads: number };
      webgpu: string;
      backends: Probe[];
      device: { auto: { backend: string | null; reason: string }; gpu: { backend: string | null; works: boolean } };
    };
    expect(env.package.version).toBe(version);
    expect(env.node).toBe(process.version);
    expect(env.addon.compiler).toMatch(/^(gcc|clang) /);
    expect(env.addon.threads).toBeGreaterThanOrEqual(1);
    expect(env.webgpu).toBe('0.6.2');
    expect(env.backends.map((b) => b.backend)).toEqual(['default', 'opengles']);
    for (const b of env.backends) expect(b.adapter === null).toBe(b.error !== null);

    const gles = env.backends[1].adapter!;
    expect(gles.software).toBe(true);
    expect(gles.description).toMatch(/OpenGL ES .*Mesa/);
    expect(gles.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(gles.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    expect(gles.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
    expect(gles.limits.maxComputeWorkgroupsPerDimension).toBeGreaterThanOrEqual(65535);
    expect(gles.limits.maxBufferSize).toBeGreaterThanOrEqual(gles.limits.maxStorageBufferBindingSize);

    const dflt = env.backends[0].adapter;
    const hardware = dflt !== null && !dflt.software;
    expect(env.device.auto.backend).toBe(hardware ? 'default' : null);
    expect(env.device.gpu).toMatchObject({ backend: hardware ? 'default' : 'opengles', works: true });
  });

  it('text: one block per backend, the limits in MiB, the plan for --device auto and gpu', () => {
    const r = wct(['env']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`owq-wct ${version}, node ${process.version}`);
    expect(r.stdout).toMatch(
      /^backend default \(Vulkan\/Metal\/D3D12\): (refused: .+|(hardware|software) adapter ".+")$/m,
    );
    expect(r.stdout).toMatch(/^backend opengles \(OpenGL ES: Mesa llvmpipe\): software adapter ".*OpenGL ES .*"$/m);
    expect(r.stdout).toMatch(/^ {2}shader-f16 (yes|no), subgroups (yes|no), timestamp-query (yes|no)$/m);
    expect(r.stdout).toMatch(/^ {2}limits: maxStorageBufferBindingSize \d+ MiB, maxBufferSize \d+ MiB, /m);
    expect(r.stdout).toMatch(/^--device auto: (cpu|gpu through the default backend) \(.+\)$/m);
    expect(r.stdout).toMatch(/^--device gpu: gpu through the (default|opengles) backend \(.+\)$/m);
  });

  it('--help names the command and --json', () => {
    const r = wct(['env', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('wct env');
    expect(r.stdout).toContain('--json');
  });
});
