/**
 * Quantization with the model on the GPU (llvmpipe here): the calibration forwards and the Hessians run on the
 * device, the GPTQ/OWQ column sweep on the host (src/quant/pipeline.ts). The pipeline on the GPU against the same
 * run on the CPU, a method with a host block transform refused, and `wct quantize --device gpu` end to end.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OptionError } from '../../src/errors.js';
import { evaluateData } from '../../src/eval/evaluate-data.js';
import { readQuantConfig } from '../../src/io/packed-checkpoint.js';
import { readConfig } from '../../src/models/families/registry.js';
import type { DenseLinear } from '../../src/models/linear.js';
import { loadModel } from '../../src/models/load.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { readCalibrationTokens } from '../../src/quant/calibration.js';
import { NO_AWQ } from '../../src/quant/awq.js';
import { NO_GRADIENTS, registerMethod } from '../../src/quant/methods.js';
import { quantizeModel, type ModelQuantizeOptions } from '../../src/quant/pipeline.js';
import type { QuantizedColumns } from '../../src/quant/quantized.js';
import { rtn } from '../../src/quant/rtn.js';
import { weakCounts } from '../../src/quant/weak-count.js';
import { wct } from '../helpers/cli.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';
import { useGpu } from './helpers.js';

const gpu = useGpu();

const CALIB = path.join(dataDir, 'golden/calib-c4-tinystories-656k-n128-L512.json');
const SAMPLE = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const config = readConfig(tinyStoriesDir);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-gpu-quantize-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Perplexity of the GPU run relative to the CPU run at the same settings (issue acceptance: 1%). */
const PPL_REL_TOL = 0.01;
/** One packed checkpoint evaluated on the GPU and on the CPU (as test/gpu/cli.test.ts: the reference's 1e-4). */
const EVAL_REL_TOL = 1e-4;

function owqOptions(windows: Int32Array[]): ModelQuantizeOptions {
  return {
    method: 'owq',
    bits: 3,
    groupSize: 0,
    tuning: 'mse',
    actOrder: false,
    trueSequential: false,
    percdamp: 0.01,
    ...NO_GRADIENTS,
    awq: NO_AWQ,
    nOut: weakCounts(config, 3, { targetBit: 3.1 }),
    windows,
  };
}

/** The input columns a quantizer kept in full precision, sorted. */
function weakColumns(q: QuantizedColumns): number[] {
  return Array.from(q.order?.subarray(q.nQuant) ?? []).sort((a, b) => a - b);
}

describe('the quantization pipeline with the model on the GPU', () => {
  it('OWQ 3-bit over 4 windows of 64 tokens: the weak columns and ~all codes of the CPU run, its perplexity within 1%', async () => {
    const windows = readCalibrationTokens(CALIB, { nsamples: 4, seqlen: 64 }, config.vocabSize).windows;
    const cpuModel = loadModel(tinyStoriesDir);
    const cpu = (await quantizeModel(cpuModel, owqOptions(windows))).layers;
    const gpuModel = loadModel(tinyStoriesDir);
    await gpuModel.toDevice(gpu().ctx);
    const onGpu = (await quantizeModel(gpuModel, owqOptions(windows))).layers;
    // the fake-quantized layers stay on the device
    for (const name of cpu.keys()) expect((gpuModel.linears().get(name) as DenseLinear).weight.device).toBe('gpu');
    expect(weakColumns(cpu.get('model.layers.0.mlp.down_proj')!)).toHaveLength(2);
    let codes = 0;
    let same = 0;
    for (const [name, want] of cpu) {
      const got = onGpu.get(name)!;
      expect(weakColumns(got), name).toEqual(weakColumns(want));
      codes += want.codes.length;
      for (let i = 0; i < want.codes.length; i++) if (got.codes[i] === want.codes[i]) same++;
    }
    // f32 Hessians summed in another order move a few roundings at the decision boundary, no more
    expect(same / codes).toBeGreaterThan(0.99);
    const short = path.join(tmp, 'short.txt');
    fs.writeFileSync(short, fs.readFileSync(SAMPLE, 'utf8').slice(0, 4500));
    const tokenizer = loadTokenizer(tinyStoriesDir);
    const want = (await evaluateData(cpuModel, tokenizer, short)).ppl;
    const got = (await evaluateData(gpuModel, tokenizer, short)).ppl;
    expect(Math.abs(got - want) / want).toBeLessThan(PPL_REL_TOL);
  }, 300_000);

  it('refuses a method whose block transform runs on the host, naming --device', async () => {
    registerMethod({
      name: 'toy-host-transform',
      describe: 'test only: a block transform over host weights',
      statistic: () => 'none',
      weakColumns: false,
      outliers: false,
      awq: 'none',
      defaultTuning: 'minmax',
      transform: () => ({ steps: () => 0, run: () => ({}) }),
      quantizeLinear: (l, s) => rtn(l.weight, l.rows, l.cols, { bits: s.bits, groupSize: s.groupSize }),
    });
    const model = loadModel(tinyStoriesDir);
    await model.toDevice(gpu().ctx);
    const run = quantizeModel(model, { ...owqOptions([]), method: 'toy-host-transform' });
    await expect(run).rejects.toThrow(OptionError);
    await expect(run).rejects.toThrow(/^device: method toy-host-transform .*--device cpu/);
  });
});

