/** A calibration tokens file ({"windows": [[ids...]]}) of `count` windows of `length` ids below `vocab`, drawn by a
 * fixed linear congruential generator from `seed` (the same file every run). Returns its path. */
import fs from 'node:fs';
import path from 'node:path';

export function writeRandomWindows(dir: string, count: number, length: number, vocab: number, seed: number): string {
  let x = seed;
  const windows = Array.from({ length: count }, () =>
    Array.from({ length }, () => {
      x = (x * 1103515245 + 12345) % 2147483648;
      return x % vocab;
    }),
  );
  const file = path.join(dir, 'calib.json');
  fs.writeFileSync(file, JSON.stringify({ windows }));
  return file;
}
