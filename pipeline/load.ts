// Loading a pipeline file: YAML or JSON text → a validated Pipeline, or every mistake at once, each with its path.
// The HTTP API, the CLI and the stack all load pipelines through here, so users see the same messages everywhere.
import { readFile } from 'node:fs/promises';
import { LineCounter, parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import { PipelineSchema, type Pipeline } from './schema';

/** One mistake: `path` names the field (`spec.stages[1].render.to`), `message` says what is wrong with it. */
export interface SpecError {
  path: string;
  message: string;
}

export type LoadResult = { ok: true; pipeline: Pipeline } | { ok: false; errors: SpecError[] };

/** The path reported for a mistake in the document as a whole (not an object, wrong top-level type). */
export const ROOT_PATH = '(root)';

/**
 * The rules `validatePipeline` checks across fields, on top of the schema. Listed in the generated reference
 * (docs/reference/pipeline.md); keep in step with `semanticErrors` below.
 */
export const PIPELINE_RULES: readonly string[] = [
  'Stage names are unique; artifact names are unique; subscriber names (`spec.notify`) are unique.',
  '`after` names other stages of the pipeline, never the stage itself, and `after` has no cycles.',
  '`approval.required` is at most the number of different `approvers`.',
  'Every stage that renders into a branch (`branch`, `pull-request` into a branch) has its own: no two stages have the same `render.to`, and none renders to `spec.repo.branch`.',
  'No branch (a `render.to` or `spec.repo.branch`) is a folder of another, such as `env` and `env/dev`: git cannot hold both.',
  'Every stage that is a directory (`directory`, `pull-request` into a directory) has its own: no two stages share a directory, and none is inside another, such as `envs/prod` and `envs/prod/eu`.',
];

// ---------------------------------------------------------------------------------------------------------------
// Paths

/** `["spec", "stages", 1, "render", "to"]` → `spec.stages[1].render.to`; `root` prefixes it (`artifacts.guestbook`). */
export function formatPath(segments: readonly PropertyKey[], root?: string): string {
  let out = root ?? '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$-]*$/.test(segment))
      out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out === '' ? ROOT_PATH : out;
}

export function formatSpecErrors(errors: readonly SpecError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Schema errors

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case 'number':
      return `the number ${value}`;
    case 'boolean':
      return `${value}`;
    case 'object':
      return 'a mapping';
    default:
      return typeof value;
  }
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping (field: value)',
  array: 'a list',
};

const quoteAll = (values: readonly unknown[]): string => values.map((v) => JSON.stringify(v)).join(', ');

/**
 * Messages for zod's built-in checks, written for someone editing YAML. Applied per parse, so messages written
 * into the schema itself win over these.
 */
