/**
 * The training recipe (`wct-train recipes/alpaca.yaml`): one flat, strict schema documented where each
 * field is declared (STYLE.md item 11, after nanoGPT and PEFT). Every mapping rejects unknown keys;
 * defaults are the QLoRA / OWQ reference trainer's (docs/ARCHITECTURE.md section 6): AdamW lr 2e-4,
 * betas [0.9, 0.999], eps 1e-8, no weight decay, constant after 3% warmup, max grad norm 0.3, batch 1
 * with 16 accumulation steps, seed 0. configs/train/wct-defaults.yaml spells the same values out for
 * recipes to extend.
 *
 * Pairs that exclude each other (EXCLUSIVE_KEYS) are optional fields of which at most one is set; a
 * recipe that `extends` a base and sets one member drops the base's other member (src/recipe/load.ts).
 *
 * Messages are plain words ("expected a positive number"); src/recipe/load.ts prefixes them with the
 * file, line and dotted key. Paths arrive here already absolute (resolved against the file that set them).
 */
import * as z from 'zod';
import { TASK_NAMES, TASKS } from '../eval/zeroshot/tasks.js';
import { AWQ_GRID } from '../quant/awq.js';
import { methodNames, quantMethod } from '../quant/methods.js';

/** Training methods (docs/ARCHITECTURE.md section 6): weak columns, LoRA on the full-precision base, LoRA on the packed base. */
export const TRAIN_METHODS = ['wct', 'lora', 'qlora'] as const;
/** Methods that train LoRA adapters and so take a `lora` section. */
export const LORA_METHODS: readonly string[] = ['lora', 'qlora'];

/** Named evaluation / calibration texts (src/io/text-data.ts); anything else is a path. */
export const NAMED_TEXTS: readonly string[] = ['c4', 'wikitext2'];

/** Mappings (dotted path) whose listed keys exclude each other. */
export const EXCLUSIVE_KEYS: readonly { at: string; keys: readonly [string, string] }[] = [
  { at: 'model.quantize', keys: ['target_bit', 'target_rank'] },
  { at: 'data.validation', keys: ['fraction', 'count'] },
  { at: 'train', keys: ['steps', 'epochs'] },
  { at: 'train.schedule', keys: ['warmup_ratio', 'warmup_steps'] },
];

/** "a, b or c" */
function orList(values: readonly (string | number)[]): string {
  const s = values.map(String);
  return s.length === 1 ? s[0] : `${s.slice(0, -1).join(', ')} or ${s[s.length - 1]}`;
}

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, `expected ${orList(values)}`);
const positive = () => z.number('expected a positive number').positive('expected a positive number');
const nonNegative = () => z.number('expected a non-negative number').nonnegative('expected a non-negative number');
const positiveInt = () => {
  const m = 'expected a positive integer';
  return z.number(m).int(m).positive(m);
};
const nonNegativeInt = () => {
  const m = 'expected a non-negative integer';
  return z.number(m).int(m).nonnegative(m);
};
/** An integer in [min, max]. */
const intIn = (min: number, max: number) => {
  const m = `expected an integer in [${min}, ${max}]`;
  return z.number(m).int(m).min(min, m).max(max, m);
};
/** The largest seed: the RNG keeps 32 bits (src/util/rng.ts), so larger seeds would repeat smaller ones. */
export const MAX_SEED = 2 ** 32 - 1;
const seed = () => intIn(0, MAX_SEED);
/** An integer in [min, ∞). */
const intAtLeast = (min: number) => {
  const m = `expected an integer of at least ${min}`;
  return z.number(m).int(m).min(min, m);
};
/** A number in [0, 1), or (0, 1) with `open`. */
const fraction = (open: boolean) => {
  const m = open ? 'expected a number between 0 and 1 (exclusive)' : 'expected a number in [0, 1)';
  const n = z.number(m).lt(1, m);
  return open ? n.gt(0, m) : n.gte(0, m);
};
const bool = () => z.boolean('expected true or false');
const pathString = () => z.string('expected a path').min(1, 'expected a path');
const section = <T extends z.core.$ZodLooseShape>(shape: T) => z.strictObject(shape, 'expected a mapping');

