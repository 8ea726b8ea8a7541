// The `ferry` CLI: a client of the HTTP API and nothing else (no Temporal connection), so it works wherever the API
// is reachable. Output is part of the contract: scripts and the README run these commands verbatim.
//
// stdout: what the command produces (an id, a table, JSON with --json). stderr: errors (`error: ...`) and notes.
// Exit codes: 0 done, 1 the API refused or the promotion did not succeed, 2 the command line is wrong.
import fs from 'node:fs';
import path from 'node:path';
import type { PipelineStatus, PromotionPhase, PromotionStatus } from '../workflows/messages';
import { resolveFerryHome } from '../client/auth';
import type { FieldError } from '../client/errors';

const DEFAULT_URL = 'http://127.0.0.1:8234';
const REQUEST_TIMEOUT_MS = 60_000;
/** While waiting, how long the API may be unreachable (a restart) before --wait gives up. */
const WAIT_OUTAGE_MS = 60_000;
const TERMINAL: readonly PromotionPhase[] = ['Succeeded', 'Failed', 'Rejected', 'Aborted'];

const COMMANDS: Record<string, string> = {
  apply: 'ferry apply -f FILE',
  freight: 'ferry freight add PIPELINE NAME=VERSION...',
  promote: 'ferry promote PIPELINE STAGE FREIGHT [--wait]',
  approve: 'ferry approve ID [-m COMMENT]',
  reject: 'ferry reject ID [-m COMMENT]',
  abort: 'ferry abort ID [-m COMMENT]',
  status: 'ferry status PIPELINE',
  get: 'ferry get ID',
};

const USAGE = `usage: ferry <command> [arguments]

commands:
  ferry apply -f FILE                            apply a pipeline file (YAML or JSON; -f - reads stdin)
  ferry freight add PIPELINE NAME=VERSION...     register freight; prints its id
  ferry promote PIPELINE STAGE FREIGHT [--wait]  promote freight into a stage; prints the promotion id
  ferry approve ID [-m COMMENT]                  approve a promotion
  ferry reject ID [-m COMMENT]                   reject a promotion
  ferry abort ID [-m COMMENT]                    abort a promotion
  ferry status PIPELINE                          stages: current freight, running and queued promotions
  ferry get ID                                   a promotion: phase, steps, approvals, commit, error
  ferry help                                     this text

options:
  --json      print the API's JSON (apply, freight add, promote, approve, reject, abort, status, get)
  --wait      promote: wait until the promotion ends, printing phase changes; exit 0 if it succeeded, else 1
  -m COMMENT  approve, reject, abort: a comment recorded with the decision
  -h, --help  this text

environment:
  FERRY_URL    the Ferry API (default ${DEFAULT_URL})
  FERRY_TOKEN  the bearer token (default: the file $FERRY_HOME/token; FERRY_HOME defaults to .ferry)
`;

// ---------------------------------------------------------------------------------------------------------------
// Errors and output

class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/** A failure to report as `error: ...` with exit code 1 (the API said no, a file is unreadable, ...). */
class CliError extends Error {
  constructor(
    message: string,
    readonly errors: FieldError[] = [],
    readonly hint?: string,
  ) {
    super(message);
  }
}

const out = (line = ''): void => {
  process.stdout.write(line + '\n');
};
const err = (line: string): void => {
  process.stderr.write(line + '\n');
};
const printJson = (value: unknown): void => out(JSON.stringify(value, null, 2));

/** Columns separated by two spaces, padded to the widest cell; the last column is not padded. */
function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd(),
  );
}

const orDash = (value: string | undefined): string => (value === undefined || value === '' ? '-' : value);

// ---------------------------------------------------------------------------------------------------------------
// Command line