const errorMessages: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${EXPECTED[issue.expected] ?? issue.expected}, not ${describeValue(issue.input)}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${JSON.stringify(issue.values[0])}`
        : `must be one of ${quoteAll(issue.values)}, not ${describeValue(issue.input)}`;
    case 'too_small': {
      const min = String(issue.minimum);
      if (issue.origin === 'array') return `must have at least ${min} item${min === '1' ? '' : 's'}`;
      if (issue.origin === 'string') return min === '1' ? 'must not be empty' : `must be at least ${min} characters`;
      return `must be at least ${min}`;
    }
    case 'too_big': {
      const max = String(issue.maximum);
      if (issue.origin === 'array') return `must have at most ${max} items`;
      if (issue.origin === 'string') return `must be at most ${max} characters`;
      return `must be at most ${max}`;
    }
    case 'invalid_format':
      return issue.pattern ? `must match the pattern ${issue.pattern}` : `must be a valid ${issue.format}`;
    case 'invalid_union':
      return 'does not match any of the allowed forms';
    default:
      return undefined;
  }
};

function isMissing(input: unknown, path: readonly PropertyKey[]): boolean {
  let value: unknown = input;
  for (let i = 0; i < path.length; i++) {
    const key = path[i];
    if (Array.isArray(value) && typeof key === 'number') value = value[key];
    else if (isRecord(value) && typeof key === 'string') {
      if (!Object.prototype.hasOwnProperty.call(value, key)) return i === path.length - 1;
      value = value[key];
    } else return false;
  }
  return value === undefined;
}

/** A mistake before its path is formatted: the path as segments, so errors can be merged and put in order. */
interface Located {
  at: PropertyKey[];
  message: string;
}

function locateZodIssues(error: z.ZodError, input: unknown): Located[] {
  return error.issues.flatMap((issue): Located[] => {
    const at = issue.path as PropertyKey[];
    if (issue.code === 'unrecognized_keys')
      return issue.keys.map((key) => ({ at: [...at, key], message: 'unknown field' }));
    if ((issue.code === 'invalid_type' || issue.code === 'invalid_value') && isMissing(input, at))
      return [{ at, message: 'Required' }];
    return [{ at, message: issue.message }];
  });
}

/** Where a path's field sits in the document, so errors read from top to bottom like the file. */
function documentPosition(input: unknown, at: readonly PropertyKey[]): number[] {
  const position: number[] = [];
  let value: unknown = input;
  for (const key of at) {
    if (Array.isArray(value) && typeof key === 'number') {
      position.push(key);
      value = value[key];
    } else if (isRecord(value) && typeof key === 'string' && Object.prototype.hasOwnProperty.call(value, key)) {
      position.push(Object.keys(value).indexOf(key));
      value = value[key];
    } else {
      // Missing fields come after the fields that are there, in schema order (the sort is stable).
      position.push(Number.MAX_SAFE_INTEGER);
      value = undefined;
    }
  }
  return position;
}

function comparePositions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Formats located mistakes: in document order, one error per path (several problems with a field are joined). */
function toSpecErrors(located: Located[], input: unknown): SpecError[] {
  const byPath = new Map<string, { position: number[]; messages: string[] }>();
  for (const { at, message } of located) {
    const path = formatPath(at);
    const entry = byPath.get(path) ?? { position: documentPosition(input, at), messages: [] };
    if (!entry.messages.includes(message)) entry.messages.push(message);
    byPath.set(path, entry);
  }
  return [...byPath]
    .sort(([, a], [, b]) => comparePositions(a.position, b.position))
    .map(([path, { messages }]) => ({ path, message: messages.join('; ') }));
}

/**
 * Turns a zod error into SpecErrors, the shape every Ferry edge reports: a missing field says `Required`, each
 * unknown key is its own error at its own path, errors come in document order.
 */
export function specErrorsFromZod(error: z.ZodError, input: unknown): SpecError[] {
  return toSpecErrors(locateZodIssues(error, input), input);
}

// ---------------------------------------------------------------------------------------------------------------
// Rules across fields

interface RawStage {
  index: number;
  name?: string;
  after: Array<{ index: number; name: string }>;
  to?: string;
  /** What `to` names: a branch, or a directory on spec.repo.branch. */
  layout: 'branch' | 'directory';
  required?: number;
  approvers?: string[];
}

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** Reads the stages out of an unvalidated document, keeping only the fields that have the right type. */
function rawStages(spec: Record<string, unknown>): RawStage[] {
  if (!Array.isArray(spec.stages)) return [];
  return spec.stages.map((stage: unknown, index): RawStage => {
    if (!isRecord(stage)) return { index, after: [], layout: 'branch' };
    const after = Array.isArray(stage.after)
      ? stage.after.flatMap((name: unknown, i) => (typeof name === 'string' ? [{ index: i, name }] : []))
      : [];
    const render = isRecord(stage.render) ? stage.render : {};
    const pullRequest = isRecord(render.pullRequest) ? render.pullRequest : {};
    const layout =
      render.strategy === 'directory' || (render.strategy === 'pull-request' && pullRequest.target === 'directory')
        ? 'directory'
        : 'branch';
    const raw: RawStage = { index, name: str(stage.name), after, to: str(render.to), layout };
    if (isRecord(stage.approval)) {
      const { required, approvers } = stage.approval;
      // An absent `required` is the schema's default, 1.
      if (required === undefined) raw.required = 1;
      else if (typeof required === 'number' && Number.isInteger(required)) raw.required = required;
      if (Array.isArray(approvers)) raw.approvers = approvers.filter((a): a is string => typeof a === 'string');
    }
    return raw;
  });
}

function duplicateNames(items: unknown, what: string, list: 'stages' | 'artifacts' | 'notify'): Located[] {
  if (!Array.isArray(items)) return [];
  const errors: Located[] = [];
  const first = new Map<string, number>();
  items.forEach((item: unknown, index) => {
    const name = isRecord(item) ? str(item.name) : undefined;
    if (name === undefined) return;
    const seen = first.get(name);
    if (seen === undefined) first.set(name, index);
    else {
      errors.push({
        at: ['spec', list, index, 'name'],
        message: `duplicate ${what} name "${name}" (also spec.${list}[${seen}].name)`,
      });
    }
  });
  return errors;
}

/** Cycles in `after`, one error per strongly connected group of stages, pointing at the entry that closes it. */
function afterCycles(stages: RawStage[]): Located[] {
  const byName = new Map<string, RawStage>();
  for (const stage of stages) if (stage.name !== undefined && !byName.has(stage.name)) byName.set(stage.name, stage);
  const edges = (stage: RawStage) => stage.after.filter((a) => a.name !== stage.name && byName.has(a.name));

  // Tarjan's strongly connected components (recursive: pipelines have tens of stages, not thousands).
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  const connect = (name: string) => {
    index.set(name, counter);
    low.set(name, counter);
    counter++;
    stack.push(name);
    onStack.add(name);
    for (const edge of edges(byName.get(name) as RawStage)) {
      if (!index.has(edge.name)) {
        connect(edge.name);
        low.set(name, Math.min(low.get(name) as number, low.get(edge.name) as number));
      } else if (onStack.has(edge.name)) {
        low.set(name, Math.min(low.get(name) as number, index.get(edge.name) as number));
      }
    }
    if (low.get(name) === index.get(name)) {
      const group: string[] = [];
      let member: string;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        group.push(member);
      } while (member !== name);
      if (group.length > 1) groups.push(group);
    }
  };
  for (const name of byName.keys()) if (!index.has(name)) connect(name);

  const errors: Located[] = [];
  for (const group of groups) {
    const members = new Set(group);
    const start = [...members].map((n) => byName.get(n) as RawStage).sort((a, b) => a.index - b.index)[0];
    // A path from start back to start inside the group, found breadth-first so it is the shortest.
    const previous = new Map<string, string>();
    const queue = [start.name as string];
    let closing: string | undefined;
    while (queue.length > 0 && closing === undefined) {
      const current = queue.shift() as string;
      for (const edge of edges(byName.get(current) as RawStage)) {
        if (!members.has(edge.name)) continue;
        if (edge.name === start.name) {
          closing = current;
          break;
        }
        if (!previous.has(edge.name)) {
          previous.set(edge.name, current);
          queue.push(edge.name);
        }
      }
    }
    const cycle = [start.name as string];
    for (let n = closing as string; n !== start.name; n = previous.get(n) as string) cycle.splice(1, 0, n);
    const entry = start.after.find((a) => a.name === cycle[1]) as { index: number };
    const chain = cycle.map((n, i) => (i === 0 ? `"${n}" comes after` : `"${n}", which comes after`)).join(' ');
    errors.push({
      at: ['spec', 'stages', start.index, 'after', entry.index],
      message: `cycle in "after": ${chain} "${start.name}"; freight could never reach these stages`,
    });
  }
  return errors;
}

/** Checks across fields, on the raw document, so they are reported together with schema errors. */
function semanticErrors(input: unknown): Located[] {
  if (!isRecord(input) || !isRecord(input.spec)) return [];
  const spec = input.spec;
  const stages = rawStages(spec);
  const errors: Located[] = [
    ...duplicateNames(spec.stages, 'stage', 'stages'),
    ...duplicateNames(spec.artifacts, 'artifact', 'artifacts'),
    ...duplicateNames(spec.notify, 'subscriber', 'notify'),
  ];

  const names = stages.flatMap((s) => (s.name === undefined ? [] : [s.name]));
  const known = new Set(names);
  for (const stage of stages) {
    for (const entry of stage.after) {
      const at = ['spec', 'stages', stage.index, 'after', entry.index];
      if (entry.name === stage.name) errors.push({ at, message: 'a stage cannot come after itself' });
      else if (!known.has(entry.name)) {
        errors.push({ at, message: `unknown stage "${entry.name}"; the stages are ${quoteAll([...known])}` });
      }
    }
  }
  errors.push(...afterCycles(stages));

  for (const stage of stages) {
    if (stage.required === undefined || stage.approvers === undefined || stage.approvers.length === 0) continue;
    const distinct = new Set(stage.approvers).size;
    if (stage.required > distinct) {
      errors.push({
        at: ['spec', 'stages', stage.index, 'approval', 'required'],
        message: `requires ${stage.required} approvals but only ${distinct} different approver${distinct === 1 ? ' is' : 's are'} listed`,
      });
    }
  }

  const repo = isRecord(spec.repo) ? spec.repo : {};
  const sourceBranch = repo.branch === undefined ? 'main' : str(repo.branch);
  const branches: Array<{ branch: string; path: string; owner: string }> = [];
  if (sourceBranch !== undefined)
    branches.push({ branch: sourceBranch, path: 'spec.repo.branch', owner: 'the sources' });
  const directories: Array<{ dir: string; path: string; owner: string }> = [];
  for (const stage of stages) {
    if (stage.to === undefined || stage.layout !== 'directory') continue;
    const at = ['spec', 'stages', stage.index, 'render', 'to'];
    const dir = stage.to.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
    const overlap = directories.find(
      (d) => d.dir === dir || d.dir.startsWith(`${dir}/`) || dir.startsWith(`${d.dir}/`),
    );
    if (overlap) {
      errors.push({
        at,
        message:
          overlap.dir === dir
            ? `directory "${dir}" is already the directory of ${overlap.owner} (${overlap.path}); each stage needs its own`
            : `directory "${dir}" and "${overlap.dir}" (${overlap.path}) are inside one another; each stage needs a directory of its own`,
      });
      continue;
    }
    directories.push({ dir, path: formatPath(at), owner: `stage "${stage.name ?? stage.index}"` });
  }
  for (const stage of stages) {
    if (stage.to === undefined || stage.layout !== 'branch') continue;
    const at = ['spec', 'stages', stage.index, 'render', 'to'];
    const path = formatPath(at);
    if (stage.to === sourceBranch) {
      errors.push({
        at,
        message: `must differ from spec.repo.branch ("${sourceBranch}"): Ferry owns the stage's branch, and the sources live on spec.repo.branch`,
      });
      continue;
    }
    const same = branches.find((b) => b.branch === stage.to);
    if (same) {
      errors.push({
        at,
        message: `branch "${stage.to}" is already the branch of ${same.owner} (${same.path}); each stage needs its own branch`,
      });
      continue;
    }
    const nested = branches.find(
      (b) => b.branch.startsWith(`${stage.to}/`) || (stage.to as string).startsWith(`${b.branch}/`),
    );
    if (nested) {
      errors.push({
        at,
        message: `branch "${stage.to}" cannot exist next to "${nested.branch}" (${nested.path}): in git one would be a folder of the other`,
      });
      continue;
    }
    branches.push({ branch: stage.to, path, owner: `stage "${stage.name ?? stage.index}"` });
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------------------------
// Entry points