/** Adds "a and b exclude each other" when both members of an EXCLUSIVE_KEYS pair are set. */
function exclusive(at: string) {
  const [a, b] = EXCLUSIVE_KEYS.find((e) => e.at === at)!.keys;
  return (v: Record<string, unknown>, ctx: z.RefinementCtx) => {
    if (v[a] !== undefined && v[b] !== undefined)
      ctx.addIssue({ code: 'custom', path: [b], message: `${a} and ${b} exclude each other (set one)` });
  };
}

/** A registered quantization method (src/quant/methods.ts), checked when the recipe is parsed. */
const methodName = () =>
  z.string('expected a method name').superRefine((name, ctx) => {
    if (!methodNames().includes(name))
      ctx.addIssue({ code: 'custom', message: `expected ${orList(methodNames())}, got ${JSON.stringify(name)}` });
  });

/**
 * How a full-precision checkpoint is quantized (the options of `wct quantize`, whose flags are generated from
 * this shape: src/cli/schema-flags.ts). Each field's description is its --help line.
 */
export const quantizeShape = {
  method: methodName().default('owq').describe('Quantization method'),
  wbits: z.literal([2, 3, 4, 8], 'expected 2, 3, 4 or 8').default(4).describe('Bits per quantized weight'),
  target_bit: z
    .number('expected a number')
    .lt(16, 'expected a number below 16')
    .optional()
    .describe('OWQ: average bits including the fp16 weak columns (e.g. 3.1); excludes the target rank'),
  target_rank: nonNegativeInt().optional().describe('OWQ: weak columns in every linear; excludes the target bit'),
  group_size: nonNegativeInt()
    .default(0)
    .describe(
      'Input columns per quantization group; the last group of a row is shorter when it does not divide in_features (0: per output row)',
    ),
  act_order: bool().default(false).describe('GPTQ/OWQ: quantize columns by decreasing diag(H) / sensitivity'),
  true_sequential: bool()
    .default(false)
    .describe('Quantize the groups of a block (q/k/v, o, up/gate, down) one after another'),
  embed_bits: z
    .literal([4, 8], 'expected 4 or 8')
    .optional()
    .describe(
      'Also pack the token embedding (and an untied lm_head) per row at 8 or 4 bits (default: keep their dtype)',
    ),
  tuning: oneOf(['minmax', 'mse'])
    .optional()
    .describe("Quantizer parameters (default: the method's: mse for owq, else minmax)"),
  awq_scale: bool()
    .optional()
    .describe(
      "AWQ's activation-aware scale search, folded into the previous op (default: on for awq; owq/gptq: off, on runs it before the Hessians)",
    ),
  awq_clip: bool().optional().describe("AWQ's clip search of every linear but q and k (awq only; default: on)"),
  awq_grid: intIn(2, 1000).default(AWQ_GRID).describe("Candidate ratios i / grid of AWQ's scale search"),
  calib: z
    .string('expected c4, wikitext2 or a path')
    .min(1, 'expected c4, wikitext2 or a path')
    .default('c4')
    .describe('Calibration text: c4, wikitext2 or a .jsonl / .txt path'),
  calib_tokens: pathString()
    .optional()
    .describe(
      'JSON file {"windows": [[ids...]]} (or "blocks"): exact calibration windows (overrides calib; awq uses all of them)',
    ),
  nsamples: intIn(1, 65536)
    .default(128)
    .describe('Calibration windows (awq: documents of at most 512 tokens, concatenated and cut into seqlen blocks)'),
  seqlen: intAtLeast(2).optional().describe('Calibration window length (default: max_position_embeddings; awq: 512)'),
  seed: seed().default(0).describe('Calibration sampling seed'),
  calib_dtype: oneOf(['fp32', 'bf16'])
    .default('fp32')
    .describe(
      'Hold the calibration activations between blocks in fp32 or bf16 (half the memory; widened to fp32 for every forward and Hessian; host only)',
    ),
  percdamp: positive().default(0.01).describe('GPTQ damping, a fraction of mean(diag H)'),
  outlier_ratio: fraction(false)
    .optional()
    .describe("gwq: the fraction of each linear's weights kept in fp16 as sparse outliers (default: 0.01)"),
  gwq_score: oneOf(['grad', 'fisher', 'taylor'])
    .optional()
    .describe(
      'gwq: outlier score, grad |mean g| (default), fisher sum g^2 or taylor |mean g*W| over the gradient windows',
    ),
  gwq_quantizer: oneOf(['rtn', 'gptq'])
    .optional()
    .describe('gwq: quantizer of the non-outlier weights, rtn (default) or gptq (Hessians from nsamples windows)'),
  sensitivity: oneOf(['hessian', 'fisher'])
    .optional()
    .describe(
      "owq: weak-column sensitivity, the Hessian diagonal (OWQ's, default) or the diagonal Fisher of the gradients",
    ),
  grad_samples: intIn(1, 65536)
    .optional()
    .describe(
      'gwq, owq with sensitivity fisher: calibration windows of the gradient pass, the first ones (default: 1)',
    ),
};

