import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const dataDir = path.resolve(repoRoot, '../shared/data');
export const tinyStoriesDir = path.join(dataDir, 'models/tinystories-656k');
export const optTinyDir = path.join(dataDir, 'models/opt-tiny-random');