/** The fields of `wct quantize --json` these tests read. */
interface QuantizeSummary {
  n_out: Record<string, number>;
  avg_bits: Record<string, number>;
  ppl: Record<string, number>;
}

/** `wct quantize ... --json` on `device` with 2 of the reference windows, evaluated on the first 4500 characters of the sample. */
function quantizeCli(device: 'cpu' | 'gpu', out: string, short: string): { run: QuantizeSummary; stderr: string } {
  const r = wct(
    ['quantize', '--model', tinyStoriesDir, '--method', 'owq', '--wbits', '3', '--target-bit', '3.1'].concat([
      '--calib-tokens',
      CALIB,
      '--nsamples',
      '2',
      '--out',
      out,
      '--eval',
      short,
      '--device',
      device,
      '--json',
    ]),
    600_000,
  );
  expect(r.status, r.stderr).toBe(0);
  return { run: JSON.parse(r.stdout), stderr: r.stderr };
}

describe('wct quantize --device gpu', () => {
  // The acceptance run (all 128 reference windows of 512 tokens) took 17 minutes on llvmpipe here (ppl 45.2953
  // against the reference 45.298; the CPU takes ~20 s): CI runs 2 of the windows on both devices and compares (16 took 189 s).
  it('OWQ 3.1-bit over 2 reference windows: weak columns and bits of the CPU run, its perplexity within 1%', () => {
    const short = path.join(tmp, 'short-e2e.txt');
    fs.writeFileSync(short, fs.readFileSync(SAMPLE, 'utf8').slice(0, 4500));
    const cpu = quantizeCli('cpu', path.join(tmp, 'owq-cpu'), short).run;
    const out = path.join(tmp, 'owq-gpu');
    const { run: onGpu, stderr } = quantizeCli('gpu', out, short);
    expect(stderr).toMatch(/gpu/i);
    expect(onGpu.n_out).toEqual(cpu.n_out);
    expect(onGpu.avg_bits).toEqual(cpu.avg_bits);
    expect(Math.abs(onGpu.ppl[short] - cpu.ppl[short]) / cpu.ppl[short]).toBeLessThan(PPL_REL_TOL);
    expect(readQuantConfig(out).calibration?.nsamples).toBe(2);
    // the checkpoint written from the GPU run is what the CPU loads and evaluates to the same perplexity
    const e = wct(['eval', '--model', out, '--data', short, '--json']);
    expect(e.status, e.stderr).toBe(0);
    const onCpu = JSON.parse(e.stdout).ppl;
    expect(Math.abs(onCpu - onGpu.ppl[short]) / onCpu).toBeLessThan(EVAL_REL_TOL);
  }, 900_000);
});