/** The fields of method gwq only. */
const GWQ_ONLY = ['outlier_ratio', 'gwq_score', 'gwq_quantizer'] as const;
const usesGradients = (q: { method: string; sensitivity?: string }) =>
  q.method === 'gwq' || (q.method === 'owq' && q.sensitivity === 'fisher');

/** Whether method `m` runs AWQ's scale search (awq, owq, gptq) or clip search (awq) when asked. */
const takesAwq = (m: string, key: 'awq_scale' | 'awq_clip') =>
  key === 'awq_clip' ? quantMethod(m).awq === 'full' : quantMethod(m).awq !== 'none';

export const quantizeSchema = section(quantizeShape)
  .superRefine(exclusive('model.quantize'))
  .superRefine((q, ctx) => {
    if (!methodNames().includes(q.method)) return; // reported on method itself
    const method = quantMethod(q.method);
    for (const key of ['target_bit', 'target_rank'] as const) {
      if (q[key] !== undefined && !method.weakColumns)
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `applies to method ${orList(methodNames().filter((m) => quantMethod(m).weakColumns))} only`,
        });
    }
    for (const key of ['awq_scale', 'awq_clip'] as const) {
      if (q[key] !== undefined && !takesAwq(q.method, key))
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `applies to method ${orList(methodNames().filter((m) => takesAwq(m, key)))} only`,
        });
    }
    for (const key of GWQ_ONLY) {
      if (q.method !== 'gwq' && q[key] !== undefined)
        ctx.addIssue({ code: 'custom', path: [key], message: 'applies to method gwq only' });
    }
    if (q.method !== 'owq' && q.sensitivity !== undefined)
      ctx.addIssue({ code: 'custom', path: ['sensitivity'], message: 'applies to method owq only' });
    if (q.awq_scale === true && usesGradients(q))
      ctx.addIssue({
        code: 'custom',
        path: ['awq_scale'],
        message: 'does not combine with sensitivity fisher (its Fisher scores are of the unscaled weights)',
      });
    if (!usesGradients(q) && q.grad_samples !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['grad_samples'],
        message: 'applies to method gwq, and owq with sensitivity fisher, only',
      });
    if (q.target_bit !== undefined && q.target_bit < q.wbits) {
      ctx.addIssue({ code: 'custom', path: ['target_bit'], message: `expected at least wbits (${q.wbits})` });
    }
  })
  .transform((q) => ({
    ...q,
    tuning: q.tuning ?? quantMethod(q.method).defaultTuning,
    outlier_ratio: q.outlier_ratio ?? 0.01,
    gwq_score: q.gwq_score ?? 'grad',
    gwq_quantizer: q.gwq_quantizer ?? 'rtn',
    sensitivity: q.sensitivity ?? 'hessian',
    grad_samples: q.grad_samples ?? 1,
  }));

