/**
 * `wct export --format gguf`: not built yet (issue 15); the module that will write a llama.cpp GGUF file.
 */
import { OptionError } from '../errors.js';
import type { PackedWeight } from '../native/packed.js';

/** The GGUF tensor types an export writes the linears in. */
export const GGUF_TYPES = ['Q8_0', 'Q4_0', 'Q4_1'] as const;
export type GgufType = (typeof GGUF_TYPES)[number];

/** What a GGUF export wrote. */
export interface GgufExport {
  /** The .gguf file written inside the output directory. */
  file: string;
  tensors: number;
}

/** Writes `packed` (by module name) and the other tensors of `packedDir` into one GGUF file under `outDir`. */
export function writeExportedGguf(
  _outDir: string,
  _packedDir: string,
  _packed: ReadonlyMap<string, PackedWeight>,
  _type: GgufType,
  _writtenBy?: string,
): GgufExport {
  throw new OptionError('--format', 'gguf is not built yet (use --format hf)');
}
