/**
 * The streaming bookkeeping of quantizeCheckpoint (src/models/streamed-weights.ts) on a sharded checkpoint (a
 * 4-layer random Llama split into two shards, block 1's tensors across both): while block i is quantized exactly
 * the embeddings, final norm and lm_head and block i's tensors are read (GPTQ); with a gradient pass (GWQ-style)
 * every block is read first and each is released once stored, so block i sees blocks i..3. The packed file made from
 * the shards equals the one made from the single-file checkpoint, byte for byte.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COPIED_FILES } from '../../src/io/checkpoint-write.js';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { quantizeCheckpoint } from '../../src/quant/quantize-checkpoint.js';
import { quantizeOptions } from '../../src/recipe/quantize-options.js';
import { wct } from '../helpers/cli.js';
import { writeRandomWindows } from '../helpers/random-windows.js';

const LAYERS = 4;
let tmp: string;
let single: string;
let sharded: string;
let tokens: string;
let names: string[];

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-streaming-'));
  single = path.join(tmp, 'single');
  const r = wct([
    'init-random',
    ...['--like', 'llama-7b', '--layers', String(LAYERS), '--hidden-size', '32', '--intermediate-size', '64'],
    ...['--num-heads', '2', '--num-kv-heads', '2', '--out', single],
  ]);
  expect(r.status, r.stderr).toBe(0);
  // two shards: everything up to block 1's attention in the first, the rest in the second
  sharded = path.join(tmp, 'sharded');
  fs.mkdirSync(sharded);
  for (const f of COPIED_FILES)
    if (fs.existsSync(path.join(single, f))) fs.copyFileSync(path.join(single, f), path.join(sharded, f));
  const src = openSafetensors(path.join(single, 'model.safetensors'));
  names = src.names();
  const first = (n: string) => /^model\.(embed_tokens|layers\.0\.|layers\.1\.self_attn)/.test(n);
  const weightMap: Record<string, string> = {};
  for (const [file, pick] of [
    ['model-00001-of-00002.safetensors', first],
    ['model-00002-of-00002.safetensors', (n: string) => !first(n)],
  ] as const) {
    const picked = names.filter(pick);
    writeSafetensors(
      path.join(sharded, file),
      picked.map((name) => ({ name, ...src.info(name), data: src.readRaw(name) })),
    );
    for (const n of picked) weightMap[n] = file;
  }
  src.close();
  fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
  tokens = writeRandomWindows(tmp, 4, 16, 32000, 7);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const blockOf = (name: string) => Number(/^model\.layers\.(\d+)\./.exec(name)?.[1] ?? -1);

/** Quantizes `dir` into `out`, recording the tensors read at every quantize step, per block. */
async function residency(dir: string, out: string, section: Record<string, unknown>) {
  const seen = new Map<number, Set<string>>();
  await quantizeCheckpoint(
    dir,
    out,
    quantizeOptions({ wbits: 4, calib_tokens: tokens, nsamples: 4, seqlen: 16, ...section }),
    {
      force: false,
      onResident: (block, resident) => {
        const key = resident.join(',');
        if (seen.has(block) && [...seen.get(block)!].join(',') !== key)
          throw new Error(`block ${block}: the resident tensors changed while it was quantized`);
        seen.set(block, new Set(resident));
      },
    },
  );
  return seen;
}

describe('quantizeCheckpoint streams a sharded checkpoint one block at a time', () => {
  it('gptq: block i is quantized with exactly the head tensors and block i read', async () => {
    const seen = await residency(sharded, path.join(tmp, 'gptq-sharded'), { method: 'gptq' });
    const head = names.filter((n) => blockOf(n) < 0);
    expect(head.sort()).toEqual(['lm_head.weight', 'model.embed_tokens.weight', 'model.norm.weight']);
    expect([...seen.keys()]).toEqual([0, 1, 2, 3]);
    for (const [block, resident] of seen) {
      const expected = names.filter((n) => blockOf(n) < 0 || blockOf(n) === block).sort();
      expect([...resident], `block ${block}`).toEqual(expected);
    }
    await residency(single, path.join(tmp, 'gptq-single'), { method: 'gptq' });
    expect(sha256(path.join(tmp, 'gptq-sharded/model.safetensors'))).toBe(
      sha256(path.join(tmp, 'gptq-single/model.safetensors')),
    );
  });

  it('gwq (a gradient pass over the whole model): every block read first, each released once stored', async () => {
    const seen = await residency(sharded, path.join(tmp, 'gwq'), { method: 'gwq', wbits: 3 });
    for (const [block, resident] of seen) {
      const expected = names.filter((n) => blockOf(n) < 0 || blockOf(n) >= block).sort();
      expect([...resident], `block ${block}`).toEqual(expected);
    }
  });
});
