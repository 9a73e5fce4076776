/**
 * The streaming bookkeeping of quantizeCheckpoint (src/models/streamed-weights.ts) on a sharded checkpoint (a
 * 4-layer random Llama split into two shards, block 1's tensors across both): while block i is quantized exactly
 * the embeddings, the final norm and block i's tensors are read (GPTQ), less the dense weight of every linear
 * quantized so far (its fake-quantized copy replaces it), and the untied lm_head only after the last block; with a
 * gradient pass (GWQ-style) every block and the lm_head are read first and each block is released once stored, so
 * block i sees blocks i..3. The packed file made from the shards equals the one made from the single-file
 * checkpoint, byte for byte.
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

/** Quantizes `dir` into `out`, recording the tensors read after each linear's quantize step, per block and linear
 * (in quantization order). */
async function residency(dir: string, out: string, section: Record<string, unknown>) {
  const seen = new Map<number, [string, string[]][]>();
  await quantizeCheckpoint(
    dir,
    out,
    quantizeOptions({ wbits: 4, calib_tokens: tokens, nsamples: 4, seqlen: 16, ...section }),
    {
      force: false,
      onResident: (block, linear, resident) => {
        if (!seen.has(block)) seen.set(block, []);
        seen.get(block)!.push([linear, resident]);
      },
    },
  );
  return seen;
}

/** Checks each step's residents: `base(block)` less the weights of the block's linears quantized so far. */
function expectShrinking(seen: Map<number, [string, string[]][]>, base: (block: number) => string[]) {
  expect([...seen.keys()]).toEqual([0, 1, 2, 3]);
  for (const [block, steps] of seen) {
    expect(steps.length, `block ${block}: one step per linear`).toBe(7);
    const replaced = new Set<string>();
    for (const [linear, resident] of steps) {
      replaced.add(`${linear}.weight`);
      const expected = base(block).filter((n) => !replaced.has(n));
      expect(resident, `block ${block} after ${linear}`).toEqual(expected);
    }
  }
}

describe('quantizeCheckpoint streams a sharded checkpoint one block at a time', () => {
  it('gptq: block i is quantized with the embeddings, the norm and block i read, each weight dropped once replaced', async () => {
    const seen = await residency(sharded, path.join(tmp, 'gptq-sharded'), { method: 'gptq' });
    const head = names.filter((n) => blockOf(n) < 0);
    expect(head.sort()).toEqual(['lm_head.weight', 'model.embed_tokens.weight', 'model.norm.weight']);
    expectShrinking(seen, (block) =>
      names.filter((n) => (blockOf(n) < 0 && n !== 'lm_head.weight') || blockOf(n) === block).sort(),
    );
    await residency(single, path.join(tmp, 'gptq-single'), { method: 'gptq' });
    expect(sha256(path.join(tmp, 'gptq-sharded/model.safetensors'))).toBe(
      sha256(path.join(tmp, 'gptq-single/model.safetensors')),
    );
  });

  it('gwq (a gradient pass over the whole model): every block and lm_head read first, each block released once stored', async () => {
    const seen = await residency(sharded, path.join(tmp, 'gwq'), { method: 'gwq', wbits: 3 });
    expectShrinking(seen, (block) => names.filter((n) => blockOf(n) < 0 || blockOf(n) >= block).sort());
  });
});
