/** `wct compare RUN_DIR...`: training runs (wct-train output directories) side by side, with a loss chart. */
import path from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { claimOutputDir } from '../../io/output-dir.js';
import { compareRuns, markdownTable, writeComparison } from '../../report/compare.js';
import { runHandler } from '../run.js';

interface CompareArgs {
  runs: string[];
  out: string;
  json: boolean;
}

export const compareCommand: CommandModule<object, CompareArgs> = {
  command: 'compare <runs..>',
  describe: 'Compare training runs: compare.md, compare.json, loss.svg and loss.png',
  builder: (y: Argv) =>
    y
      .positional('runs', { type: 'string', array: true, describe: 'Run directories written by wct-train' })
      .option('out', { type: 'string', default: 'compare', describe: 'Output directory for the report' })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print compare.json on stdout',
      }) as unknown as Argv<CompareArgs>,
  handler: runHandler((args: ArgumentsCamelCase<CompareArgs>) => {
    const comparison = compareRuns(args.runs);
    const out = claimOutputDir(args.out, {
      option: '--out',
      command: 'wct compare',
      inputs: args.runs,
      mode: 'update',
      note: (line) => process.stderr.write(`${line}\n`),
    });
    const files = writeComparison(comparison, args.out);
    out.finish();
    if (args.json) {
      process.stdout.write(`${JSON.stringify(comparison)}\n`);
      return;
    }
    process.stdout.write(
      `${markdownTable(comparison)}\n\nwrote ${files.map((f) => path.relative('.', f) || f).join(', ')}\n`,
    );
  }),
};
