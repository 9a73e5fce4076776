/** The directory holding the project's package.json, found from this module (works from src/ and dist/), and its fields. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | null = null;

export function packageRoot(): string {
  if (cached !== null) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the package root (no package.json above this module)');
    dir = parent;
  }
  cached = dir;
  return dir;
}

/** The project's package.json name and version. */
export function packageInfo(): { name: string; version: string } {
  return JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
}
