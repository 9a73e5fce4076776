/**
 * The AWQ reference table of TinyStories-656K (../shared/data/golden/awq-tinystories-656k.md: llm-awq run unmodified
 * in fp32 on the shipped C4 blocks): the calibration blocks, every row's perplexity (1% on TinyStories, 2% on
 * WikiText-2 for the rows the suite runs it on), every searched ratio, the candidate losses and clip thresholds of
 * the w3 g64 search dump, the replay of the dump through our fold, quantizer and evaluation, and the packed file.
 */
import { NO_GRADIENTS } from '../../src/quant/methods.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateData } from '../../src/eval/evaluate-data.js';
import { readQuantConfig } from '../../src/io/packed-checkpoint.js';
import { asDense, DenseLinear } from '../../src/models/linear.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { awqBlock, type AwqBlockRecord } from '../../src/quant/awq.js';
import { applyClip, type ClipSearch } from '../../src/quant/awq-clip.js';
import { awqQuantize } from '../../src/quant/awq-quantizer.js';
import { applyScales, type ScaleSearch } from '../../src/quant/awq-scale.js';
import { concatenatedCalibration, readCalibrationTokens } from '../../src/quant/calibration.js';
import { recordLinearInputs, type Activations } from '../../src/quant/linear-inputs.js';
import { quantizeModel } from '../../src/quant/pipeline.js';
import { quantizeCheckpoint } from '../../src/quant/quantize-checkpoint.js';
import { quantizeOptions } from '../../src/recipe/quantize-options.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const GOLDEN = path.join(dataDir, 'golden');
const BLOCKS_FILE = path.join(GOLDEN, 'calib-awq-c4-tinystories-656k-n128-L512.json');
const TINYSTORIES_TEXT = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const readJson = (name: string) => JSON.parse(fs.readFileSync(path.join(GOLDEN, name), 'utf8'));

interface RefRun {
  run: string;
  mode: 'fp32' | 'rtn' | 'awq' | 'awq_scale_only';
  w_bit: number;
  q_group_size: number | null;
  ppl_tinystories: number;
  ppl_wikitext2: number | null;
  best_ratios: number[] | null;
}
interface RefScale {
  prev_op: string;
  layers: string[];
  best_ratio: number;
  loss_history: number[];
  scales: number[];
}
interface RefClip {
  layer: string;
  max_val: number[][][];
  shrink_index: number[][];
}

const table: RefRun[] = readJson('awq-tinystories-656k.json').runs;
const dump: { scale: RefScale[]; clip: RefClip[] } = readJson('awq-w3-g64-search.json');
/** The rows reproduced: every AWQ and RTN setting (the reruns and diagnostics repeat awq_w3_g64). */
const ROWS = table.filter((r) => r.mode !== 'fp32' && !/rerun|diag|shim/.test(r.run));
/** Rows whose WikiText-2 column the suite also checks (each evaluation takes about half a minute). */
const WIKITEXT_ROWS = new Set(['awq_w3_g64', 'rtn_w3_g64']);
const TINY_TOL = 0.01;
const WIKITEXT_TOL = 0.02;
/** RTN rows have no search: only the evaluation's summation order separates them from the reference. */
const RTN_TOL = 1e-5;

const tokenizer = loadTokenizer(tinyStoriesDir);
let blocks: Int32Array[];
const ppl = new Map<string, number>();
const searched = new Map<string, AwqBlockRecord[]>();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-awq-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => {
  blocks = readCalibrationTokens(BLOCKS_FILE, { nsamples: null, seqlen: 512 }, Number.MAX_SAFE_INTEGER).windows;
});

const relative = (got: number, want: number) => Math.abs(got - want) / want;

function settingsOf(row: RefRun) {
  return {
    method: 'awq',
    bits: row.w_bit,
    groupSize: row.q_group_size === -1 || row.q_group_size === null ? 0 : row.q_group_size,
    tuning: 'minmax' as const,
    actOrder: false,
    trueSequential: false,
    percdamp: 0.01,
    ...NO_GRADIENTS,
    awq: { scale: row.mode !== 'rtn', clip: row.mode === 'awq', grid: 20 },
    nOut: new Map<string, number>(),
  };
}