export const modelSchema = section({
  /** A Hugging Face checkpoint directory, or a packed checkpoint directory written by `wct quantize`. */
  path: pathString(),
  /** Quantize the full-precision checkpoint first; ignored when `path` is already packed. */
  quantize: quantizeSchema.optional(),
});

/** LoRA adapters (methods lora / qlora only). Defaults: QLoRA's. */
export const loraSchema = section({
  rank: positiveInt().default(64),
  alpha: positive().default(16),
  dropout: fraction(false).default(0.1),
  /** 'all': every linear of each block (q, k, v, o and the MLP); or a list of names such as [self_attn.q_proj, mlp.down_proj]. */
  targets: z
    .union(
      [
        z.literal('all'),
        z
          .array(z.string().min(1), 'expected all or a list of linear names')
          .min(1, 'expected at least one linear name'),
      ],
      'expected all or a list of linear names',
    )
    .default('all'),
});

export const dataSchema = section({
  /** The training data file. */
  path: pathString(),
  /**
   * alpaca: a JSON list of {instruction, input, output}; jsonl-text: one {"text": ...} per line;
   * text: a plain text file; parquet: a Parquet table.
   */
  format: oneOf(['alpaca', 'jsonl-text', 'text', 'parquet']),
  /** Prompt template; loss on the response tokens only with alpaca. Default: alpaca for format alpaca, else none. */
  template: oneOf(['alpaca', 'none']).optional(),
  /** Tokens per example (longer examples are truncated). */
  max_length: positiveInt().default(512),
  /** Held-out examples for the validation loss: a fraction of the data or a count (one of). Default: fraction 0.05. */
  validation: section({
    fraction: fraction(true).optional(),
    count: positiveInt().optional(),
  })
    .superRefine(exclusive('data.validation'))
    .superRefine((v, ctx) => {
      if (v.fraction === undefined && v.count === undefined)
        ctx.addIssue({ code: 'custom', path: [], message: 'expected fraction or count' });
    })
    .default({ fraction: 0.05 }),
  /** Seed of the shuffle that splits train / validation and orders the examples. */
  shuffle_seed: seed().default(0),
  /** Text formats: concatenate documents and cut them into max_length windows. */
  packing: bool().default(false),
  /** Batch examples of similar length together (less padding). */
  group_by_length: bool().default(false),
})
  .superRefine((d, ctx) => {
    if (d.packing && d.format === 'alpaca')
      ctx.addIssue({ code: 'custom', path: ['packing'], message: 'applies to the text formats only, not alpaca' });
    if (d.packing && d.group_by_length)
      ctx.addIssue({
        code: 'custom',
        path: ['group_by_length'],
        message: 'packing and group_by_length exclude each other',
      });
    if (d.template === 'alpaca' && (d.format === 'text' || d.format === 'jsonl-text')) {
      ctx.addIssue({
        code: 'custom',
        path: ['template'],
        message: `the alpaca template needs instruction data, not format ${d.format}`,
      });
    }
  })
  .transform((d) => ({ ...d, template: d.template ?? (d.format === 'alpaca' ? 'alpaca' : 'none') }));

export const optimizerSchema = section({
  name: oneOf(['adamw']).default('adamw'),
  lr: positive().default(2e-4),
  betas: z.tuple([fraction(false), fraction(false)], 'expected a list of two numbers in [0, 1)').default([0.9, 0.999]),
  eps: positive().default(1e-8),
  /** Decoupled (AdamW) weight decay. */
  weight_decay: nonNegative().default(0),
});

export const scheduleSchema = section({
  /** The learning rate after warmup: constant, or decayed to 0 at the last step (cosine / linear). */
  kind: oneOf(['constant', 'cosine', 'linear']).default('constant'),
  /** Linear warmup over this fraction of the optimizer steps; excludes warmup_steps. Default 0.03. */
  warmup_ratio: fraction(false).optional(),
  /** Linear warmup over this many optimizer steps; excludes warmup_ratio. */
  warmup_steps: nonNegativeInt().optional(),
})
  .superRefine(exclusive('train.schedule'))
  .transform((s) => (s.warmup_ratio === undefined && s.warmup_steps === undefined ? { ...s, warmup_ratio: 0.03 } : s));

