/** Writes a benchmark report as bench/results/NAME.json and NAME.md (a markdown table per section). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadNative } from '../src/native/addon.js';
import { packageRoot } from '../src/util/package-root.js';

export type Row = Record<string, string | number>;

export interface Report {
  name: string;
  machine: Record<string, string | number>;
  sections: { title: string; rows: Row[] }[];
}

/** The machine lines of a CPU report: the CPU, the pool's threads, the ISA path of the kernels, node's version. */
export function hostMachine(): Record<string, string | number> {
  const native = loadNative();
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    threads: native.threads(),
    'cpu path': native.cpuPath(),
    node: process.version,
  };
}

function table(rows: Row[]): string {
  if (rows.length === 0) return '(no rows)\n';
  const cols = Object.keys(rows[0]);
  const fmt = (v: string | number) =>
    typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v;
  return [
    `| ${cols.join(' | ')} |`,
    `|${cols.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${cols.map((c) => fmt(r[c] ?? '')).join(' | ')} |`),
  ].join('\n');
}

export function writeReport(report: Report): { json: string; md: string } {
  const dir = path.join(packageRoot(), 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const json = path.join(dir, `${report.name}.json`);
  const md = path.join(dir, `${report.name}.md`);
  fs.writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  const machine = Object.entries(report.machine)
    .map(([k, v]) => `- ${k}: ${v}`)
    .join('\n');
  const body = report.sections.map((s) => `## ${s.title}\n\n${table(s.rows)}\n`).join('\n');
  fs.writeFileSync(md, `# Benchmark: ${report.name}\n\n${machine}\n\n${body}`);
  return { json, md };
}