describe('AWQ calibration', () => {
  it("C4 documents of at most 512 tokens in file order, concatenated and cut: the reference's 61 blocks exactly", () => {
    const ours = concatenatedCalibration('c4', tokenizer, { nsamples: 128, seqlen: 512 }).windows;
    expect(ours).toHaveLength(61);
    expect(ours.map((b) => Array.from(b))).toEqual(blocks.map((b) => Array.from(b)));
  });
});

describe('TinyStories-656K AWQ reference table', () => {
  for (const row of ROWS) {
    const what = `${row.run}: tinystories ${row.ppl_tinystories.toFixed(3)}${row.best_ratios ? `, alphas ${row.best_ratios.join(' ')}` : ''}`;
    it(what, async () => {
      const model = loadModel(tinyStoriesDir);
      const { transforms } = await quantizeModel(model, { ...settingsOf(row), windows: blocks });
      searched.set(row.run, transforms as AwqBlockRecord[]);
      if (row.best_ratios !== null)
        expect((transforms as AwqBlockRecord[]).flatMap((b) => b.scales.map((s) => s.alpha))).toEqual(row.best_ratios);
      const tiny = (await evaluateData(model, tokenizer, TINYSTORIES_TEXT)).ppl;
      ppl.set(row.run, tiny);
      const tol = row.mode === 'rtn' ? RTN_TOL : TINY_TOL;
      expect(relative(tiny, row.ppl_tinystories), `tinystories ${tiny}`).toBeLessThan(tol);
      if (WIKITEXT_ROWS.has(row.run)) {
        const wiki = (await evaluateData(model, tokenizer, 'wikitext2')).ppl;
        expect(relative(wiki, row.ppl_wikitext2!), `wikitext2 ${wiki}`).toBeLessThan(
          row.mode === 'rtn' ? RTN_TOL : WIKITEXT_TOL,
        );
      }
    });
  }

  it('the ordering of the table: AWQ below RTN at 3 bits at each group size, scale + clip below scale only', () => {
    expect(ppl.get('awq_w3_g64')!).toBeLessThan(ppl.get('rtn_w3_g64')!);
    expect(ppl.get('awq_w3_g128')!).toBeLessThan(ppl.get('rtn_w3_g128')!);
    expect(ppl.get('awq_w3_g64')!).toBeLessThan(ppl.get('awq_scale_only_w3_g64')!);
    expect(ppl.get('awq_scale_only_w3_g64')!).toBeLessThan(ppl.get('rtn_w3_g64')!);
  });
});

/** Embeds the calibration blocks in batches of 8 (the pipeline's default). */
function embedded(model: CausalLM): Activations {
  const acts: Activations = [];
  for (let i = 0; i < blocks.length; i += 8) {
    const group = blocks.slice(i, i + 8);
    const ids = new Int32Array(group.length * 512);
    group.forEach((b, j) => ids.set(b, j * 512));
    acts.push(model.embed(ids, { batch: group.length }));
  }
  return acts;
}

/** The dump's scales of block `block` as searches to fold. */
function referenceScales(block: number): ScaleSearch[] {
  return dump.scale
    .filter((s) => s.prev_op.startsWith(`model.layers.${block}.`))
    .map((s) => ({
      prev: s.prev_op,
      linears: s.layers,
      alpha: s.best_ratio,
      loss: Math.min(...s.loss_history),
      losses: s.loss_history,
      scales: Float32Array.from(s.scales),
    }));
}