/**
 * What method wct trains (train.trainable): the weak columns of every packed linear, its sparse GWQ-style
 * outliers' values (a base quantized with outliers), or both.
 */
export const TRAINABLE_SETS = ['weak_columns', 'outliers', 'both'] as const;
export type TrainableSet = (typeof TRAINABLE_SETS)[number];

export const trainSchema = section({
  /** Optimizer steps; excludes epochs. */
  steps: positiveInt().optional(),
  /** Passes over the training examples (may be fractional); excludes steps. */
  epochs: positive().optional(),
  /** Examples per forward/backward pass. */
  micro_batch: positiveInt().default(1),
  /** Micro-batches per optimizer step (effective batch = micro_batch * grad_accum). */
  grad_accum: positiveInt().default(16),
  optimizer: optimizerSchema.prefault({}),
  schedule: scheduleSchema.prefault({}),
  /** Clip the global gradient norm to this value; 0 = no clipping. */
  max_grad_norm: nonNegative().default(0.3),
  /** Seed of the training batch order (reshuffled each epoch); data.shuffle_seed fixes the validation split. */
  seed: seed().default(0),
  /**
   * Gradient checkpointing: each decoder block's activations are recomputed in the backward instead of kept, so the
   * step holds every block's input and one block's activations (src/autograd/checkpoint.ts): the same gradients,
   * for one more forward per step. Not part of the recipe's hash (it changes no result).
   */
  gradient_checkpointing: bool().default(false),
  /** bf16 compute with fp32 accumulation (oneDNN) for the dense products (lm_head, linears left in full precision); packed products and the trainable weak columns stay fp32. */
  bf16: bool().default(false),
  /**
   * Method wct only: weak_columns (the default), outliers (the values of the base's sparse outliers; their
   * positions, the codes and the weak columns stay frozen) or both. Left out as the default, weak_columns is
   * undefined here (the hash of a recipe that does not set it is the one it had before the key existed).
   */
  trainable: oneOf(TRAINABLE_SETS).optional(),
})
  .superRefine(exclusive('train'))
  .superRefine((t, ctx) => {
    if (t.steps === undefined && t.epochs === undefined)
      ctx.addIssue({ code: 'custom', path: ['steps'], message: 'missing (set steps or epochs)' });
  })
  .transform((t) => (t.trainable === 'weak_columns' ? { ...t, trainable: undefined } : t));

