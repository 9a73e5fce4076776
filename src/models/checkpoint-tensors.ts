/**
 * The tensors a Hugging Face checkpoint of a given config must contain, by canonical name (the family spec's
 * names, what `*ForCausalLM.save_pretrained` writes), with shapes as stored ([out, in] for linear weights).
 *
 * Names found in the wild are resolved to the canonical ones: checkpoints saved from the bare model class
 * (`OPTModel`, `LlamaModel`) drop the `model.` prefix (`decoder.layers.0...`), and tied models may keep the
 * shared embedding under the lm_head's name only (TinyStories-656K does).
 */
import { InputError } from '../errors.js';
import type { TensorInfo } from '../io/safetensors-read.js';
import { allFamilies, familyOf } from './families/registry.js';
import type { ModelConfig } from './families/spec.js';

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/**
 * Every tensor of the checkpoint by canonical name, with its shape. The lm_head weight is always listed; for
 * tied models it is optional (the embedding serves as the output projection).
 */
export function expectedTensorShapes(config: ModelConfig): Map<string, number[]> {
  return familyOf(config).tensorShapes(config);
}

/** The canonical names of the token embedding's and lm_head's weights. */
export function headTensorNames(config: ModelConfig): { embedding: string; lmHead: string } {
  const { names } = familyOf(config);
  return { embedding: `${names.tokenEmbedding}.weight`, lmHead: `${names.lmHead}.weight` };
}

/** Every family's token embedding weight -> its lm_head weight (the name a tied checkpoint may store it under). */
const TIED_ALIASES = new Map(
  allFamilies().map(({ names }) => [`${names.tokenEmbedding}.weight`, `${names.lmHead}.weight`]),
);

/** Stored names that may hold `canonical`, most specific first. */
function candidates(canonical: string, tied: boolean): string[] {
  const names = [canonical];
  if (canonical.startsWith('model.')) names.push(canonical.slice('model.'.length));
  const alias = TIED_ALIASES.get(canonical);
  if (tied && alias !== undefined) names.push(alias);
  return names;
}

/**
 * The name under which `available` holds the canonical tensor, or undefined. Lenient: it accepts the
 * tied-embedding alias without knowing the config; checkTensors is what enforces the config.
 */
export function resolveTensorName(available: ReadonlySet<string>, canonical: string): string | undefined {
  return candidates(canonical, true).find((name) => available.has(name));
}

/**
 * Throws an InputError (naming `file`) for the first required tensor that is missing, has a shape other than
 * the config implies, or is not a float tensor, and for the tensors the model does not use (HF warns and drops
 * them; we refuse, since the usual cause is a config.json with fewer layers than the checkpoint). Tensors in
 * `skip` (the weights of a packed checkpoint's quantized linears) and `readElsewhere` (their packed tensors) are
 * checked by their own loader. Only the header is consulted: nothing is read or allocated yet.
 */
export function checkTensors(
  file: string,
  config: ModelConfig,
  index: { names(): string[]; info(name: string): TensorInfo },
  skip: ReadonlySet<string> = new Set(),
  readElsewhere: ReadonlySet<string> = new Set(),
): void {
  const available = new Set(index.names());
  const used = new Set(readElsewhere);
  const { lmHead } = headTensorNames(config);
  for (const [canonical, shape] of expectedTensorShapes(config)) {
    if (skip.has(canonical)) continue;
    const stored = candidates(canonical, config.tieWordEmbeddings).find((name) => available.has(name));
    if (stored === undefined) {
      if (canonical === lmHead && config.tieWordEmbeddings) continue;
      throw new InputError(file, canonical, `missing (expected shape [${shape}] from config.json)`);
    }
    used.add(stored);
    const info = index.info(stored);
    if (String(info.shape) !== String(shape)) {
      throw new InputError(file, stored, `shape [${info.shape}] does not match config (expected [${shape}])`);
    }
    if (!FLOAT_DTYPES.has(info.dtype)) throw new InputError(file, stored, `dtype ${info.dtype} is not a float type`);
  }
  const unused = [...available].filter((name) => !used.has(name));
  if (unused.length > 0) throw new InputError(file, 'tensors', unusedProblem(config, unused));
}

/** How many unused names a message lists before "and N more". */
const LISTED = 5;

/** The message for tensors the model does not use: their names, and the layer count when that is the cause. */
function unusedProblem(config: ModelConfig, unused: string[]): string {
  const shown = unused.slice(0, LISTED).join(', ');
  const more = unused.length > LISTED ? ` and ${unused.length - LISTED} more` : '';
  const { names, sizeKeys } = familyOf(config);
  const inBlock = (i: number) =>
    unused.some((n) => candidates(`${names.block(i)}.`, false).some((prefix) => n.startsWith(prefix)));
  let last = config.numLayers - 1;
  while (inBlock(last + 1)) last++;
  const layers =
    last >= config.numLayers
      ? ` (the checkpoint has layers 0..${last}, config.json ${sizeKeys.layers?.[0] ?? 'num_hidden_layers'} is ${config.numLayers})`
      : '';
  return `${unused.length} tensor(s) the model does not use: ${shown}${more}${layers}`;
}
