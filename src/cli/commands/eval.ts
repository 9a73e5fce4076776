/**
 * `wct eval`: perplexity with the GPTQ protocol (docs/ARCHITECTURE.md section 3) and/or zero-shot tasks scored as
 * lm-evaluation-harness scores them (src/eval/zeroshot/).
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { evaluateData } from '../../eval/evaluate-data.js';
import type { TaskResult } from '../../eval/zeroshot/evaluate-task.js';
import { defaultTaskDir, evaluateTasks, resolveTasks, taskSummary } from '../../eval/zeroshot/run-tasks.js';
import { TASK_NAMES } from '../../eval/zeroshot/tasks.js';
import { addModelOptions, loadModelDir } from '../model-dir.js';
import { dataSetName } from '../../util/data-set-name.js';
import { Terminal } from '../progress.js';
import { addNumberOptions, checkNumberOptions, intOption, type NumberOption } from '../number-options.js';
import { runHandler } from '../run.js';
import { addDeviceOption, withDevice } from '../device-option.js';
import type { DeviceChoice } from '../../gpu/device.js';
import type { PerplexityResult } from '../../eval/perplexity.js';

interface EvalArgs {
  model: string;
  deltas?: string;
  adapter?: string;
  data?: string;
  tasks?: string;
  taskDir?: string;
  bos: boolean;
  limit?: number;
  seqlen?: number;
  batchSize?: number;
  maxChunks?: number;
  json: boolean;
  device: DeviceChoice;
}

// --seqlen's upper bound is the model's positions (src/eval/evaluate-data.ts)
const NUMBERS: Record<string, NumberOption> = {
  seqlen: intOption('Chunk length (default: max_position_embeddings)', 2),
  'batch-size': intOption('Chunks per forward pass (default: by memory)', 1),
  'max-chunks': intOption('Perplexity over only the first N chunks (default: every whole chunk; C4: 256)', 1),
  limit: intOption('Zero-shot: the first N documents of each task (default: all)', 1),
};

/** ` with <deltas or adapter>` when one is loaded. */
const tunedBy = (args: EvalArgs): string => (args.deltas || args.adapter ? ` with ${args.deltas ?? args.adapter}` : '');

function perplexityLine(args: EvalArgs, data: string, r: PerplexityResult): string {
  const tuned = tunedBy(args);
  return `${dataSetName(data)} perplexity of ${args.model}${tuned} (${data}, ${r.chunks} chunks of ${r.seqlen} tokens): ${r.ppl.toFixed(3)}`;
}

function taskLine(args: EvalArgs, r: TaskResult): string {
  const tuned = tunedBy(args);
  return `${r.task} of ${args.model}${tuned} (${r.n} documents, 0-shot, ${r.bos ? 'with' : 'no'} BOS): ${taskSummary(r)}`;
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe:
    'Perplexity on WikiText-2, C4 or a local text file, and/or zero-shot accuracy (PIQA, ARC, HellaSwag, LAMBADA)',
  builder: (y: Argv) =>
    addDeviceOption(addModelOptions(addNumberOptions(y, NUMBERS)))
      .option('data', {
        type: 'string',
        describe: 'Perplexity on wikitext2 | c4 | path to .txt/.raw/.jsonl (default: wikitext2 when no --tasks)',
      })
      .option('tasks', {
        type: 'string',
        describe: `Zero-shot tasks, comma-separated: ${TASK_NAMES.join(', ')}; NAME=PATH reads that file (lambada needs one)`,
      })
      .option('task-dir', { type: 'string', describe: 'Directory of the task files (default: ../shared/data/tasks)' })
      .option('bos', {
        type: 'boolean',
        default: false,
        describe: "Zero-shot: encode with the tokenizer's BOS (lm-eval >= 0.4.9.2); default without (<= 0.4.9.1)",
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe:
          'Print {"ppl","tokens","chunks","seqlen","peak_rss_mib"} on stdout, with "tasks" (per task n, acc, acc_stderr, acc_norm, acc_norm_stderr, perplexity), "bos" and "model" for --tasks',
      }) as unknown as Argv<EvalArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<EvalArgs>) => {
    checkNumberOptions(args, NUMBERS);
    const taskList = args.tasks === undefined ? [] : args.tasks.split(',').filter((t) => t !== '');
    const tasks = resolveTasks(taskList, args.taskDir ?? defaultTaskDir(), '--tasks');
    const data = args.data ?? (tasks.length === 0 ? 'wikitext2' : undefined);
    const { model, tokenizer } = loadModelDir(args.model, args.deltas, args.adapter);
    const terminal = new Terminal();
    const { ppl, results } = await withDevice(
      args.device,
      (line) => terminal.log(line),
      async (ctx) => {
        await model.toDevice(ctx);
        const ppl =
          data === undefined
            ? null
            : await evaluateData(model, tokenizer, data, {
                seqlen: args.seqlen,
                batchSize: args.batchSize,
                maxChunks: args.maxChunks,
                phase: terminal.start(`evaluation ${dataSetName(data)}`),
              });
        const results = await evaluateTasks(model, tokenizer, tasks, {
          bos: args.bos,
          limit: args.limit,
          phase: (label) => terminal.start(label),
        });
        return { ppl, results };
      },
    );
    const peakRssMiB = process.resourceUsage().maxRSS / 1024;
    if (args.json) {
      const summary = {
        ...(ppl === null ? {} : { ppl: ppl.ppl, tokens: ppl.tokens, chunks: ppl.chunks, seqlen: ppl.seqlen }),
        ...(tasks.length === 0
          ? {}
          : {
              tasks: Object.fromEntries(results.map(({ task, ...r }) => [task, r])),
              bos: args.bos,
              model: `${args.model}${args.deltas ? ` + deltas ${args.deltas}` : ''}${args.adapter ? ` + adapter ${args.adapter}` : ''}`,
            }),
        peak_rss_mib: peakRssMiB,
      };
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return;
    }
    const lines = [
      ...(ppl === null ? [] : [perplexityLine(args, data!, ppl)]),
      ...results.map((r) => taskLine(args, r)),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }),
};
