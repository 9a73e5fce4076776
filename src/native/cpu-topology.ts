/**
 * The default thread count: the physical cores this process may run on. The CPUs it may use are the affinity
 * mask (`Cpus_allowed_list` of /proc/self/status, what sched_getaffinity returns, as taskset and cgroup cpusets
 * set it); two logical CPUs are one physical core when their /sys/devices/system/cpu/cpuN/topology has the same
 * (physical_package_id, core_id). Without a readable mask, Node's own count (os.availableParallelism, which
 * honours the mask too); without topology files for every allowed CPU, the number of allowed CPUs.
 *
 * `root` is the filesystem root these paths are read under ('/' for the live system; a fake tree in tests).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The CPUs of a kernel CPU list such as "0-3,8,10-11"; null when it does not parse. */
export function parseCpuList(list: string): number[] | null {
  const cpus: number[] = [];
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (m === null) return null;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return null;
    for (let c = lo; c <= hi; c++) cpus.push(c);
  }
  return cpus;
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** The logical CPUs in this process's affinity mask, or null when /proc/self/status says nothing usable. */
export function allowedCpus(root = '/'): number[] | null {
  const status = readText(path.join(root, 'proc/self/status'));
  const line = status?.split('\n').find((l) => l.startsWith('Cpus_allowed_list:'));
  if (line === undefined) return null;
  const cpus = parseCpuList(line.slice('Cpus_allowed_list:'.length));
  return cpus === null || cpus.length === 0 ? null : cpus;
}

/** Physical cores among the allowed CPUs (see the file comment for the fallbacks); at least 1. */
export function physicalCores(root = '/'): number {
  const cpus = allowedCpus(root);
  if (cpus === null) return Math.max(1, os.availableParallelism());
  const cores = new Set<string>();
  for (const cpu of cpus) {
    const dir = path.join(root, `sys/devices/system/cpu/cpu${cpu}/topology`);
    const pkg = readText(path.join(dir, 'physical_package_id'));
    const core = readText(path.join(dir, 'core_id'));
    if (pkg === null || core === null) return cpus.length;
    cores.add(`${pkg.trim()}:${core.trim()}`);
  }
  return cores.size;
}
