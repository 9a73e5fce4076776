#!/usr/bin/env node
/**
 * `wct-train RECIPE`: Weak Column Tuning from a recipe (recipes/*.yaml). Run the same command again to
 * resume from the newest checkpoint in the recipe's output directory.
 */
import yargs, { type ArgumentsCamelCase } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadRecipe } from '../recipe/load.js';
import { runRecipe, type RunSummary, type TaskScores } from '../train/run-recipe.js';
import { TrainingDiverged } from '../train/trainer.js';
import { OptionError } from '../errors.js';
import { dataSetName } from '../util/data-set-name.js';
import { Terminal } from './progress.js';
import { failWith, runHandler } from './run.js';
import { addRuntimeOptions } from './runtime-options.js';

interface TrainArgs {
  /** Optional to yargs so that `wct-train --version` needs none; the handler demands it. */
  recipe?: string;
  json: boolean;
}

/** One eval.final line: which data, what the figure measures, and each model's figure, named. */
function perplexityLine(s: RunSummary, data: string, tuned: number): string {
  const quantized = s.baseBits < 32;
  const fp = s.pplFullPrecision[data];
  const figures = [
    ...(quantized && fp !== undefined ? [`full-precision ${fp.toFixed(3)}`] : []),
    `${quantized ? `quantized base (${s.baseBits.toFixed(2)} bits)` : 'full-precision base'} ${(s.pplBefore[data] ?? NaN).toFixed(3)} -> tuned ${tuned.toFixed(3)}`,
  ];
  return `${dataSetName(data)} perplexity (held-out text, not the ${s.data.name} training data: measures forgetting): ${figures.join(', ')}`;
}

/** `acc 0.5500 -> 0.6000` (± the tuned figure's stderr). */
function beforeAfter(name: string, before: number | undefined, after: number, stderr: number): string {
  return `${name} ${(before ?? NaN).toFixed(4)} -> ${after.toFixed(4)} (± ${stderr.toFixed(4)})`;
}

/** One eval.tasks line: the task, its documents, how they were encoded, and base -> tuned figures. */
function taskLine(s: RunSummary, task: string, after: TaskScores): string {
  const before: Partial<TaskScores> = s.zeroShot?.before[task] ?? {};
  const base = s.baseBits < 32 ? 'quantized base' : 'full-precision base';
  const figures = [
    beforeAfter('acc', before.acc, after.acc, after.acc_stderr),
    ...(after.acc_norm === undefined
      ? []
      : [beforeAfter('acc_norm', before.acc_norm, after.acc_norm, after.acc_norm_stderr!)]),
    ...(after.perplexity === undefined
      ? []
      : [`perplexity ${(before.perplexity ?? NaN).toFixed(3)} -> ${after.perplexity.toFixed(3)}`]),
  ];
  return `${task} zero-shot (${after.n} documents, ${after.bos ? 'with' : 'no'} BOS), ${base} -> tuned: ${figures.join(', ')}`;
}

function report(s: RunSummary): string {
  const t = s.train;
  const before = t.valLossBefore === null ? `(resumed at step ${t.resumedFrom})` : t.valLossBefore.toFixed(4);
  return [
    `${s.method}${s.trainable === undefined ? '' : ` (${s.trainable.replace('_', ' ')})`}: trained ${t.steps} steps of ${s.data.train} ${s.data.name} examples (validation ${s.data.validation}); base ${s.base} (${s.baseBits.toFixed(3)} bits)`,
    `${s.data.name} validation loss (response tokens): ${before} -> ${t.valLossAfter.toFixed(4)}; with the exported artifact reloaded: ${s.valLossReloaded.toFixed(4)}`,
    `trainable parameters ${t.trainableParams}, optimizer state ${(t.optimizerStateBytes / 1024).toFixed(1)} KiB, ` +
      `${t.stepSeconds.toFixed(2)} s/step (${t.tokensPerSecond.toFixed(0)} tokens/s), peak memory ${s.peakRssMiB.toFixed(0)} MiB, ${s.seconds.toFixed(0)} s`,
    `exported: ${s.artifact.path} (${(s.artifact.bytes / 1024).toFixed(1)} KiB)`,
    ...Object.entries(s.ppl).map(([d, p]) => perplexityLine(s, d, p)),
    ...Object.entries(s.zeroShot?.after ?? {}).map(([task, r]) => taskLine(s, task, r)),
  ].join('\n');
}

await addRuntimeOptions(yargs(hideBin(process.argv)).scriptName('wct-train'), 'wct-train')
  .command(
    '$0 [recipe]',
    'Train from a recipe (method wct: weak columns and/or GWQ-style outliers; lora / qlora: LoRA adapters); rerun to resume',
    (y) =>
      y
        .positional('recipe', { type: 'string', describe: 'Recipe YAML file (see recipes/)' })
        .option('json', { type: 'boolean', default: false, describe: 'Print the run summary as JSON on stdout' }),
    runHandler(async (args: ArgumentsCamelCase<TrainArgs>) => {
      if (args.recipe === undefined) throw new OptionError('recipe', 'missing: name a recipe YAML file (see recipes/)');
      const loaded = loadRecipe(args.recipe);
      const terminal = new Terminal();
      let summary: RunSummary;
      try {
        summary = await runRecipe(loaded, { phases: terminal, note: (line) => terminal.log(line) });
      } catch (e) {
        // a diverged run is the recipe's to fix (learning rate, clipping), as is any bad recipe value
        if (e instanceof TrainingDiverged) throw new OptionError(args.recipe, e.message);
        if (e instanceof OptionError) throw new OptionError(`${args.recipe}: ${e.option}`, e.problem);
        throw e;
      } finally {
        terminal.close();
      }
      process.stdout.write(args.json ? `${JSON.stringify(summary)}\n` : `${report(summary)}\n`);
    }),
  )
  .strict()
  .fail(failWith)
  .help()
  .alias('h', 'help')
  .parseAsync();
