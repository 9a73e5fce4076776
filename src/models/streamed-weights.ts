/**
 * A full-precision checkpoint held one decoder block at a time (`wct quantize` on a model larger than memory). The
 * model is built over every tensor, but the decoder blocks' tensors start unread, on placeholder storage: one zero
 * array per element count, shared by every unread tensor of that count and never written (so on Linux its pages
 * are never touched: it costs address space, not memory). load(i) reads block i's tensors from the safetensors
 * file(s) into their own buffers (on the GPU when the model is there); release(i) drops them back to the
 * placeholders and gives the block back its linears as built, dropping any replacement (a quantized block's
 * fake-quantized weights); drop(name) gives one tensor back early (a linear's dense weight once its quantized copy
 * replaces it). The embeddings and the final norm are read at open; an untied lm_head, which only the gradient pass
 * and the packed file need, when loadHead() asks for it. resident() names the tensors read and not released: the
 * streaming contract, checked by test/quant/streaming-residency.test.ts.
 */
import type { GpuContext } from '../gpu/array.js';
import { openCheckpoint, type Checkpoint } from '../io/safetensors.js';
import { release as releaseStorage } from '../tensor/device.js';
import type { Tensor } from '../tensor/tensor.js';
import { headTensorNames, resolveTensorName } from './checkpoint-tensors.js';
import { familyOf, readConfig } from './families/registry.js';
import { DenseLinear, type LinearLayer } from './linear.js';
import { buildModel, loadWeights, readWeight } from './load.js';
import type { CausalLM } from './model.js';
import { moveTensor } from './move.js';

export class StreamedWeights {
  private readonly placeholders = new Map<number, Float32Array>();
  /** Canonical names of the tensors read and not released. */
  private readonly held = new Set<string>();
  /** Canonical tensor names of each block. */
  private readonly blockTensors: string[][];
  /** The untied lm_head's canonical name (absent from the list: tied), unread until loadHead(). */
  private readonly headTensors: string[] = [];
  /** Each block's linears as built (over the block's own tensors), by canonical name. */
  private readonly built = new Map<string, LinearLayer>();
  private readonly ckpt: Checkpoint;
  private readonly available: ReadonlySet<string>;
  private gpu: GpuContext | null = null;
  readonly model: CausalLM;

  /** Opens the full-precision checkpoint `dir`: every tensor is checked, the non-block ones are read. */
  constructor(dir: string) {
    const config = readConfig(dir);
    const spec = familyOf(config);
    const prefixes = Array.from({ length: config.numLayers }, (_, i) => `${spec.names.block(i)}.`);
    this.blockTensors = prefixes.map(() => []);
    const blockOf = (name: string) => prefixes.findIndex((p) => name.startsWith(p));
    const { lmHead } = headTensorNames(config);
    const weights = loadWeights(dir, config, {
      placeholder: (name, shape) => {
        const b = blockOf(name);
        if (b >= 0) this.blockTensors[b].push(name);
        else if (name === lmHead) this.headTensors.push(name);
        else return null;
        return this.placeholderOf(shape.reduce((n, d) => n * d, 1));
      },
    });
    for (const name of weights.keys()) if (blockOf(name) < 0 && name !== lmHead) this.held.add(name);
    this.model = buildModel(config, weights);
    for (const [name, layer] of this.model.linears()) this.built.set(name, layer);
    this.ckpt = openCheckpoint(dir);
    this.available = new Set(this.ckpt.names());
  }

  private placeholderOf(n: number): Float32Array {
    if (!this.placeholders.has(n)) this.placeholders.set(n, new Float32Array(n));
    return this.placeholders.get(n)!;
  }

  /** The canonical names of the tensors read and not released, sorted. */
  resident(): string[] {
    return [...this.held].sort();
  }

  /** Whether block i's tensors are read. */
  isLoaded(i: number): boolean {
    return this.blockTensors[i].every((n) => this.held.has(n));
  }

  /** Moves the resident tensors to the GPU of `ctx` (or back, null); blocks loaded later are read onto it. */
  async toDevice(ctx: GpuContext | null): Promise<void> {
    this.gpu = ctx;
    const params = this.model.parameters();
    for (const name of this.held) await moveTensor(params.get(name)!, ctx);
  }

  /** Reads block i's tensors (nothing when they are read already), onto the model's device. */
  async load(i: number): Promise<void> {
    if (this.isLoaded(i)) return;
    this.read(this.blockTensors[i]);
    if (this.gpu === null) return;
    for (const layer of this.blockLinears(i).values()) await layer.toDevice(this.gpu); // F16/BF16 weights stay 16-bit
    for (const name of this.blockTensors[i]) await moveTensor(this.model.parameters().get(name)!, this.gpu);
  }

  /** Reads an untied lm_head (nothing when tied or read already), onto the model's device. */
  async loadHead(): Promise<void> {
    const unread = this.headTensors.filter((n) => !this.held.has(n));
    this.read(unread);
    for (const name of unread) await moveTensor(this.model.parameters().get(name)!, this.gpu);
  }

  private read(names: readonly string[]): void {
    const params = this.model.parameters();
    for (const name of names) {
      params.get(name)!.replaceStorage(readWeight(this.ckpt, resolveTensorName(this.available, name)!));
      this.held.add(name);
    }
  }

  /** Gives one block tensor back to its placeholder before its block is released (its values are not needed again). */
  drop(name: string): void {
    const t: Tensor = this.model.parameters().get(name)!;
    if (t.device === 'gpu') releaseStorage(t.storage);
    t.replaceStorage(this.placeholderOf(t.size));
    this.held.delete(name);
  }

  /** Drops block i's tensors back to their placeholders and gives it its linears as built. */
  release(i: number): void {
    const current = this.model.linears();
    for (const [name, layer] of this.blockLinears(i)) {
      const now = current.get(name);
      if (now !== layer && now instanceof DenseLinear && now.weight.device === 'gpu')
        releaseStorage(now.weight.storage);
      this.model.setLinear(name, layer);
    }
    for (const name of this.blockTensors[i]) if (this.held.has(name)) this.drop(name);
  }

  private blockLinears(i: number): Map<string, LinearLayer> {
    const prefix = `${this.model.blockPrefix(i)}.`;
    return new Map([...this.built].filter(([name]) => name.startsWith(prefix)));
  }

  close(): void {
    this.ckpt.close();
  }
}
