/**
 * `wct export --format gptq`: not built yet (issue 15); the module that will write the AutoGPTQ / GPTQModel layout.
 */
import { OptionError } from '../errors.js';
import type { PackedWeight } from '../native/packed.js';

/** What a GPTQ export wrote. */
export interface GptqExport {
  /** Packed linears written as qweight / qzeros / scales / g_idx. */
  linears: number;
  /** The PEFT adapter directory holding an OWQ base's weak columns (rank n_out LoRA), when there were any. */
  adapterDir?: string;
}

/** Writes `packed` (by module name) of the packed checkpoint `packedDir` into `outDir` in the GPTQ layout. */
export function writeExportedGptq(
  _outDir: string,
  _packedDir: string,
  _packed: ReadonlyMap<string, PackedWeight>,
  _writtenBy?: string,
): GptqExport {
  throw new OptionError('--format', 'gptq is not built yet (use --format hf)');
}