export const evalSchema = section({
  /** Validation loss every this many optimizer steps (and after the last). */
  every: positiveInt().default(50),
  /** At most this many validation batches per evaluation (default: the whole validation set). */
  val_batches: positiveInt().optional(),
  /** Perplexity at the end of training on each: wikitext2 | c4 | a text path (docs/ARCHITECTURE.md section 3). */
  final: z
    .array(z.string('expected wikitext2, c4 or a path').min(1, 'expected wikitext2, c4 or a path'), 'expected a list')
    .default([]),
  /** Perplexity window length (default: max_position_embeddings). */
  seqlen: intAtLeast(2).optional(),
  /**
   * Zero-shot tasks (src/eval/zeroshot/) measured on the base before training and on the tuned model after it:
   * NAME (its shipped file) or NAME=PATH (PATH relative to the recipe; lambada needs one). Left out, no tasks (and
   * the hash of a recipe without them is the one it had before the keys existed, as for tasks_limit / tasks_bos).
   */
  tasks: z.array(z.string('expected a task name'), 'expected a list of task names').optional(),
  /** The first this many documents of each task (default: all). */
  tasks_limit: positiveInt().optional(),
  /** Encode the task requests with the tokenizer's BOS (lm-eval >= 0.4.9.2); default false (<= 0.4.9.1). */
  tasks_bos: bool().optional(),
})
  .superRefine((e, ctx) => {
    const seen = new Set<string>();
    (e.tasks ?? []).forEach((entry, i) => {
      const eq = entry.indexOf('=');
      const [name, file] = eq < 0 ? [entry, null] : [entry.slice(0, eq), entry.slice(eq + 1)];
      const spec = TASKS[name];
      const issue = (message: string) => ctx.addIssue({ code: 'custom', path: ['tasks', i], message });
      if (spec === undefined)
        issue(`unknown task ${JSON.stringify(name)}: expected ${orList(TASK_NAMES)} (NAME or NAME=PATH)`);
      else if (file === '') issue(`${name}=: expected a path after =`);
      else if (file === null && spec.defaultFile === null)
        issue(`${name} is not shipped: name its file as ${name}=PATH (the OpenAI JSON lines)`);
      else if (seen.has(name)) issue(`${name} is listed twice`);
      seen.add(name);
    });
    for (const key of ['tasks_limit', 'tasks_bos'] as const)
      if (e[key] !== undefined && (e.tasks ?? []).length === 0)
        ctx.addIssue({ code: 'custom', path: [key], message: 'applies with eval.tasks only' });
  })
  .transform(({ tasks, tasks_bos, ...e }) => ({
    ...e,
    ...(tasks === undefined || tasks.length === 0 ? {} : { tasks }),
    ...(tasks_bos === true ? { tasks_bos } : {}),
  }));

export const outputSchema = section({
  /** Run directory: checkpoints (weak-column deltas), the merged recipe, metrics.jsonl. */
  dir: pathString(),
  /** Save a checkpoint every this many optimizer steps (and after the last). */
  save_every: positiveInt().default(100),
  /** Checkpoints kept on disk (the oldest are deleted). */
  keep: positiveInt().default(2),
});

export const loggingSchema = section({
  /** TensorBoard event directory; null or false: none. */
  tensorboard: z
    .union([z.string().min(1), z.literal(false), z.null()], 'expected a directory, null or false')
    .default(null),
  /** Log scalars every this many optimizer steps. */
  every: positiveInt().default(10),
}).transform((l) => ({ ...l, tensorboard: l.tensorboard === false ? null : l.tensorboard }));

export const recipeSchema = section({
  model: modelSchema,
  /** What is trained: wct = the weak columns of every quantized linear; lora = adapters on the full-precision base; qlora = adapters on the packed base. */
  method: oneOf(TRAIN_METHODS).default('wct'),
  lora: loraSchema.optional(),
  data: dataSchema,
  train: trainSchema,
  eval: evalSchema.prefault({}),
  output: outputSchema,
  logging: loggingSchema.prefault({}),
  /** Where the model runs: cpu, gpu (WebGPU; a software adapter when there is no GPU) or auto (a GPU when present). Not part of the recipe's hash: a run may resume on another device. */
  device: oneOf(['cpu', 'gpu', 'auto'] as const).default('cpu'),
})
  .superRefine((r, ctx) => {
    if (r.train.gradient_checkpointing && r.lora !== undefined && r.lora.dropout > 0)
      ctx.addIssue({
        code: 'custom',
        path: ['train', 'gradient_checkpointing'],
        message: `needs lora.dropout 0 (the recomputed blocks would draw other dropout masks), got ${r.lora.dropout}`,
      });
    if (r.lora !== undefined && !LORA_METHODS.includes(r.method)) {
      ctx.addIssue({
        code: 'custom',
        path: ['lora'],
        message: `applies to method ${orList(LORA_METHODS)} only, not ${r.method}`,
      });
    }
  })
  // a LoRA method without a lora section trains with the defaults
  .transform((r) =>
    LORA_METHODS.includes(r.method) && r.lora === undefined ? { ...r, lora: loraSchema.parse({}) } : r,
  );

/** A validated recipe: defaults applied, paths absolute. */
export type Recipe = z.output<typeof recipeSchema>;
export type QuantizeRecipe = NonNullable<Recipe['model']['quantize']>;