/** Validates a parsed document (from YAML, JSON or an HTTP body): the schema, then the rules across fields. */
export function validatePipeline(value: unknown): LoadResult {
  const parsed = PipelineSchema.safeParse(value, { error: errorMessages });
  const schemaErrors = parsed.success ? [] : locateZodIssues(parsed.error, value);
  // A field the schema already refused is not judged again by the rules (a 1.5 in approval.required says
  // "must be a whole number", not also "requires 1.5 approvals").
  const refused = schemaErrors.map((e) => formatPath(e.at));
  const ruleErrors = semanticErrors(value).filter((e) => {
    const path = formatPath(e.at);
    return !refused.some((r) => path === r || path.startsWith(`${r}.`) || path.startsWith(`${r}[`));
  });
  const errors = toSpecErrors([...schemaErrors, ...ruleErrors], value);
  if (errors.length > 0 || !parsed.success) return { ok: false, errors };
  return { ok: true, pipeline: parsed.data };
}

/** A pipeline document parsed but not yet validated: its plain value, or the syntax errors. */
export type ParseResult = { ok: true; value: unknown } | { ok: false; errors: SpecError[] };

/**
 * Parses YAML or JSON text holding one document, without validating it (see `validatePipeline`). `source` names
 * the text in syntax errors. For callers that need the raw document too, e.g. to read `metadata.name` of a file
 * with mistakes.
 */
