/**
 * AWQ (arXiv 2306.00978; mit-han-lab/llm-awq) as a block transform of the shared pipeline: on the block's recorded
 * full-precision linear inputs, the scale search of every scaling group and its fold (./awq-scale.ts), then the clip
 * search of every linear but q and k on the scaled weights and inputs (./awq-clip.ts). The linears are then
 * quantized by AWQ's quantizer (./awq-quantizer.ts). The same scale search and fold also runs before OWQ/GPTQ
 * (`--awq-scale`), with no clip search; no reference has that combination.
 */
import { familyOf } from '../models/families/registry.js';
import { asDense } from '../models/linear.js';
import type { CausalLM } from '../models/model.js';
import { applyClip, AWQ_CLIP, sampleTokens, searchClip, type ClipSearch } from './awq-clip.js';
import { applyScales, scalingGroups, searchScales } from './awq-scale.js';
import type { RecordedBatch } from './linear-inputs.js';

export interface AwqSettings {
  /** The scale search and fold. */
  scale: boolean;
  /** The clip search (AWQ only). */
  clip: boolean;
  /** Candidate ratios of the scale search (llm-awq: 20). */
  grid: number;
}

/** llm-awq's scale-search grid. */
export const AWQ_GRID = 20;

/** No AWQ search (the settings of RTN, GPTQ and OWQ unless asked). */
export const NO_AWQ: AwqSettings = { scale: false, clip: false, grid: AWQ_GRID };

/** What quantization_config.json records of one block: the chosen α of each scaling group. */
export interface AwqBlockRecord {
  block: number;
  /** Per scaling group: the chosen α, its loss and every candidate's loss. */
  scales: { prev: string; linears: string[]; alpha: number; loss: number; losses: number[] }[];
  /** The linears whose weights were clipped. */
  clipped: string[];
}

/** The block linears the clip search covers (all but the family's unclipped q and k), canonical names. */
export function clippedLinears(model: CausalLM, prefix: string): string[] {
  const spec = familyOf(model.config);
  return spec
    .blockLinears(model.config)
    .filter((l) => !spec.quant.unclipped.includes(l.name))
    .map((l) => `${prefix}.${l.name}`);
}

/** Progress steps per block: one per searched group and one per clipped linear. */
export function awqSteps(model: CausalLM, o: AwqSettings): number {
  const prefix = model.blockPrefix(0);
  return (o.scale ? scalingGroups(model, prefix).length : 0) + (o.clip ? clippedLinears(model, prefix).length : 0);
}

export interface AwqBlock {
  model: CausalLM;
  block: number;
  inputs: readonly RecordedBatch[];
  bits: number;
  groupSize: number;
  /** Hears of each linear's clip search before it is applied. */
  onClip?: (clip: ClipSearch) => void;
}

/** Scales (then clips) block `block` in place; `step` hears of each group searched and each linear clipped. */
export function awqBlock(
  b: AwqBlock,
  o: AwqSettings,
  step: (stage: 'scale' | 'clip', item: string) => void,
): AwqBlockRecord {
  const { model, block, inputs, bits, groupSize } = b;
  const prefix = model.blockPrefix(block);
  const searches = o.scale
    ? searchScales(model, block, inputs, { bits, groupSize, grid: o.grid }, (s) => step('scale', s.prev))
    : [];
  applyScales(model, searches, inputs);
  const clipped = o.clip ? clippedLinears(model, prefix) : [];
  for (const name of clipped) {
    const { weight } = asDense(name, model.linears().get(name));
    const [rows, cols] = weight.shape;
    const x = sampleTokens(
      inputs.map((r) => r.inputs.get(name)!),
      cols,
      AWQ_CLIP.sampleTokens,
    );
    const w = weight.data as Float32Array;
    const clip = searchClip(name, w, rows, cols, x, { ...AWQ_CLIP, bits, groupSize });
    b.onClip?.(clip);
    applyClip(w, rows, cols, clip);
    step('clip', name);
  }
  return {
    block,
    scales: searches.map(({ prev, linears, alpha, loss, losses }) => ({ prev, linears, alpha, loss, losses })),
    clipped,
  };
}
