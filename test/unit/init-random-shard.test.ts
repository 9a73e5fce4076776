/**
 * `wct init-random` sharded as save_pretrained shards (src/io/checkpoint-shards.ts): a small llama-7b-shaped model
 * written with a tiny shard size has a consistent index, every tensor readable through src/io/checkpoint.ts and
 * byte-identical to the single-file output of the same seed; shards follow the size rule; --shard-size parsing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseShardSize } from '../../src/cli/commands/init-random.js';
import { INDEX_FILE, openCheckpoint, SINGLE_FILE } from '../../src/io/checkpoint.js';
import { DTYPES } from '../../src/io/dtype.js';
import { openSafetensors, type TensorInfo } from '../../src/io/safetensors-read.js';
import { initRandom } from '../../src/models/init-random.js';

const SIZES = { layers: 2, hiddenSize: 64, intermediateSize: 96, numHeads: 4, numKvHeads: 2 };
/** Below the embedding's 32000 x 64 x 2 bytes (4 MB): that tensor gets a shard of its own. */
const SHARD_BYTES = 40_000;

let root: string;
let single: string;
let sharded: string;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-shard-'));
  single = path.join(root, 'single');
  sharded = path.join(root, 'sharded');
  initRandom({ like: 'llama-7b', out: single, seed: 5, ...SIZES });
  initRandom({ like: 'llama-7b', out: sharded, seed: 5, shardBytes: SHARD_BYTES, ...SIZES });
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

interface Index {
  metadata: { total_size: number };
  weight_map: Record<string, string>;
}

const readIndex = (): Index => JSON.parse(fs.readFileSync(path.join(sharded, INDEX_FILE), 'utf8')) as Index;

function bytesOf(info: TensorInfo): number {
  return info.shape.reduce((n, d) => n * d, DTYPES[info.dtype].bytes);
}

describe('init-random --shard-size', () => {
  it('writes shards model-0000i-of-0000n and an index whose weight_map and total_size match the shards', () => {
    expect(fs.existsSync(path.join(sharded, SINGLE_FILE))).toBe(false);
    const index = readIndex();
    const files = [...new Set(Object.values(index.weight_map))].sort();
    const n = files.length;
    expect(n).toBeGreaterThan(2);
    const pad = (i: number) => String(i).padStart(5, '0');
    expect(files).toEqual(Array.from({ length: n }, (_, i) => `model-${pad(i + 1)}-of-${pad(n)}.safetensors`));
    const onDisk = fs.readdirSync(sharded).filter((f) => f.endsWith('.safetensors'));
    expect(onDisk.sort()).toEqual(files);
    let total = 0;
    for (const file of files) {
      const shard = openSafetensors(path.join(sharded, file));
      const listed = Object.keys(index.weight_map).filter((name) => index.weight_map[name] === file);
      expect(shard.names().sort()).toEqual(listed.sort());
      for (const name of shard.names()) total += bytesOf(shard.info(name));
      shard.close();
    }
    expect(index.metadata.total_size).toBe(total);
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(index.weight_map).sort());
  });

  it('holds every tensor of the single-file output of the same seed, byte for byte, in F16', () => {
    const a = openCheckpoint(single);
    const b = openCheckpoint(sharded);
    expect(b.path.endsWith(INDEX_FILE)).toBe(true);
    expect(b.names().sort()).toEqual(a.names().sort());
    for (const name of a.names()) {
      expect(b.info(name)).toEqual(a.info(name));
      expect(b.info(name).dtype).toBe('F16');
      expect(Buffer.from(b.readRaw(name)).equals(Buffer.from(a.readRaw(name))), name).toBe(true);
    }
    a.close();
    b.close();
  });

  it('fills each shard up to the size and no further (a larger tensor alone in its shard)', () => {
    const index = readIndex();
    const sizes = new Map<string, { bytes: number; count: number }>();
    const b = openCheckpoint(sharded);
    for (const [name, file] of Object.entries(index.weight_map)) {
      const s = sizes.get(file) ?? { bytes: 0, count: 0 };
      sizes.set(file, { bytes: s.bytes + bytesOf(b.info(name)), count: s.count + 1 });
    }
    b.close();
    for (const { bytes, count } of sizes.values()) expect(bytes <= SHARD_BYTES || count === 1).toBe(true);
    const embedding = index.weight_map['model.embed_tokens.weight'];
    expect(sizes.get(embedding)).toEqual({ bytes: 32000 * 64 * 2, count: 1 });
  });

  it('writes one model.safetensors when the model fits in a shard (the default 10 GB)', () => {
    expect(fs.existsSync(path.join(single, SINGLE_FILE))).toBe(true);
    expect(fs.existsSync(path.join(single, INDEX_FILE))).toBe(false);
  });

  it('parses --shard-size as transformers does, and names the flag for anything else', () => {
    expect(parseShardSize('10GB')).toBe(10_000_000_000);
    expect(parseShardSize('500MB')).toBe(500_000_000);
    expect(parseShardSize('2GiB')).toBe(2 * 2 ** 30);
    expect(parseShardSize('1.5KiB')).toBe(1536);
    expect(parseShardSize('4096')).toBe(4096);
    for (const bad of ['', 'ten', '0', '-1GB', '3 parsecs', '1e400'])
      expect(() => parseShardSize(bad), bad).toThrow(/^--shard-size: expected a size such as 10GB/);
  });
});
