/**
 * Bad checkpoints reach the user as one line naming the file and the fault (exit 1), never a stack
 * trace or a hang. Each case is a copy of TinyStories-656K with one thing broken.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f32ToF16Bits } from '../../src/io/dtype.js';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import type { PackedOutliers } from '../../src/native/packed.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { addOutliers, packedTinyStories } from '../helpers/packed.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function brokenCopy(from = tinyStoriesDir): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-bad-'));
  dirs.push(dir);
  for (const f of fs.readdirSync(from)) fs.copyFileSync(path.join(from, f), path.join(dir, f));
  return dir;
}

type Header = Record<
  string,
  { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>
>;

/** Rewrites the JSON header of a safetensors file, keeping its data section as it is. */
function rewriteHeader(file: string, mutate: (h: Header) => void): void {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Header;
  mutate(header);
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(text), buf.subarray(8 + n)]));
}

/** Rewrites a safetensors file with the tensors `keep` chooses (their data as stored). */
function rewriteTensors(file: string, keep: (names: string[]) => string[]): void {
  const st = openSafetensors(file);
  const tensors = keep(st.names()).map((name) => ({ name, ...st.info(name), data: st.readRaw(name) }));
  st.close();
  writeSafetensors(file, tensors, { format: 'pt' });
}

/** How poke writes one element of each dtype it knows. */
const POKE: Record<string, { bytes: number; write: (buf: Buffer, value: number, at: number) => void }> = {
  F32: { bytes: 4, write: (buf, value, at) => buf.writeFloatLE(value, at) },
  I32: { bytes: 4, write: (buf, value, at) => buf.writeInt32LE(value, at) },
  F16: { bytes: 2, write: (buf, value, at) => buf.writeUInt16LE(f32ToF16Bits(value), at) },
};

/** Overwrites element `index` of the tensor `name` (F32, I32 or F16, as its header says) with `value`, in place. */
function poke(file: string, name: string, index: number, value: number): void {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Header;
  const { dtype, data_offsets } = entry(header, name);
  const { bytes, write } = POKE[dtype];
  write(buf, value, 8 + n + data_offsets[0] + bytes * index);
  fs.writeFileSync(file, buf);
}

/** Replaces `file` by a FIFO (nothing ever writes to it: a read of it blocks forever). */
function fifoInPlaceOf(file: string): void {
  fs.rmSync(file, { force: true });
  execFileSync('mkfifo', [file]);
}

