/**
 * Writes a file so readers never see it half-written: the bytes go to `<file>.tmp-<pid>`, are fsynced,
 * and the temporary file is renamed over `file` (removed on failure).
 */
import fs from 'node:fs';
import { namingFile } from '../errors.js';

export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    namingFile(tmp, () => {
      write(fd);
      fs.fsyncSync(fd);
    });
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  namingFile(tmp, () => fs.closeSync(fd));
  fs.renameSync(tmp, file);
}
