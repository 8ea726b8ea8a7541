// The small JSON-path subset an http gate matches answers with: `$` followed by member names (`.status`,
// `['build-info']`) and array indexes (`[0]`), e.g. `$.checks[0].state`. No wildcards, filters or recursive
// descent: a gate compares one value. Dependency-free; the schema validates paths with it at apply time and the
// http gate activity evaluates them.

export type JsonPathSegment = string | number;

export const JSON_PATH_RULES =
  "A JSON path of the form `$.name`, `$.a.b`, `$.items[0].state` or `$['key with-dashes']`: `$` then member names " +
  "(`.name` with letters, digits, `_` and `-`, or `['any name']`) and array indexes (`[0]`). No wildcards or filters.";

/** The path's segments, or a problem in words naming the character where it goes wrong. */
export function parseJsonPath(text: string): { segments: JsonPathSegment[] } | { problem: string } {
  if (!text.startsWith('$')) return { problem: 'must start with "$"' };
  const segments: JsonPathSegment[] = [];
  let i = 1;
  while (i < text.length) {
    const rest = text.slice(i);
    const member = /^\.([A-Za-z_][A-Za-z0-9_-]*)/.exec(rest);
    const index = /^\[(0|[1-9][0-9]{0,8})\]/.exec(rest);
    const quoted = /^\['((?:[^'\\]|\\.)*)'\]/.exec(rest);
    if (member) {
      segments.push(member[1]);
      i += member[0].length;
    } else if (index) {
      segments.push(Number(index[1]));
      i += index[0].length;
    } else if (quoted) {
      segments.push(quoted[1].replace(/\\(.)/g, '$1'));
      i += quoted[0].length;
    } else {
      return {
        problem:
          `cannot read the path at character ${i + 1} ("${rest.slice(0, 10)}"): after "$", only .name, ` +
          "['name'] and [0] steps are supported (no wildcards, filters or ..)",
      };
    }
  }
  return { segments };
}

/** The value at `segments` in `document`, or `found: false` when a member or index is not there. */
export function valueAtJsonPath(
  document: unknown,
  segments: readonly JsonPathSegment[],
): { found: true; value: unknown } | { found: false } {
  let value = document;
  for (const segment of segments) {
    if (typeof segment === 'number') {
      if (!Array.isArray(value) || segment >= value.length) return { found: false };
      value = value[segment];
    } else {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return { found: false };
      if (!Object.prototype.hasOwnProperty.call(value, segment)) return { found: false };
      value = (value as Record<string, unknown>)[segment];
    }
  }
  return { found: true, value };
}