interface Args {
  command: string;
  positionals: string[];
  json: boolean;
  wait: boolean;
  help: boolean;
  file?: string;
  message?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { command: '', positionals: [], json: false, wait: false, help: false };
  const words: string[] = [];
  const valueOf = (flag: string, inline: string | undefined, index: number): [string, number] => {
    if (inline !== undefined) return [inline, index];
    const next = argv[index + 1];
    if (next === undefined) throw new UsageError(`${flag} needs a value`);
    return [next, index + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith('-') || word === '-') {
      words.push(word);
      continue;
    }
    const eq = word.startsWith('--') ? word.indexOf('=') : -1;
    const flag = eq > 0 ? word.slice(0, eq) : word;
    const inline = eq > 0 ? word.slice(eq + 1) : undefined;
    switch (flag) {
      case '--json':
        args.json = true;
        break;
      case '--wait':
        args.wait = true;
        break;
      case '-h':
      case '--help':
        args.help = true;
        break;
      case '-f':
      case '--file':
        [args.file, i] = valueOf(flag, inline, i);
        break;
      case '-m':
      case '--message':
        [args.message, i] = valueOf(flag, inline, i);
        break;
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  args.command = words[0] ?? '';
  args.positionals = words.slice(1);
  return args;
}

/** Refuses options that do not belong to the command, and wrong numbers of arguments. */
function expect(
  args: Args,
  options: { count: number | [number, number]; allow?: Array<'file' | 'message' | 'wait' | 'json'> },
): void {
  const allow = new Set(options.allow ?? []);
  if (args.file !== undefined && !allow.has('file'))
    throw new UsageError(`${args.command} does not take -f`, args.command);
  if (args.message !== undefined && !allow.has('message'))
    throw new UsageError(`${args.command} does not take -m`, args.command);
  if (args.wait && !allow.has('wait')) throw new UsageError(`${args.command} does not take --wait`, args.command);
  if (args.json && !allow.has('json')) throw new UsageError(`${args.command} does not take --json`, args.command);
  const [min, max] = Array.isArray(options.count) ? options.count : [options.count, options.count];
  const n = args.positionals.length;
  if (n < min) throw new UsageError(`${args.command} is missing arguments`, args.command);
  if (n > max) throw new UsageError(`unexpected argument "${args.positionals[max]}"`, args.command);
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

interface Api {
  baseUrl: string;
  token?: string;
  tokenSource: string;
}

function apiFromEnv(env: NodeJS.ProcessEnv): Api {
  const raw = (env.FERRY_URL || DEFAULT_URL).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`FERRY_URL is not a URL: "${raw}"`);
  }
  // fetch refuses such URLs, and every error message would repeat the password; say so without echoing it.
  if (url.username !== '' || url.password !== '') {
    throw new CliError(
      'FERRY_URL must not contain a user name or password',
      [],
      'the API takes a bearer token: set FERRY_TOKEN',
    );
  }
  if (env.FERRY_TOKEN) return { baseUrl: raw, token: env.FERRY_TOKEN.trim(), tokenSource: 'FERRY_TOKEN' };
  const tokenFile = path.join(resolveFerryHome(env), 'token');
  let token: string | undefined;
  try {
    token = fs.readFileSync(tokenFile, 'utf8').trim() || undefined;
  } catch {
    token = undefined;
  }
  return { baseUrl: raw, token, tokenSource: token ? tokenFile : '' };
}

interface ApiErrorBody {
  error?: { code?: string; message?: string; errors?: FieldError[] };
}

class ApiError extends CliError {
  constructor(
    readonly status: number,
    message: string,
    errors: FieldError[],
    hint?: string,
  ) {
    super(message, errors, hint);
  }
}

/** Errors a waiting CLI should ride out: the API restarting, or a proxy in front of it. */
const isTransient = (error: unknown): boolean =>
  (error instanceof ApiError && [502, 503, 504].includes(error.status)) ||
  (error instanceof CliError && error.message.startsWith('cannot reach'));

async function call<T>(
  api: Api,
  method: 'GET' | 'PUT' | 'POST',
  urlPath: string,
  body?: { text: string; type: string },
): Promise<{ status: number; data: T }> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (api.token) headers.Authorization = `Bearer ${api.token}`;
  if (body) headers['Content-Type'] = body.type;
  let response: Response;
  try {
    response = await fetch(api.baseUrl + urlPath, {
      method,
      headers,
      body: body?.text,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
    throw new CliError(
      `cannot reach the Ferry API at ${api.baseUrl} (${reason})`,
      [],
      'is it running? `npm start` starts it; FERRY_URL says where it is',
    );
  }
  const text = await response.text();
  let data: unknown;
  try {
    data = text === '' ? undefined : JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (!response.ok) {
    const detail = (data as ApiErrorBody | undefined)?.error;
    const message = detail?.message ?? `${method} ${urlPath}: HTTP ${response.status} ${response.statusText}`.trim();
    let hint: string | undefined;
    if (response.status === 401) {
      hint = api.token
        ? `the token from ${api.tokenSource} was refused; check FERRY_TOKEN or $FERRY_HOME/token`
        : 'no token: set FERRY_TOKEN, or run `npm start`, which writes one to .ferry/token';
    }
    throw new ApiError(response.status, message, Array.isArray(detail?.errors) ? detail.errors : [], hint);
  }
  if (data === undefined)
    throw new CliError(`${method} ${urlPath}: the API answered HTTP ${response.status} without JSON`);
  return { status: response.status, data: data as T };
}

const jsonBody = (value: unknown) => ({ text: JSON.stringify(value), type: 'application/json' });
const promotionPath = (id: string): string => `/api/v1/promotions/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------------------------------------------------------
// Commands

async function apply(args: Args, api: Api): Promise<number> {
  if (args.file === undefined) throw new UsageError('apply needs -f FILE', 'apply');
  expect(args, { count: 0, allow: ['file', 'json'] });
  const file = args.file;
  let text: string;
  try {
    text = file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  const source = file === '-' ? '<stdin>' : file;

  // The URL names the pipeline, so the CLI needs metadata.name before the API can check the rest. Required here,
  // not imported at the top: the other commands start faster without YAML and zod. (require, not import():
  // bin/ferry.js registers tsx for CommonJS only.)
  const { parsePipelineDocument, pipelineNameOf, validatePipeline } =
    require('../pipeline/load') as typeof import('../pipeline/load');
  const parsed = parsePipelineDocument(text, { source });
  if (!parsed.ok) throw new CliError(`${source} is not a valid pipeline`, parsed.errors);
  const name = pipelineNameOf(parsed.value);
  if (name === undefined || name === '') {
    // Nothing to address the API with: report what the loader finds locally, in the API's format.
    const local = validatePipeline(parsed.value);
    const errors = local.ok ? [{ path: 'metadata.name', message: 'Required' }] : local.errors;
    throw new CliError(`${source} is not a valid pipeline`, errors);
  }
  const type = /\.json$/i.test(file) ? 'application/json' : 'application/yaml';
  const { data } = await call<PipelineStatus>(api, 'PUT', `/api/v1/pipelines/${encodeURIComponent(name)}`, {
    text,
    type,
  });
  if (args.json) printJson(data);
  else out(`pipeline ${data.name} applied (stages: ${data.stages.map((s) => s.name).join(', ')})`);
  return 0;
}

async function freight(args: Args, api: Api): Promise<number> {
  const sub = args.positionals[0];
  if (sub !== 'add') {
    throw new UsageError(
      sub === undefined ? 'freight needs a subcommand: add' : `unknown freight subcommand "${sub}"`,
      'freight',
    );
  }
  args.positionals = args.positionals.slice(1);
  expect(args, { count: [2, Infinity], allow: ['json'] });
  const [pipeline, ...pairs] = args.positionals;
  const artifacts: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || eq === pair.length - 1) throw new UsageError(`"${pair}" is not NAME=VERSION`, 'freight');
    const name = pair.slice(0, eq);
    if (Object.prototype.hasOwnProperty.call(artifacts, name))
      throw new UsageError(`artifact "${name}" is given twice`, 'freight');
    artifacts[name] = pair.slice(eq + 1);
  }
  const { data } = await call<{ id: string; created: boolean }>(
    api,
    'POST',
    `/api/v1/pipelines/${encodeURIComponent(pipeline)}/freight`,
    jsonBody({ artifacts }),
  );
  if (args.json) printJson(data);
  else out(data.id);
  return 0;
}

async function promote(args: Args, api: Api): Promise<number> {
  expect(args, { count: 3, allow: ['wait', 'json'] });
  const [pipeline, stage, freightId] = args.positionals;
  const { data } = await call<{ id: string; existing: boolean }>(
    api,
    'POST',
    `/api/v1/pipelines/${encodeURIComponent(pipeline)}/stages/${encodeURIComponent(stage)}/promotions`,
    jsonBody({ freight: freightId }),
  );
  if (!args.wait) {
    if (args.json) printJson(data);
    else out(data.id);
    if (data.existing) err(`note: an unfinished promotion of ${freightId} into ${stage} already existed; this is it`);
    return 0;
  }
  if (!args.json) out(data.id);
  const final = await waitForPromotion(api, data.id, (phase) => {
    if (!args.json) out(`phase: ${phase}`);
  });
  if (args.json) printJson(final);
  if (final.phase === 'Succeeded') return 0;
  const why =
    final.error ??
    decisionText(final.rejectedBy ?? final.abortedBy, final.phase === 'Rejected' ? 'rejected' : 'aborted');
  err(`error: promotion ${final.id} ended ${final.phase}${why ? `: ${why}` : ''}`);
  return 1;
}

/** Polls until a terminal phase, reporting each phase once; quick at first and after a change, then slower. */
async function waitForPromotion(
  api: Api,
  id: string,
  onPhase: (phase: PromotionPhase) => void,
): Promise<PromotionStatus> {
  let lastPhase: PromotionPhase | undefined;
  let delay = 200;
  let unreachableSince: number | undefined;
  for (;;) {
    let status: PromotionStatus | undefined;
    try {
      status = (await call<PromotionStatus>(api, 'GET', promotionPath(id))).data;
      unreachableSince = undefined;
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (unreachableSince === undefined) {
        unreachableSince = Date.now();
        err(`warning: ${(error as Error).message}; retrying`);
      } else if (Date.now() - unreachableSince > WAIT_OUTAGE_MS) {
        throw error;
      }
    }
    if (status) {
      if (status.phase !== lastPhase) {
        lastPhase = status.phase;
        onPhase(status.phase);
        delay = 200;
      }
      if (TERMINAL.includes(status.phase)) return status;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(Math.round(delay * 1.5), 2000);
  }
}

function decisionText(decision: PromotionStatus['rejectedBy'], verb: string): string | undefined {
  if (!decision) return undefined;
  return `${verb} by ${decision.user}${decision.comment ? ` (${JSON.stringify(decision.comment)})` : ''}`;
}

async function decide(args: Args, api: Api, action: 'approve' | 'reject' | 'abort'): Promise<number> {
  expect(args, { count: 1, allow: ['message', 'json'] });
  const [id] = args.positionals;
  const body = args.message !== undefined ? { comment: args.message } : {};
  const { data } = await call<PromotionStatus>(api, 'POST', `${promotionPath(id)}/${action}`, jsonBody(body));
  if (args.json) {
    printJson(data);
    return 0;
  }
  const verb = { approve: 'approved', reject: 'rejected', abort: 'aborted' }[action];
  const approvals =
    data.approval && action === 'approve' ? `, ${data.approvals.length} of ${data.approval.required} approvals` : '';
  out(`${verb} ${data.id}: phase ${data.phase}${approvals}`);
  return 0;
}

async function status(args: Args, api: Api): Promise<number> {
  expect(args, { count: 1, allow: ['json'] });
  const [pipeline] = args.positionals;
  const { data } = await call<PipelineStatus>(api, 'GET', `/api/v1/pipelines/${encodeURIComponent(pipeline)}`);
  if (args.json) {
    printJson(data);
    return 0;
  }
  out(`pipeline ${data.name} (applied ${data.appliedAt})`);
  out();
  const stageRows = data.stages.map((stage) => {
    const busy = new Set([stage.running?.id, ...stage.queue.map((q) => q.id)]);
    return [
      stage.name,
      orDash(stage.current?.freight),
      orDash(stage.running?.freight),
      orDash(stage.queue.map((q) => q.freight).join(',')),
      // Started but not holding or waiting for the stage lock: at a gate (approval, deploy window).
      orDash(
        stage.active
          .filter((a) => !busy.has(a.id))
          .map((a) => a.freight)
          .join(','),
      ),
    ];
  });
  for (const line of table([['STAGE', 'CURRENT', 'RUNNING', 'QUEUED', 'WAITING'], ...stageRows])) out(line);

  const shown = data.freight.slice(0, 10);
  if (shown.length > 0) {
    out();
    const freightRows = shown.map((f) => [
      f.id,
      Object.entries(f.artifacts)
        .map(([name, version]) => `${name}=${version}`)
        .join(','),
      orDash(f.verifiedIn.join(',')),
      f.createdAt,
    ]);
    for (const line of table([['FREIGHT', 'ARTIFACTS', 'VERIFIED IN', 'CREATED'], ...freightRows])) out(line);
    if (data.freight.length > shown.length)
      out(`(${data.freight.length - shown.length} older freight not shown; --json lists all)`);
  }
  return 0;
}

async function get(args: Args, api: Api): Promise<number> {
  expect(args, { count: 1, allow: ['json'] });
  const [id] = args.positionals;
  const { data } = await call<PromotionStatus>(api, 'GET', promotionPath(id));
  if (args.json) {
    printJson(data);
    return 0;
  }
  const versions = Object.entries(data.freight.artifacts)
    .map(([name, version]) => `${name}=${version}`)
    .join(', ');
  const fields: Array<[string, string]> = [
    ['promotion', data.id],
    ['pipeline', data.pipeline],
    ['stage', data.stage],
    ['freight', `${data.freight.id}${versions ? ` (${versions})` : ''}`],
    ['phase', data.phase],
    ['requested', `by ${data.requestedBy} at ${data.startedAt}`],
    ['finished', orDash(data.finishedAt)],
    ['commit', orDash(data.commit)],
  ];
  if (data.sourceCommit) fields.push(['source', data.sourceCommit]);
  if (data.approval) {
    fields.push([
      'approvals',
      `${data.approvals.length} of ${data.approval.required} (approvers: ${data.approval.approvers.join(', ')})`,
    ]);
  } else if (data.approvals.length > 0) {
    fields.push(['approvals', String(data.approvals.length)]);
  }
  const approvalLines = data.approvals.map(
    (a) => `${a.user} at ${a.at}${a.comment ? ` ${JSON.stringify(a.comment)}` : ''}`,
  );
  if (data.rejectedBy) fields.push(['rejected', decisionLine(data.rejectedBy)]);
  if (data.abortedBy) fields.push(['aborted', decisionLine(data.abortedBy)]);
  if (data.error) fields.push(['error', data.error]);

  const width = Math.max(...fields.map(([key]) => key.length)) + 2;
  for (const [key, value] of fields) {
    out(`${`${key}:`.padEnd(width)}${value}`);
    if (key === 'approvals') for (const line of approvalLines) out(`${''.padEnd(width)}${line}`);
  }
  if (data.steps.length > 0) {
    out();
    const rows = data.steps.map((s) => [s.name, s.status, orDash(s.startedAt), orDash(s.finishedAt), s.message ?? '']);
    for (const line of table([['STEP', 'STATUS', 'STARTED', 'FINISHED', 'MESSAGE'], ...rows])) out(line);
  }
  return 0;
}

const decisionLine = (d: { user: string; at: string; comment?: string }): string =>
  `by ${d.user} at ${d.at}${d.comment ? ` ${JSON.stringify(d.comment)}` : ''}`;

// ---------------------------------------------------------------------------------------------------------------
// Entry

async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = parseArgs(argv);
  if (args.command === 'help' || (args.help && args.command === '')) {
    out(USAGE.trimEnd());
    return 0;
  }
  if (args.command === '') throw new UsageError('missing command');
  if (!Object.prototype.hasOwnProperty.call(COMMANDS, args.command))
    throw new UsageError(`unknown command "${args.command}"`);
  if (args.help) {
    out(`usage: ${COMMANDS[args.command]}`);
    return 0;
  }
  const api = apiFromEnv(env);
  switch (args.command) {
    case 'apply':
      return apply(args, api);
    case 'freight':
      return freight(args, api);
    case 'promote':
      return promote(args, api);
    case 'approve':
    case 'reject':
    case 'abort':
      return decide(args, api, args.command);
    case 'status':
      return status(args, api);
    case 'get':
      return get(args, api);
    default:
      throw new UsageError(`unknown command "${args.command}"`);
  }
}

function report(error: unknown): number {
  if (error instanceof UsageError) {
    err(`error: ${error.message}`);
    err(error.command ? `usage: ${COMMANDS[error.command]}` : USAGE.trimEnd());
    if (error.command) err("run 'ferry help' for all commands");
    return 2;
  }
  if (error instanceof CliError) {
    err(`error: ${error.message}`);
    for (const e of error.errors) err(`${e.path}: ${e.message}`);
    if (error.hint) err(`hint: ${error.hint}`);
    return 1;
  }
  err(`error: ${error instanceof Error ? error.message : String(error)}`);
  return 1;
}

// A closed pipe (`ferry status x | head -1`) is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

run(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = report(error);
  },
);
