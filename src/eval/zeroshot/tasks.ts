/**
 * The zero-shot tasks as lm-evaluation-harness 0.4.x words them (0-shot), read from their shipped files:
 *   piqa           valid.jsonl {goal, sol1, sol2} + valid-labels.lst (one 0/1 per line): context
 *                  "Question: {goal}\nAnswer:", choices [sol1, sol2]
 *   arc_easy,      ARC-*.jsonl {question: {stem, choices: [{text, label}]}, answerKey}: context
 *   arc_challenge  "Question: {stem}\nAnswer:", choices the texts, gold the index of answerKey among the labels
 *   hellaswag      llama.cpp's preprocessed hellaswag_val.jsonl {ctx, endings, label}: context ctx as it is,
 *                  choices the endings as they are
 *   lambada        the OpenAI LAMBADA JSON lines {text}: context all words but the last joined by ' ', the
 *                  continuation ' ' + the last word (scored for greedy match and perplexity, not as choices)
 * A line of the wrong shape is an InputError naming the file, the line and the field.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../../errors.js';
import { checkRegularFile } from '../../io/input-file.js';
import { isObject } from '../../io/json-file.js';

/** A multiple-choice question: each choice is scored as the continuation ' ' + choice of the context. */
export interface ChoiceDoc {
  context: string;
  choices: string[];
  gold: number;
}

/** A LAMBADA document: the continuation ' ' + its last word. */
export interface ContinuationDoc {
  context: string;
  continuation: string;
}

export type TaskKind = 'choice' | 'continuation';

export interface TaskSpec<D> {
  name: string;
  kind: TaskKind;
  /** The task's file under the task directory (../shared/data/tasks by default); null when none is shipped. */
  defaultFile: string | null;
  /** The documents of `file` (its first `limit` when given). */
  load(file: string, limit?: number): D[];
}

/** One JSON object per non-empty line, with its line number; a bad line names the file and the line. */
function jsonLines(file: string, limit?: number): { value: Record<string, unknown>; at: string }[] {
  checkRegularFile(file);
  const out: { value: Record<string, unknown>; at: string }[] = [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < lines.length && (limit === undefined || out.length < limit); i++) {
    if (lines[i].trim() === '') continue;
    const at = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(lines[i]);
    } catch (e) {
      throw new InputError(at, 'line', `not JSON (${(e as Error).message})`);
    }
    if (!isObject(value)) throw new InputError(at, 'line', 'expected a JSON object');
    out.push({ value, at });
  }
  return out;
}

function text(value: unknown, at: string, field: string): string {
  if (typeof value !== 'string') throw new InputError(at, field, `expected a string, got ${JSON.stringify(value)}`);
  return value;
}

function question(context: string): string {
  return `Question: ${context}\nAnswer:`;
}

const piqa: TaskSpec<ChoiceDoc> = {
  name: 'piqa',
  kind: 'choice',
  defaultFile: 'piqa/valid.jsonl',
  load(file, limit) {
    const labelsFile = path.join(path.dirname(file), `${path.basename(file, '.jsonl')}-labels.lst`);
    checkRegularFile(labelsFile);
    const labels = fs.readFileSync(labelsFile, 'utf8').split('\n');
    const docs = jsonLines(file, limit);
    return docs.map(({ value, at }, i) => {
      const label = labels[i]?.trim();
      if (label !== '0' && label !== '1')
        throw new InputError(`${labelsFile}:${i + 1}`, 'label', `expected 0 or 1, got ${JSON.stringify(label ?? '')}`);
      return {
        context: question(text(value.goal, at, 'goal')),
        choices: [text(value.sol1, at, 'sol1'), text(value.sol2, at, 'sol2')],
        gold: Number(label),
      };
    });
  },
};

function arc(name: string, defaultFile: string): TaskSpec<ChoiceDoc> {
  return {
    name,
    kind: 'choice',
    defaultFile,
    load: (file, limit) =>
      jsonLines(file, limit).map(({ value, at }) => {
        const q = value.question;
        if (!isObject(q)) throw new InputError(at, 'question', 'expected an object {stem, choices}');
        if (!Array.isArray(q.choices) || q.choices.length < 2)
          throw new InputError(at, 'question.choices', 'expected a list of at least 2 {text, label}');
        const choices = q.choices.map((c: unknown, j: number) => {
          if (!isObject(c)) throw new InputError(at, `question.choices[${j}]`, 'expected an object {text, label}');
          return { text: text(c.text, at, `question.choices[${j}].text`), label: c.label };
        });
        const gold = choices.findIndex((c) => c.label === value.answerKey);
        if (gold < 0)
          throw new InputError(at, 'answerKey', `${JSON.stringify(value.answerKey)} is not one of the choices' labels`);
        return { context: question(text(q.stem, at, 'question.stem')), choices: choices.map((c) => c.text), gold };
      }),
  };
}

const hellaswag: TaskSpec<ChoiceDoc> = {
  name: 'hellaswag',
  kind: 'choice',
  defaultFile: 'hellaswag/hellaswag_val.jsonl',
  load: (file, limit) =>
    jsonLines(file, limit).map(({ value, at }) => {
      if (!Array.isArray(value.endings) || value.endings.length < 2)
        throw new InputError(at, 'endings', 'expected a list of at least 2 strings');
      const endings = value.endings.map((e: unknown, j: number) => text(e, at, `endings[${j}]`));
      const gold = value.label;
      if (!(Number.isInteger(gold) && (gold as number) >= 0 && (gold as number) < endings.length))
        throw new InputError(at, 'label', `expected an integer in [0, ${endings.length}), got ${JSON.stringify(gold)}`);
      return { context: text(value.ctx, at, 'ctx'), choices: endings, gold: gold as number };
    }),
};

const lambada: TaskSpec<ContinuationDoc> = {
  name: 'lambada',
  kind: 'continuation',
  defaultFile: null,
  load: (file, limit) =>
    jsonLines(file, limit).map(({ value, at }) => {
      const words = text(value.text, at, 'text').split(' ');
      if (words.length < 2) throw new InputError(at, 'text', 'expected at least two words');
      return { context: words.slice(0, -1).join(' '), continuation: ` ${words.at(-1)}` };
    }),
};

export const TASKS: Record<string, TaskSpec<ChoiceDoc> | TaskSpec<ContinuationDoc>> = {
  piqa,
  arc_easy: arc('arc_easy', 'arc/arc_easy_test.jsonl'),
  arc_challenge: arc('arc_challenge', 'arc/arc_challenge_test.jsonl'),
  hellaswag,
  lambada,
};

export const TASK_NAMES = Object.keys(TASKS);
