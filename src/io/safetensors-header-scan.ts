/**
 * What JSON.parse hides in a safetensors header: it keeps the last of two equal keys without a word, and it
 * turns `1048576.0` and `1e6` into the integer 1048576. This scan walks the raw text of a header JSON.parse
 * has already accepted (so it can skip what valid JSON guarantees) and reports the first object key that
 * repeats (keys compared after unescaping) or number literal that is not written as a plain non-negative
 * integer: the only numbers a header holds are shapes and offsets. It keeps a stack, not recursion, so no
 * nesting depth overflows it.
 */

/** A fault found in the text: `path` is the keys (and array indices) from the top-level object down. */
export interface ScanFault {
  path: (string | number)[];
  problem: string;
}

interface Frame {
  /** The keys seen so far in an object; null for an array. */
  keys: Set<string> | null;
  /** The current key (object) or index (array) inside this frame. */
  at: string | number;
  expectKey: boolean;
}

const INTEGER = /^[0-9]+$/;
const NUMBER_CHAR = /[-+.eE0-9]/;

/** The index just past the string literal opening at `start` (text[start] is '"'). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/** The first repeated key or non-integer number of `text` (valid JSON), or null. */
export function scanHeaderJson(text: string): ScanFault | null {
  const stack: Frame[] = [];
  const pathTo = (last: string | number) => [...stack.slice(0, -1).map((f) => f.at), last];
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    const top = stack[stack.length - 1];
    if (c === '{' || c === '[') {
      stack.push({ keys: c === '{' ? new Set() : null, at: c === '{' ? '' : 0, expectKey: c === '{' });
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      i++;
    } else if (c === ',') {
      if (top.keys === null) top.at = (top.at as number) + 1;
      else top.expectKey = true;
      i++;
    } else if (c === '"') {
      const end = stringEnd(text, i);
      if (top?.keys != null && top.expectKey) {
        const raw = text.slice(i, end);
        const key = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (top.keys.has(key)) return { path: pathTo(key), problem: 'appears twice (a key may appear only once)' };
        top.keys.add(key);
        top.at = key;
        top.expectKey = false;
      }
      i = end;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let end = i + 1;
      while (end < text.length && NUMBER_CHAR.test(text[end])) end++;
      const literal = text.slice(i, end);
      if (!INTEGER.test(literal))
        return { path: pathTo(top.at), problem: `${literal} is not written as a non-negative integer` };
      i = end;
    } else {
      i++; // whitespace, ':', and the letters of true / false / null
    }
  }
  return null;
}
