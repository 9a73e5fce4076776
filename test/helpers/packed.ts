/**
 * Small packed checkpoints for loader tests: TinyStories-656K quantized with OWQ at 4 bits (weak columns in
 * every linear), from 4 reference calibration windows of 64 tokens; a few seconds.
 */
import path from 'node:path';
import { quantizeCheckpoint } from '../../src/quant/quantize-checkpoint.js';
import { quantizeOptions } from '../../src/recipe/quantize-options.js';
import { dataDir, tinyStoriesDir } from './paths.js';

const CALIB_TOKENS = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');

/** Writes the packed checkpoint into `outDir` (which must not exist) and returns it. */
export async function packedTinyStories(outDir: string, groupSize = 0): Promise<string> {
  await quantizeCheckpoint(
    tinyStoriesDir,
    outDir,
    quantizeOptions({
      method: 'owq',
      wbits: 4,
      target_bit: 4.1,
      group_size: groupSize,
      calib_tokens: CALIB_TOKENS,
      nsamples: 4,
      seqlen: 64,
    }),
    { force: false },
  );
  return outDir;
}
