/**
 * A list of zero-shot tasks as a user names them (`piqa,arc_easy,lambada=PATH`): each task's file (its default under
 * the task directory, or the path given after `=`), then each task evaluated in turn (./evaluate-task.ts), with a
 * progress phase per task.
 */
import path from 'node:path';
import { OptionError } from '../../errors.js';
import { sharedDataDir } from '../../io/text-data.js';
import type { TextTokenizer } from '../../io/tokenizer.js';
import type { CausalLM } from '../../models/model.js';
import type { PhaseProgress } from '../../util/phases.js';
import { evaluateTask, type TaskResult } from './evaluate-task.js';
import { TASK_NAMES, TASKS } from './tasks.js';

export interface TaskFile {
  name: string;
  file: string;
}

/** The shipped task files (../shared/data/tasks, or $WCT_DATA_DIR/tasks). */
export const defaultTaskDir = (): string => path.join(sharedDataDir(), 'tasks');

/** `name` or `name=PATH` entries -> each task's file; an unknown task or a task with no file is an OptionError. */
export function resolveTasks(entries: readonly string[], taskDir: string, option = 'tasks'): TaskFile[] {
  return entries.map((entry) => {
    const [name, given] = entry.includes('=')
      ? [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]
      : [entry, ''];
    const spec = TASKS[name];
    if (spec === undefined)
      throw new OptionError(
        option,
        `unknown task ${JSON.stringify(name)}: expected ${TASK_NAMES.join(', ')} (NAME or NAME=PATH)`,
      );
    if (given !== '') return { name, file: path.resolve(given) };
    if (spec.defaultFile === null)
      throw new OptionError(option, `${name} is not shipped: name its file as ${name}=PATH (the OpenAI JSON lines)`);
    return { name, file: path.join(taskDir, spec.defaultFile) };
  });
}

export interface TasksOptions {
  bos: boolean;
  /** The first `limit` documents of each task. */
  limit?: number;
  /** Starts a progress phase for a task (its label names it). */
  phase?: (label: string) => PhaseProgress;
}

/** Evaluates every task in order; a task's file is read (and checked) just before it runs. */
export async function evaluateTasks(
  model: CausalLM,
  tokenizer: TextTokenizer,
  tasks: readonly TaskFile[],
  o: TasksOptions,
): Promise<TaskResult[]> {
  const results: TaskResult[] = [];
  for (const { name, file } of tasks) {
    const spec = TASKS[name];
    const docs = spec.load(file, o.limit);
    const phase = o.phase?.(`${name} (${o.bos ? 'with' : 'no'} BOS)`);
    const { result } = await evaluateTask(model, tokenizer, spec, docs, {
      bos: o.bos,
      onProgress: (done, total) => phase?.update(done, total, 'documents'),
    });
    phase?.end(`${result.n} documents`, taskSummary(result));
    results.push(result);
  }
  return results;
}

/** `acc 0.5071 ± 0.0117, acc_norm 0.4951 ± 0.0117` (LAMBADA: acc and perplexity). */
export function taskSummary(r: TaskResult): string {
  const pm = (v: number, e: number) => `${v.toFixed(4)} ± ${e.toFixed(4)}`;
  const second =
    r.acc_norm !== undefined
      ? `acc_norm ${pm(r.acc_norm, r.acc_norm_stderr!)}`
      : `perplexity ${r.perplexity!.toFixed(3)}${r.empty_continuations ? ` (${r.empty_continuations} empty continuations)` : ''}`;
  return `acc ${pm(r.acc, r.acc_stderr)}, ${second}`;
}
