/**
 * The one options object of quantization, as the library takes it (quantizeCheckpoint). Its defaults live in one
 * place, the recipe schema (src/recipe/schema.ts, `model.quantize`), and src/recipe/quantize-options.ts converts a
 * parsed section into this object; `wct quantize` parses its flags through the same schema.
 */
import type { CalibDtype } from './linear-inputs.js';
import type { MethodSettings } from './methods.js';
import type { WeakBudget } from './weak-count.js';

export interface CalibrationSettings {
  /** c4 | wikitext2 | a .jsonl / .txt / .raw path (src/quant/calibration.ts). */
  data: string;
  /** A JSON file of exact windows ({"windows": [[ids...]]}) that replaces sampling from `data`; null: sample. */
  tokensFile: string | null;
  nsamples: number;
  /** Window length; null: the model's max_position_embeddings. */
  seqlen: number | null;
  seed: number;
  /** How the activations between blocks are held (src/quant/linear-inputs.ts). */
  dtype: CalibDtype;
}

export interface QuantizeOptions extends MethodSettings {
  /** A registered method (src/quant/methods.ts). */
  method: string;
  trueSequential: boolean;
  /** OWQ's weak columns: by target average bits, by a fixed count per linear, or none. */
  budget: WeakBudget;
  /** Also pack the token embedding (and an untied lm_head) per row at these bits; null keeps their dtype. */
  embedBits: 4 | 8 | null;
  calibration: CalibrationSettings;
}
