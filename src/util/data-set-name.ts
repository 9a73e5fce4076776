/**
 * The short name a report gives a data set: the built-in names as they are (wikitext2, c4), a file by its name
 * less the extension (`.../alpaca-2k.json` -> alpaca-2k), so that summaries say which data each figure is on.
 */
import path from 'node:path';

export function dataSetName(data: string): string {
  const base = path.basename(data);
  const ext = path.extname(base);
  return ext === '' || ext === base ? base : base.slice(0, -ext.length);
}
