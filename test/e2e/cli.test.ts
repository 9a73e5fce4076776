/**
 * The CLI end to end on the shipped models: reference perplexities (golden/quant-tinystories-656k.md),
 * greedy generation against the golden continuation, OPT evaluation, init-random, and --help.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/models/load.js';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { dataDir, optTinyDir, repoRoot, tinyStoriesDir } from '../helpers/paths.js';

/** Relative tolerance on the reference FP32 perplexities (issue acceptance). */
const PPL_REL_TOL = 1e-4;

function evalJson(args: string[]): { ppl: number; tokens: number; chunks: number; seqlen: number } {
  const r = wct(['eval', ...args, '--json']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('wct eval', () => {
  it('TinyStories-656K on WikiText-2 gives the reference FP32 perplexity 708.991', () => {
    const r = evalJson(['--model', tinyStoriesDir, '--data', 'wikitext2']);
    expect(r.chunks).toBe(1094);
    expect(r.seqlen).toBe(512);
    expect(r.tokens).toBe(1094 * 512);
    expect(Math.abs(r.ppl - 708.991) / 708.991).toBeLessThan(PPL_REL_TOL);
  });

  it('TinyStories-656K on the TinyStories sample gives 37.235', () => {
    const r = evalJson([
      '--model',
      tinyStoriesDir,
      '--data',
      path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt'),
    ]);
    expect(r.chunks).toBe(15);
    expect(Math.abs(r.ppl - 37.235) / 37.235).toBeLessThan(PPL_REL_TOL);
  });

  it('opt-tiny-random evaluates at seqlen 128 (near-uniform model: ppl close to the vocab size)', () => {
    const r = evalJson(['--model', optTinyDir, '--data', 'wikitext2', '--seqlen', '128']);
    expect(r.seqlen).toBe(128);
    expect(r.chunks).toBeGreaterThan(2000);
    // golden mean NLL of this random model is 10.86 (e^10.86 ~ 52k, vocab 50272)
    expect(Math.log(r.ppl)).toBeGreaterThan(10);
    expect(Math.log(r.ppl)).toBeLessThan(11.5);
  });

  it('rejects a seqlen beyond max_position_embeddings', () => {
    expect(expectOneLineError(wct(['eval', '--model', tinyStoriesDir, '--seqlen', '4096']))).toMatch(/--seqlen.*512/);
  });
});

describe('wct generate', () => {
  it('greedy from BOS reproduces the golden 64 tokens', () => {
    const golden = JSON.parse(fs.readFileSync(path.join(dataDir, 'golden/tinystories-656k.json'), 'utf8'))
      .greedy_from_bos_64 as number[];
    const r = wct(['generate', '--model', tinyStoriesDir, '--max-new-tokens', '64', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.ids).toEqual(golden.slice(1));
    expect(out.tokens_per_s).toBeGreaterThan(0);
    expect(out.text.length).toBeGreaterThan(20);
  });

  it('streams text for a prompt and reports tokens/s; sampling is reproducible from the seed', () => {
    const r = wct(['generate', '--model', tinyStoriesDir, '--prompt', 'Once upon a time', '--max-new-tokens', '16']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.startsWith('Once upon a time')).toBe(true);
    expect(r.stderr).toMatch(/tokens\/s/);
    const sample = (seed: string) =>
      JSON.parse(
        wct(['generate', '--model', tinyStoriesDir, '--temperature', '0.8', '--top-p', '0.9', '--seed', seed, '--json'])
          .stdout,
      ).ids;
    expect(sample('5')).toEqual(sample('5'));
  });
});

describe('wct init-random and --help', () => {
  it('writes a loadable opt-125m-shaped checkpoint (2 layers) that evaluates', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-init-'));
    const r = wct(['init-random', '--like', 'opt-125m', '--layers', '2', '--out', out, '--force']);
    expect(r.status, r.stderr).toBe(0);
    const model = loadModel(out);
    expect(model.config.hiddenSize).toBe(768);
    expect(model.config.numLayers).toBe(2);
    expect(model.parameters().get('model.decoder.layers.1.fc1.weight')!.shape).toEqual([3072, 768]);
    // a small local text keeps this fast: the 768 x 50272 head dominates and the model is random
    const text = path.join(out, 'slice.txt');
    fs.writeFileSync(
      text,
      fs.readFileSync(path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt'), 'utf8').slice(0, 4000),
    );
    const evalSlice = (...more: string[]) =>
      evalJson(['--model', out, '--data', text, '--seqlen', '64', '--batch-size', '8', ...more]);
    const e = evalSlice();
    expect(e.chunks).toBeGreaterThan(5);
    // --max-chunks: the first N chunks only; N at or past the text's chunks changes nothing
    const first3 = evalSlice('--max-chunks', '3');
    expect([first3.chunks, first3.tokens]).toEqual([3, 3 * 64]);
    expect(first3.ppl).not.toBe(e.ppl);
    const all = evalSlice('--max-chunks', `${e.chunks}`);
    expect([all.chunks, all.ppl]).toEqual([e.chunks, e.ppl]);
    // near-uniform random weights: perplexity of the order of the vocabulary size
    expect(Math.log(e.ppl)).toBeGreaterThan(9);
    expect(Math.log(e.ppl)).toBeLessThan(12);
    expect(expectOneLineError(wct(['init-random', '--like', 'opt-125m', '--layers', '1', '--out', out]))).toMatch(
      /exists/,
    );
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('overrides the preset sizes (OPT: ffn_dim, word_embed_proj_dim follows hidden_size) and refuses bad ones in one line', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-init-'));
    const r = wct([
      'init-random',
      '--like',
      'opt-125m',
      '--layers',
      '1',
      '--hidden-size',
      '36',
      '--intermediate-size',
      '100',
      '--num-heads',
      '3',
      '--out',
      out,
      '--force',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const model = loadModel(out);
    expect(model.config).toMatchObject({
      hiddenSize: 36,
      ffnDim: 100,
      numHeads: 3,
      wordEmbedProjDim: 36,
      numLayers: 1,
    });
    expect(model.parameters().get('model.decoder.layers.0.fc2.weight')!.shape).toEqual([36, 100]);
    const bad = (args: string[]) => expectOneLineError(wct(['init-random', ...args, '--out', out, '--force']));
    expect(bad(['--like', 'tinystories-656k', '--hidden-size', '72'])).toBe(
      'error: configs/models/tinystories-656k.json with hidden_size 72: num_attention_heads: 8 gives head_dim 9 (hidden_size 72 / 8), odd; RoPE needs an even head_dim',
    );
    expect(bad(['--like', 'tinystories-656k', '--num-kv-heads', '3'])).toMatch(
      /num_key_value_heads: 3 does not divide num_attention_heads 8$/,
    );
    expect(bad(['--like', 'opt-125m', '--num-kv-heads', '2'])).toBe(
      'error: opt-125m: opt models have no num_key_value_heads',
    );
    expect(bad(['--like', 'opt-125m', '--hidden-size', '2.5'])).toBe(
      'error: --hidden-size: expected an integer in [1, 131072], got 2.5',
    );
    expect(bad(['--like', 'opt-125m', '--init-std', '0'])).toBe('error: --init-std: expected a number > 0, got 0');
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('every command has --help', () => {
    const top = wct(['--help']);
    expect(top.status).toBe(0);
    const commands = [...top.stdout.matchAll(/^ {2}wct (\S+)/gm)].map((m) => m[1]);
    expect(commands).toEqual(expect.arrayContaining(['generate', 'eval', 'quantize', 'export', 'serve', 'chat']));
    for (const cmd of commands) {
      const r = wct([cmd, '--help']);
      expect(r.status, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(new RegExp(`^wct ${cmd}[\\s\\S]*--help`));
    }
    const train = spawnSync(process.execPath, [path.join(repoRoot, 'dist/src/cli/wct-train.js'), '--help'], {
      encoding: 'utf8',
    });
    expect(train.status).toBe(0);
    expect(train.stdout).toMatch(/wct-train \[recipe\]/);
    const none = spawnSync(process.execPath, [path.join(repoRoot, 'dist/src/cli/wct-train.js')], { encoding: 'utf8' });
    expect(expectOneLineError(none)).toBe('error: recipe: missing: name a recipe YAML file (see recipes/)');
  });
});
