/**
 * The default thread count counts physical cores among the CPUs of the affinity mask, read from a fake /proc and
 * /sys tree: hyperthread siblings (same package and core id) are one core, a second package's core 0 is another,
 * CPUs outside the mask do not count, and missing topology falls back to the allowed logical CPUs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allowedCpus, parseCpuList, physicalCores } from '../../src/native/cpu-topology.js';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** A fake root with the given allowed list and topology (cpu -> [package, core], or null for no files). */
function fakeRoot(allowed: string | null, topology: Record<number, [number, number] | null>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-topo-'));
  roots.push(root);
  fs.mkdirSync(path.join(root, 'proc/self'), { recursive: true });
  const status = ['Name:\tnode', ...(allowed === null ? [] : [`Cpus_allowed_list:\t${allowed}`]), 'Threads:\t7'];
  fs.writeFileSync(path.join(root, 'proc/self/status'), `${status.join('\n')}\n`);
  for (const [cpu, t] of Object.entries(topology)) {
    const dir = path.join(root, `sys/devices/system/cpu/cpu${cpu}/topology`);
    fs.mkdirSync(dir, { recursive: true });
    if (t === null) continue;
    fs.writeFileSync(path.join(dir, 'physical_package_id'), `${t[0]}\n`);
    fs.writeFileSync(path.join(dir, 'core_id'), `${t[1]}\n`);
  }
  return root;
}

describe('physical cores available to the process', () => {
  it('parses kernel CPU lists', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList('5')).toEqual([5]);
    expect(parseCpuList('3-1')).toBeNull();
    expect(parseCpuList('0-x')).toBeNull();
  });

  it('counts hyperthread siblings once and cores of two packages apart', () => {
    // cpu0/cpu4 and cpu1/cpu5 are siblings on package 0; cpu2 and cpu3 are core 0 and 1 of package 1
    const topo: Record<number, [number, number]> = {
      0: [0, 0],
      1: [0, 1],
      2: [1, 0],
      3: [1, 1],
      4: [0, 0],
      5: [0, 1],
    };
    expect(physicalCores(fakeRoot('0-5', topo))).toBe(4);
    expect(physicalCores(fakeRoot('0,4', topo))).toBe(1);
    expect(physicalCores(fakeRoot('0,2', topo))).toBe(2);
    expect(physicalCores(fakeRoot('4-5', topo))).toBe(2);
  });

  it('falls back to the allowed logical CPUs without topology, and to Node without a mask', () => {
    expect(physicalCores(fakeRoot('0-2', { 0: [0, 0], 1: [0, 0], 2: null }))).toBe(3);
    expect(allowedCpus(fakeRoot(null, {}))).toBeNull();
    expect(physicalCores(fakeRoot(null, {}))).toBe(os.availableParallelism());
    expect(allowedCpus(fakeRoot('garbage', {}))).toBeNull();
  });

  it('reads the live system', () => {
    const n = physicalCores();
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThanOrEqual(os.availableParallelism());
  });
});