describe('the w3 g64 search against the reference dump', () => {
  it('every candidate loss of every scaling group within 1e-3 (same ratio chosen)', () => {
    const ours = (searched.get('awq_w3_g64') ?? []).flatMap((b) => b.scales);
    expect(ours.map((s) => s.prev)).toEqual(dump.scale.map((s) => s.prev_op));
    dump.scale.forEach((ref, i) => {
      expect(ours[i].alpha, ref.prev_op).toBe(ref.best_ratio);
      ref.loss_history.forEach((want, k) => {
        expect(relative(ours[i].losses[k], want), `${ref.prev_op} ratio ${k}/20`).toBeLessThan(1e-3);
      });
    });
  });

  it("on the reference's scales, the clip search picks every (row, group) threshold of the dump, bit for bit", () => {
    const model = loadModel(tinyStoriesDir);
    const clips: ClipSearch[] = [];
    let acts = embedded(model);
    for (let block = 0; block < model.numBlocks; block++) {
      const names = [...model.linears().keys()].filter((n) => n.startsWith(`${model.blockPrefix(block)}.`));
      const { batches, outputs } = recordLinearInputs(model, block, names, acts);
      applyScales(model, referenceScales(block), batches);
      const onClip = (c: ClipSearch) => clips.push(c);
      awqBlock(
        { model, block, inputs: batches, bits: 3, groupSize: 64, onClip },
        { scale: false, clip: true, grid: 20 },
        () => {},
      );
      acts = outputs;
    }
    expect(clips.map((c) => c.linear)).toEqual(dump.clip.map((c) => c.layer));
    for (const [i, ref] of dump.clip.entries()) {
      const c = clips[i];
      expect(Array.from(c.shrink), ref.layer).toEqual(ref.shrink_index.flat());
      expect(Array.from(c.maxVal), ref.layer).toEqual(Array.from(Float32Array.from(ref.max_val.flat(2))));
    }
  });

  it("the dump replayed (its scales folded, its clips applied, AWQ's quantizer, our evaluation): 46.55087", async () => {
    const model = loadModel(tinyStoriesDir);
    for (let block = 0; block < model.numBlocks; block++) applyScales(model, referenceScales(block), []);
    for (const ref of dump.clip) {
      const { weight } = asDense(ref.layer, model.linears().get(ref.layer));
      const [rows, cols] = weight.shape;
      const nGroups = ref.max_val[0].length;
      const clip = {
        linear: ref.layer,
        groupSize: cols / nGroups,
        nGroups,
        maxVal: Float32Array.from(ref.max_val.flat(2)),
      };
      applyClip(weight.data as Float32Array, rows, cols, { ...clip, shrink: new Uint8Array(0) });
    }
    for (const [name, layer] of model.linears()) {
      const { weight, bias } = asDense(name, layer);
      const [rows, cols] = weight.shape;
      const q = awqQuantize(weight.data as Float32Array, rows, cols, { bits: 3, groupSize: 64 }).dequantized;
      model.setLinear(name, new DenseLinear(new Tensor(q, [rows, cols]), bias));
    }
    const tiny = (await evaluateData(model, tokenizer, TINYSTORIES_TEXT)).ppl;
    expect(relative(tiny, 46.550865173339844), `tinystories ${tiny}`).toBeLessThan(1e-5);
  });
});

describe('the packed AWQ checkpoint', () => {
  it('evaluates to the in-memory fake-quantized perplexity within 0.1%, with the alphas in quantization_config.json', async () => {
    const out = path.join(tmp, 'awq-w3-g64');
    const options = quantizeOptions({ method: 'awq', wbits: 3, group_size: 64, calib_tokens: BLOCKS_FILE });
    await quantizeCheckpoint(tinyStoriesDir, out, options, { force: false });
    const qc = readQuantConfig(out);
    const ref = ROWS.find((r) => r.run === 'awq_w3_g64')!;
    expect((qc.awq!.blocks as AwqBlockRecord[]).flatMap((b) => b.scales.map((s) => s.alpha))).toEqual(ref.best_ratios);
    expect(qc.calibration?.nsamples).toBe(61);
    const packed = (await evaluateData(loadModel(out), tokenizer, TINYSTORIES_TEXT)).ppl;
    const inMemory = ppl.get('awq_w3_g64') ?? Number.NaN;
    expect(relative(packed, inMemory), `packed ${packed}, in memory ${inMemory}`).toBeLessThan(1e-3);
  });
});
