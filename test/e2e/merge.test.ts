/**
 * LoRA adapters through the CLI: `wct merge` writes a Hugging Face checkpoint (every tensor in the
 * source's dtype, config and tokenizer copied) whose logits, perplexity and greedy text equal the base
 * with `--adapter` loaded; `--adapter` over a packed model (QLoRA); and the refusals, each one line and
 * exit 1: a packed --model, an adapter directory with a missing file or a shape mismatch, an existing --out.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, writeAdapter } from '../../src/io/peft-adapter.js';
import { MARKER_FILE } from '../../src/io/output-dir.js';
import { resolveTensorName } from '../../src/models/checkpoint-tensors.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { loadModel } from '../../src/models/load.js';
import { applyLora, loadAdapter, type LoraConfig } from '../../src/models/lora.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const CFG: LoraConfig = { rank: 64, alpha: 16, dropout: 0.1, targets: 'all' };
const IDS = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12, 400, 33]);

let tmp: string;
let adapter: string;
let text: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-merge-'));
  adapter = path.join(tmp, 'adapter');
  const model = loadModel(tinyStoriesDir);
  const layers = applyLora(model, CFG, 0);
  const rng = new Rng(7);
  for (const l of layers.values()) for (let i = 0; i < l.b.size; i++) l.b.data[i] = (rng.next() * 2 - 1) * 0.05;
  writeAdapter(adapter, layers, CFG, tinyStoriesDir);
  text = path.join(tmp, 'slice.txt');
  fs.writeFileSync(
    text,
    fs.readFileSync(path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt'), 'utf8').slice(0, 4000),
  );
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function json(r: ReturnType<typeof wct>) {
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('wct merge', () => {
  it('writes a full checkpoint in the source dtypes whose logits equal base + adapter', () => {
    const out = path.join(tmp, 'merged');
    const r = wct(['merge', '--model', tinyStoriesDir, '--adapter', adapter, '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*merged: 14 linears merged \(r 64, alpha 16\)/);
    for (const f of fs.readdirSync(tinyStoriesDir)) {
      if (f === 'model.safetensors') continue;
      expect(fs.readFileSync(path.join(out, f), 'utf8'), f).toBe(fs.readFileSync(path.join(tinyStoriesDir, f), 'utf8'));
    }
    // the source's files, and the marker of a directory this tool wrote
    expect(fs.readdirSync(out).sort()).toEqual([MARKER_FILE, ...fs.readdirSync(tinyStoriesDir)].sort());
    expect(JSON.parse(fs.readFileSync(path.join(out, MARKER_FILE), 'utf8')).command).toBe('wct merge');
    const src = openSafetensors(path.join(tinyStoriesDir, 'model.safetensors'));
    const dst = openSafetensors(path.join(out, 'model.safetensors'));
    try {
      // canonical names (TinyStories stores its tied embedding as lm_head.weight only), one per source tensor
      const available = new Set(src.names());
      expect(
        dst
          .names()
          .map((n) => resolveTensorName(available, n))
          .sort(),
      ).toEqual(src.names().sort());
      for (const name of dst.names()) {
        const stored = resolveTensorName(available, name)!;
        expect(dst.info(name), name).toEqual(src.info(stored));
        const same = Buffer.compare(Buffer.from(dst.readRaw(name)), Buffer.from(src.readRaw(stored))) === 0;
        // the adapted weights changed; everything else is byte-identical
        expect(same, name).toBe(!/\.(self_attn|mlp)\.\w+_proj\.weight$/.test(name));
      }
    } finally {
      src.close();
      dst.close();
    }
    const adapted = loadModel(tinyStoriesDir);
    loadAdapter(adapted, adapter);
    const want = adapted.forward(IDS, { batch: 2 }).data;
    const got = loadModel(out).forward(IDS, { batch: 2 }).data;
    // fp32 rounding differs between the two computations; 1e-5 of the logits' scale (~16)
    let scale = 1;
    for (const v of want) scale = Math.max(scale, Math.abs(v));
    expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(1e-5 * scale);
  });

  it('`wct eval --adapter` / `wct generate --adapter` on the base match the merged model', () => {
    const out = path.join(tmp, 'merged');
    const evalArgs = ['--data', text, '--seqlen', '128', '--json'];
    const withAdapter = json(wct(['eval', '--model', tinyStoriesDir, '--adapter', adapter, ...evalArgs]));
    const merged = json(wct(['eval', '--model', out, ...evalArgs]));
    const base = json(wct(['eval', '--model', tinyStoriesDir, ...evalArgs]));
    expect(Math.abs(withAdapter.ppl - merged.ppl) / merged.ppl).toBeLessThan(1e-5);
    expect(Math.abs(withAdapter.ppl - base.ppl) / base.ppl).toBeGreaterThan(1e-4);
    const genArgs = ['--prompt', 'Once upon a time', '--max-new-tokens', '12', '--json'];
    const g1 = json(wct(['generate', '--model', tinyStoriesDir, '--adapter', adapter, ...genArgs]));
    const g2 = json(wct(['generate', '--model', out, ...genArgs]));
    expect(g1.ids).toHaveLength(12);
    expect(g1.ids).toEqual(g2.ids);
  });

  it('keeps a 16-bit source 16-bit', () => {
    const f16 = path.join(tmp, 'f16');
    const out = path.join(tmp, 'f16-merged');
    expect(wct(['init-random', '--like', 'tinystories-656k', '--out', f16, '--dtype', 'F16']).status).toBe(0);
    expect(wct(['merge', '--model', f16, '--adapter', adapter, '--out', out]).status).toBe(0);
    const st = openSafetensors(path.join(out, 'model.safetensors'));
    try {
      expect(new Set(st.names().map((n) => st.info(n).dtype))).toEqual(new Set(['F16']));
    } finally {
      st.close();
    }
  });

  it('an existing --out needs --force', () => {
    const out = path.join(tmp, 'merged');
    expect(expectOneLineError(wct(['merge', '--model', tinyStoriesDir, '--adapter', adapter, '--out', out]))).toMatch(
      /--out: .* exists \(pass --force/,
    );
    expect(wct(['merge', '--model', tinyStoriesDir, '--adapter', adapter, '--out', out, '--force']).status).toBe(0);
  });
});

describe('adapters over a packed model (QLoRA)', () => {
  let packed: string;
  beforeAll(() => {
    packed = path.join(tmp, 'rtn4');
    json(wct(['quantize', '--model', tinyStoriesDir, '--method', 'rtn', '--wbits', '4', '--out', packed, '--json']));
  });

  it('`wct eval --adapter` runs over the packed base', () => {
    const e = json(wct(['eval', '--model', packed, '--adapter', adapter, '--data', text, '--seqlen', '128', '--json']));
    expect(e.ppl).toBeGreaterThan(1);
  });

  it('`wct merge` refuses a packed --model in one line, writing nothing', () => {
    const out = path.join(tmp, 'never');
    const line = expectOneLineError(wct(['merge', '--model', packed, '--adapter', adapter, '--out', out]));
    expect(line).toMatch(
      /--model: .*rtn4 is a packed checkpoint: merging LoRA into packed low-bit weights would requantize them .*merge into the full-precision base and quantize afterwards/,
    );
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('bad adapter directories are one clear line', () => {
  function brokenAdapter(name: string, edit: (dir: string) => void): string {
    const dir = path.join(tmp, name);
    fs.cpSync(adapter, dir, { recursive: true });
    edit(dir);
    return dir;
  }

  it('a missing adapter_model.safetensors', () => {
    const dir = brokenAdapter('no-weights', (d) => fs.rmSync(path.join(d, ADAPTER_WEIGHTS_FILE)));
    const line = expectOneLineError(
      wct(['merge', '--model', tinyStoriesDir, '--adapter', dir, '--out', path.join(tmp, 'x1')]),
    );
    expect(line).toBe(`error: ${path.join(dir, ADAPTER_WEIGHTS_FILE)}: file: not found`);
    expect(expectOneLineError(wct(['eval', '--model', tinyStoriesDir, '--adapter', dir, '--data', text]))).toBe(line);
  });

  it('a missing adapter_config.json', () => {
    const dir = brokenAdapter('no-config', (d) => fs.rmSync(path.join(d, ADAPTER_CONFIG_FILE)));
    const line = expectOneLineError(
      wct(['generate', '--model', tinyStoriesDir, '--adapter', dir, '--max-new-tokens', '2']),
    );
    expect(line).toBe(`error: ${path.join(dir, ADAPTER_CONFIG_FILE)}: file: not found`);
  });

  it('a shape that does not match the model', () => {
    const dir = path.join(tmp, 'wrong-shape');
    const t = (shape: number[]) => new Tensor(new Float32Array(shape[0] * shape[1]).fill(0.01), shape);
    writeAdapter(
      dir,
      new Map([['model.layers.1.mlp.down_proj', { a: t([8, 128]), b: t([128, 8]) }]]),
      { rank: 8, alpha: 16, dropout: 0 },
      'x',
    );
    const line = expectOneLineError(
      wct(['merge', '--model', tinyStoriesDir, '--adapter', dir, '--out', path.join(tmp, 'x2')]),
    );
    expect(line).toBe(
      `error: ${path.join(dir, ADAPTER_WEIGHTS_FILE)}: base_model.model.model.layers.1.mlp.down_proj.lora_A.weight: ` +
        'shape [8,128] does not match model.layers.1.mlp.down_proj (expected [8, 384])',
    );
    expect(fs.existsSync(path.join(tmp, 'x2'))).toBe(false);
  });
});
