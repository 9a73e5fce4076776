/**
 * Checkpoint directories: single file, sharded index (a real checkpoint split in two shards must
 * read back identically), and the ways an index can be broken.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { openCheckpoint, openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { tinyStoriesDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-io-ckpt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

/** TinyStories split into two shards plus an index; `edit` may alter the weight_map before writing. */
function shardedCopy(edit: (weightMap: Record<string, string>) => void = () => undefined): string {
  const dir = path.join(tmp, `sharded${counter++}`);
  fs.mkdirSync(dir);
  const st = openSafetensors(path.join(tinyStoriesDir, 'model.safetensors'));
  const names = st.names();
  const weightMap: Record<string, string> = {};
  const shards = [names.slice(0, 7), names.slice(7)].map((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    part.forEach((name) => (weightMap[name] = file));
    writeSafetensors(
      path.join(dir, file),
      part.map((name) => ({ name, ...st.info(name), data: st.readRaw(name) })),
    );
    return file;
  });
  st.close();
  expect(shards).toHaveLength(2);
  edit(weightMap);
  fs.writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }),
  );
  return dir;
}

function errorOf(f: () => unknown): InputError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an InputError');
}

describe('openCheckpoint', () => {
  it('opens a directory with model.safetensors', () => {
    const ckpt = openCheckpoint(tinyStoriesDir);
    expect(ckpt.path).toBe(path.join(tinyStoriesDir, 'model.safetensors'));
    expect(ckpt.info('model.norm.weight')).toEqual({ dtype: 'F32', shape: [128] });
    ckpt.close();
  });

  it('presents a sharded checkpoint as one name -> tensor view, identical to the single file', () => {
    const dir = shardedCopy();
    const sharded = openCheckpoint(dir);
    const single = openCheckpoint(tinyStoriesDir);
    expect(sharded.path).toBe(path.join(dir, 'model.safetensors.index.json'));
    expect(new Set(sharded.names())).toEqual(new Set(single.names()));
    for (const name of single.names()) {
      expect(sharded.info(name)).toEqual(single.info(name));
      expect(sharded.readF32(name)).toEqual(single.readF32(name));
    }
    sharded.close();
    single.close();
  });

  it('accepts the index file itself', () => {
    const dir = shardedCopy();
    const ckpt = openCheckpoint(path.join(dir, 'model.safetensors.index.json'));
    expect(ckpt.has('lm_head.weight')).toBe(true);
    ckpt.close();
  });

  it('prefers model.safetensors when both are present (as transformers does)', () => {
    const dir = shardedCopy();
    fs.copyFileSync(path.join(tinyStoriesDir, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    const ckpt = openCheckpoint(dir);
    expect(ckpt.path).toBe(path.join(dir, 'model.safetensors'));
    ckpt.close();
  });

  it('a missing shard file names the index and the shard', () => {
    const dir = shardedCopy((m) => {
      m['model.norm.weight'] = 'model-00003-of-00002.safetensors';
    });
    expect(errorOf(() => openCheckpoint(dir)).message).toBe(
      `${path.join(dir, 'model.safetensors.index.json')}: weight_map: shard file model-00003-of-00002.safetensors not found`,
    );
  });

  it('a tensor listed in the index but absent from its shard', () => {
    const dir = shardedCopy((m) => {
      m['model.layers.9.mlp.up_proj.weight'] = 'model-00001-of-00002.safetensors';
    });
    expect(errorOf(() => openCheckpoint(dir)).message).toMatch(
      /index\.json: model\.layers\.9\.mlp\.up_proj\.weight: listed in weight_map for model-00001-of-00002\.safetensors but absent from that shard$/,
    );
  });

  it('an index without a weight_map object', () => {
    const dir = shardedCopy();
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": [1]}');
    expect(errorOf(() => openCheckpoint(dir)).message).toMatch(/index\.json: weight_map: missing or not an object/);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    expect(errorOf(() => openCheckpoint(dir)).message).toMatch(/index\.json: file: not valid JSON/);
  });

  it('a directory with neither file', () => {
    expect(errorOf(() => openCheckpoint(tmp)).message).toBe(
      `${tmp}: model.safetensors: not found (nor model.safetensors.index.json); expected a Hugging Face checkpoint directory`,
    );
  });
});