function entry(h: Header, name: string) {
  return h[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
}

function evalError(dir: string): string {
  return expectOneLineError(wct(['eval', '--model', dir, '--data', 'wikitext2'], 60_000));
}

describe('bad input is one clear line', () => {
  it('truncated safetensors', () => {
    const dir = brokenCopy();
    const file = path.join(dir, 'model.safetensors');
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    expect(evalError(dir)).toMatch(/model\.safetensors.*(truncat|outside|beyond|short)/i);
  });

  it('header offsets outside the file', () => {
    const dir = brokenCopy();
    rewriteHeader(path.join(dir, 'model.safetensors'), (h) => {
      const e = entry(h, 'model.norm.weight');
      e.data_offsets = [e.data_offsets[0] + 1e9, e.data_offsets[1] + 1e9];
    });
    expect(evalError(dir)).toMatch(/model\.safetensors.*model\.norm\.weight/);
  });

  it('overlapping tensors', () => {
    const dir = brokenCopy();
    rewriteHeader(path.join(dir, 'model.safetensors'), (h) => {
      const a = entry(h, 'model.layers.0.input_layernorm.weight');
      const b = entry(h, 'model.layers.0.post_attention_layernorm.weight');
      b.data_offsets = [...a.data_offsets];
    });
    expect(evalError(dir)).toMatch(/model\.safetensors.*overlap/i);
  });

  it('unknown dtype', () => {
    const dir = brokenCopy();
    rewriteHeader(path.join(dir, 'model.safetensors'), (h) => {
      entry(h, 'model.norm.weight').dtype = 'Q4_K';
    });
    expect(evalError(dir)).toMatch(/model\.safetensors.*model\.norm\.weight.*Q4_K/);
  });

  it('a tensor missing', () => {
    const dir = brokenCopy();
    rewriteTensors(path.join(dir, 'model.safetensors'), (names) =>
      names.filter((n) => n !== 'model.layers.1.mlp.up_proj.weight'),
    );
    expect(evalError(dir)).toMatch(
      /model\.layers\.1\.mlp\.up_proj\.weight.*missing|missing.*model\.layers\.1\.mlp\.up_proj\.weight/i,
    );
  });

  it('a tensor of the wrong shape for the config', () => {
    const dir = brokenCopy();
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 256 }));
    expect(evalError(dir)).toMatch(/model\.safetensors.*mlp\.(gate|up|down)_proj\.weight.*shape/);
  });

  it('an unsupported architecture', () => {
    const dir = brokenCopy();
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({ ...cfg, model_type: 'gpt_neox', architectures: ['GPTNeoXForCausalLM'] }),
    );
    expect(evalError(dir)).toMatch(/config\.json.*gpt_neox/);
  });

  it("another tool's quantized checkpoint (config.json quantization_config quant_method gptq) is refused", () => {
    const dir = brokenCopy();
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({ ...cfg, quantization_config: { quant_method: 'gptq', bits: 4, group_size: 128 } }),
    );
    expect(evalError(dir)).toBe(
      `error: ${path.join(dir, 'config.json')}: quantization_config.quant_method: "gptq" is a quantization this project does not read (only full-precision checkpoints and its own "wct-packed" ones; use the full-precision model)`,
    );
  });

  it('an unreadable tokenizer', () => {
    const dir = brokenCopy();
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    expect(evalError(dir)).toMatch(/tokenizer\.json/);
  });

  it('num_hidden_layers 1e9 fails at once naming config.json, the field and the range', () => {
    const dir = brokenCopy();
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 1e9 }));
    const started = performance.now();
    expect(evalError(dir)).toBe(
      `error: ${path.join(dir, 'config.json')}: num_hidden_layers: expected an integer in [1, 1024], got 1000000000`,
    );
    expect(performance.now() - started).toBeLessThan(20_000);
  });

  it.each([
    [{ rms_norm_eps: -1e-6 }, /config\.json: rms_norm_eps: expected a finite number > 0, got -0\.000001$/],
    [{ rope_theta: 0 }, /config\.json: rope_theta: expected a finite number >= 1, got 0$/],
    [{ num_attention_heads: 3 }, /config\.json: num_attention_heads: 3 does not divide hidden_size 128$/],
  ])('config.json %j', (change, message) => {
    const dir = brokenCopy();
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, ...change }));
    expect(evalError(dir)).toMatch(message);
  });

  it('a malformed tokenizer.json post_processor names the file and field (no library stack)', () => {
    const dir = brokenCopy();
    const tok = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    fs.writeFileSync(
      path.join(dir, 'tokenizer.json'),
      JSON.stringify({ ...tok, post_processor: { type: 'RobertaProcessing' } }),
    );
    const r = wct(['generate', '--model', dir, '--prompt', 'Once', '--max-new-tokens', '2'], 60_000);
    expect(expectOneLineError(r)).toBe(
      `error: ${path.join(dir, 'tokenizer.json')}: post_processor.cls: expected [token, id], got nothing`,
    );
  });

  it('a header-length field one byte short (the last padding space becomes data)', () => {
    const dir = brokenCopy();
    const file = path.join(dir, 'model.safetensors');
    const buf = fs.readFileSync(file);
    buf.writeBigUInt64LE(buf.readBigUInt64LE(0) - 1n);
    fs.writeFileSync(file, buf);
    expect(evalError(dir)).toMatch(
      /model\.safetensors: header: the tensors end at byte \d+ of the \d+-byte data section/,
    );
  });

  it('a float offset in the header', () => {
    const dir = brokenCopy();
    const file = path.join(dir, 'model.safetensors');
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    const json = buf.subarray(8, 8 + n).toString('utf8');
    const edited = json.replace(/"data_offsets":\[(\d+),/, '"data_offsets":[$1.0,').slice(0, n);
    fs.writeFileSync(
      file,
      Buffer.concat([buf.subarray(0, 8), Buffer.from(edited.trimEnd().padEnd(n)), buf.subarray(8 + n)]),
    );
    expect(evalError(dir)).toMatch(
      /model\.safetensors: tensor .*: data_offsets\[0\]: \d+\.0 is not written as a non-negative integer/,
    );
  });

  it('a NaN or an infinity in a weight', () => {
    for (const value of [NaN, -Infinity]) {
      const dir = brokenCopy();
      poke(path.join(dir, 'model.safetensors'), 'model.norm.weight', 3, value);
      expect(evalError(dir)).toMatch(
        new RegExp(
          `model\\.safetensors: tensor model\\.norm\\.weight: element 3 is ${value} \\(stored values must be finite\\)`,
        ),
      );
    }
  });

  it('a config.json with fewer layers than the checkpoint', () => {
    const dir = brokenCopy();
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 1 }));
    expect(evalError(dir)).toMatch(
      /model\.safetensors: tensors: 9 tensor\(s\) the model does not use: model\.layers\.1\..* and 4 more \(the checkpoint has layers 0\.\.1, config\.json num_hidden_layers is 1\)/,
    );
  });

  it('a tensor the model does not use', () => {
    const dir = brokenCopy();
    const file = path.join(dir, 'model.safetensors');
    const st = openSafetensors(file);
    const tensors = st.names().map((name) => ({ name, ...st.info(name), data: st.readRaw(name) }));
    st.close();
    tensors.push({ name: 'model.extra.weight', dtype: 'F32', shape: [1], data: new Uint8Array(4) });
    writeSafetensors(file, tensors, { format: 'pt' });
    expect(evalError(dir)).toBe(`error: ${file}: tensors: 1 tensor(s) the model does not use: model.extra.weight`);
  });

  it('a FIFO in place of model.safetensors, config.json, tokenizer.json or the --data file fails at once', () => {
    for (const name of ['model.safetensors', 'config.json', 'tokenizer.json']) {
      const dir = brokenCopy();
      fifoInPlaceOf(path.join(dir, name));
      expect(evalError(dir)).toMatch(new RegExp(`${name.replace('.', '\\.')}: not a regular file \\(a FIFO\\)`));
    }
    const dir = brokenCopy();
    const data = path.join(dir, 'data.txt');
    fifoInPlaceOf(data);
    expect(expectOneLineError(wct(['eval', '--model', dir, '--data', data], 60_000))).toMatch(
      /data\.txt: not a regular file \(a FIFO\)/,
    );
  });

  it('a model directory that does not exist', () => {
    expect(evalError('/nonexistent/model')).toMatch(/nonexistent/);
  });
});

