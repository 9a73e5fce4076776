#!/usr/bin/env node
/**
 * `wct-train RECIPE`: Weak Column Tuning from a recipe (recipes/*.yaml). Run the same command again to
 * resume from the newest checkpoint in the recipe's output directory.
 */
import yargs, { type ArgumentsCamelCase } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadRecipe } from '../recipe/load.js';
import { runRecipe, type RunSummary } from '../train/run-recipe.js';
import { TrainingDiverged } from '../train/trainer.js';
import { OptionError } from '../errors.js';
import { failWith, progressBar, runHandler } from './run.js';

interface TrainArgs {
  recipe: string;
  json: boolean;
}

function report(s: RunSummary): string {
  const t = s.train;
  const before = t.valLossBefore === null ? `(resumed at step ${t.resumedFrom})` : t.valLossBefore.toFixed(4);
  return [
    `${s.method}: trained ${t.steps} steps of ${s.data.train} examples (validation ${s.data.validation}); base ${s.base} (${s.baseBits.toFixed(3)} bits)`,
    `validation loss ${before} -> ${t.valLossAfter.toFixed(4)}; with the exported artifact reloaded: ${s.valLossReloaded.toFixed(4)}`,
    `trainable parameters ${t.trainableParams}, optimizer state ${(t.optimizerStateBytes / 1024).toFixed(1)} KiB, ` +
      `${t.stepSeconds.toFixed(2)} s/step (${t.tokensPerSecond.toFixed(0)} tokens/s), peak memory ${s.peakRssMiB.toFixed(0)} MiB, ${s.seconds.toFixed(0)} s`,
    `exported: ${s.artifact.path} (${(s.artifact.bytes / 1024).toFixed(1)} KiB)`,
    ...Object.entries(s.ppl).map(([d, p]) => `${d}: ppl ${(s.pplBefore[d] ?? NaN).toFixed(3)} -> ${p.toFixed(3)}`),
  ].join('\n');
}

await yargs(hideBin(process.argv))
  .scriptName('wct-train')
  .command(
    '$0 <recipe>',
    'Train from a recipe (method wct: weak columns; lora / qlora: LoRA adapters); rerun to resume',
    (y) =>
      y
        .positional('recipe', { type: 'string', demandOption: true, describe: 'Recipe YAML file (see recipes/)' })
        .option('json', { type: 'boolean', default: false, describe: 'Print the run summary as JSON on stdout' }),
    runHandler((args: ArgumentsCamelCase<TrainArgs>) => {
      const loaded = loadRecipe(args.recipe);
      const quantizeBar = progressBar('quantize');
      const trainBar = progressBar('train');
      let summary: RunSummary;
      try {
        summary = runRecipe(loaded, {
          onQuantize: (p) => quantizeBar.update(p.done, p.total, `block ${p.block} ${p.stage}`),
          onTrain: (p) => {
            quantizeBar.stop();
            trainBar.update(p.done, p.total, p.loss === null ? '' : `loss ${p.loss.toFixed(4)}`);
          },
          note: (line) => process.stderr.write(`${line}\n`),
        });
      } catch (e) {
        // a diverged run is the recipe's to fix (learning rate, clipping), as is any bad recipe value
        if (e instanceof TrainingDiverged) throw new OptionError(args.recipe, e.message);
        if (e instanceof OptionError) throw new OptionError(`${args.recipe}: ${e.option}`, e.problem);
        throw e;
      } finally {
        quantizeBar.stop();
        trainBar.stop();
      }
      process.stdout.write(args.json ? `${JSON.stringify(summary)}\n` : `${report(summary)}\n`);
    }),
  )
  .strict()
  .fail(failWith)
  .help()
  .alias('h', 'help')
  .version(false)
  .parseAsync();