export function parsePipelineDocument(text: string, options: { source?: string } = {}): ParseResult {
  const source = options.source ?? '<input>';
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text.replace(/^\uFEFF/, ''), { lineCounter, prettyErrors: true });

  const syntaxErrors: SpecError[] = [];
  for (const document of documents) {
    for (const error of document.errors) {
      const at = error.linePos?.[0] ?? lineCounter.linePos(error.pos[0]);
      // prettyErrors appends " at line L, column C:" and a code excerpt; the path carries the position instead.
      const message = error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      syntaxErrors.push({ path: `${source}:${at.line}:${at.col}`, message: `YAML syntax error: ${message}` });
    }
  }
  if (syntaxErrors.length > 0) return { ok: false, errors: syntaxErrors };

  const values: Array<{ value: unknown; offset: number }> = [];
  for (const document of documents) {
    let value: unknown;
    try {
      value = document.toJS({ maxAliasCount: 100 });
    } catch (error) {
      const at = lineCounter.linePos(document.range[0]);
      return { ok: false, errors: [{ path: `${source}:${at.line}:${at.col}`, message: (error as Error).message }] };
    }
    // An empty document (only comments, or a trailing `---`) is not a second pipeline.
    if (value !== null && value !== undefined) values.push({ value, offset: document.range[0] });
  }
  if (values.length === 0) {
    return {
      ok: false,
      errors: [{ path: source, message: 'empty: expected one pipeline document (YAML or JSON) with kind: Pipeline' }],
    };
  }
  if (values.length > 1) {
    const at = lineCounter.linePos(values[1].offset);
    return {
      ok: false,
      errors: [
        {
          path: `${source}:${at.line}:${at.col}`,
          message: `found ${values.length} YAML documents where one pipeline was expected; put each pipeline in its own file`,
        },
      ],
    };
  }
  return { ok: true, value: values[0].value };
}

/** Parses YAML or JSON text holding one pipeline document and validates it. `source` names it in syntax errors. */
export function parsePipelineText(text: string, options: { source?: string } = {}): LoadResult {
  const parsed = parsePipelineDocument(text, options);
  return parsed.ok ? validatePipeline(parsed.value) : parsed;
}

/** `metadata.name` of a parsed but unvalidated document, when it is a string. */
export function pipelineNameOf(document: unknown): string | undefined {
  const metadata = isRecord(document) ? document.metadata : undefined;
  return isRecord(metadata) ? str(metadata.name) : undefined;
}

/** Reads and validates a pipeline file; syntax errors name the file, and so does a file that cannot be read. */
export async function loadPipelineFile(path: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    return { ok: false, errors: [{ path, message: `cannot read the pipeline file: ${reason}` }] };
  }
  return parsePipelineText(text, { source: path });
}