/**
 * A packed OWQ TinyStories checkpoint (weak columns in every linear) whose q_proj has CSR outliers (addOutliers:
 * a few per row, ascending, never a weak column), then copies of it with one outlier tensor broken in place.
 */
describe('bad packed outliers are one clear line', () => {
  const LINEAR = 'model.layers.0.self_attn.q_proj';
  const COL_IDX = `${LINEAR}.outlier_col_idx`;
  const TEXT = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
  let base = '';
  let outliers: PackedOutliers;
  let weakIdx: Int32Array;
  let cols = 0;

  beforeAll(async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-bad-outliers-'));
    dirs.push(tmp);
    base = await packedTinyStories(path.join(tmp, 'base'));
    const w = addOutliers(base, LINEAR);
    ({ weakIdx, cols } = w);
    outliers = w.outliers!;
  }, 60_000);

  /** A copy of the base with `change` applied to its model.safetensors; returns that file. */
  function brokenOutliers(change: (file: string) => void): string {
    const file = path.join(brokenCopy(base), 'model.safetensors');
    change(file);
    return file;
  }

  /** The first row with at least two outliers, and its first index p in col_idx. */
  function rowWithTwo(): { r: number; p: number } {
    const { rowPtr } = outliers;
    const r = rowPtr.findIndex((p, i) => i + 1 < rowPtr.length && rowPtr[i + 1] - p >= 2);
    return { r, p: rowPtr[r] };
  }

  /** The one error line of `wct eval` on the checkpoint whose model.safetensors is `file`. */
  const outlierError = (file: string) =>
    expectOneLineError(wct(['eval', '--model', path.dirname(file), '--data', TEXT], 60_000));

  it('the valid copy evaluates (exit 0)', () => {
    const r = wct(['eval', '--model', brokenCopy(base), '--data', TEXT], 60_000);
    expect(r.status, r.stderr).toBe(0);
  });

  it('two adjacent column indices of a row swapped (unsorted)', () => {
    const { r, p } = rowWithTwo();
    const [a, b] = [outliers.colIdx[p], outliers.colIdx[p + 1]];
    const file = brokenOutliers((f) => {
      poke(f, COL_IDX, p, b);
      poke(f, COL_IDX, p + 1, a);
    });
    expect(outlierError(file)).toBe(
      `error: ${file}: ${COL_IDX}: [${p + 1}] = ${a} (row ${r}) is not above the previous ${b} (unsorted or duplicated)`,
    );
  });

  it('a column index equal to in_features (out of range)', () => {
    const file = brokenOutliers((f) => poke(f, COL_IDX, 0, cols));
    expect(outlierError(file)).toBe(`error: ${file}: ${COL_IDX}: [0] = ${cols} (row 0) is outside [0, ${cols})`);
  });

  it('a column index equal to its predecessor (duplicate)', () => {
    const { r, p } = rowWithTwo();
    const a = outliers.colIdx[p];
    const file = brokenOutliers((f) => poke(f, COL_IDX, p + 1, a));
    expect(outlierError(file)).toBe(
      `error: ${file}: ${COL_IDX}: [${p + 1}] = ${a} (row ${r}) is not above the previous ${a} (unsorted or duplicated)`,
    );
  });

  it('a column index that is a weak column (row order kept)', () => {
    expect(weakIdx.length).toBeGreaterThan(0);
    const j = weakIdx[0];
    // row 0's first index above j (or its last), so that the row stays ascending with j in its place
    const { rowPtr, colIdx } = outliers;
    let p = rowPtr[0];
    while (p + 1 < rowPtr[1] && colIdx[p] < j) p++;
    const file = brokenOutliers((f) => poke(f, COL_IDX, p, j));
    expect(outlierError(file)).toBe(`error: ${file}: ${COL_IDX}: [${p}] = ${j} (row 0) is a weak column`);
  });

  it('outlier_values removed', () => {
    const file = brokenOutliers((f) =>
      rewriteTensors(f, (names) => names.filter((n) => !n.endsWith('.outlier_values'))),
    );
    expect(outlierError(file)).toBe(
      `error: ${file}: ${LINEAR}.outlier_values: missing, but ${LINEAR}.outlier_row_ptr is stored (outliers are outlier_row_ptr, outlier_col_idx, outlier_values: all three or none)`,
    );
  });

  it('a NaN in outlier_values', () => {
    const file = brokenOutliers((f) => poke(f, `${LINEAR}.outlier_values`, 5, NaN));
    expect(outlierError(file)).toBe(
      `error: ${file}: tensor ${LINEAR}.outlier_values: element 5 is NaN (stored values must be finite)`,
    );
  });
});
