// Runs the CI recipes of docs/ci/ the way their CI systems would, step by step, in bash on this machine: a GitHub
// Actions workflow's `run:` steps (with `${{ … }}` expressions, GITHUB_OUTPUT, GITHUB_ENV and the OIDC token-request
// variables) and a GitLab CI pipeline's jobs in stage order (with `variables:`, `id_tokens:` and dotenv reports).
// Only what the recipes use is understood; anything else is an error, so a recipe cannot quietly drift past it.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';

export interface StepRun {
  name: string;
  status: number | null;
  output: string;
}

export interface RecipeRun {
  steps: StepRun[];
  /** The first step that failed, if any; the ones after it did not run. */
  failed?: StepRun;
  /** Every line the steps printed, in order. */
  transcript: string;
}

/** Runs one bash script as a CI runner does (`bash -e` with pipefail), collecting its output. */
function runBash(
  script: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', script], { cwd, env });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, output }));
  });
}

/** `KEY=value` lines (GITHUB_OUTPUT, GITHUB_ENV, dotenv reports); GitHub's `KEY<<EOF` form too. */
export function parseKeyValueFile(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    const heredoc = /^([A-Za-z_][A-Za-z0-9_-]*)<<(.+)$/.exec(line);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2], i + 1);
      if (end < 0) throw new Error(`unterminated ${heredoc[1]}<<${heredoc[2]}`);
      values[heredoc[1]] = lines.slice(i + 1, end).join('\n');
      i = end;
      continue;
    }
    const at = line.indexOf('=');
    if (at <= 0) throw new Error(`not KEY=value: ${JSON.stringify(line)}`);
    values[line.slice(0, at)] = line.slice(at + 1);
  }
  return values;
}

const readIfAny = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

export interface GithubContext {
  /** Where the job runs (the checkout). */
  cwd: string;
  /** The runner's environment (PATH with `ferry` on it, HOME …). */
  env: NodeJS.ProcessEnv;
  /** Repository variables (`vars.*`). */
  vars: Record<string, string>;
  /** `github.*` context values the recipe may use, and the GITHUB_* variables they become. */
  github: { sha: string; repository: string; ref: string; runNumber: number };
  /** What GitHub gives a job with `id-token: write`. */
  idTokenRequest: { url: string; token: string };
  /** Step ids the harness provides instead of running (installing the CLI that is already on PATH). */
  provided: string[];
}

/** Runs every job's steps of a GitHub Actions workflow file, in order; stops at the first failing step. */
export async function runGithubWorkflow(file: string, ctx: GithubContext): Promise<RecipeRun> {
  const doc = parse(readFileSync(file, 'utf8')) as {
    env?: Record<string, string>;
    permissions?: Record<string, string>;
    jobs: Record<string, { env?: Record<string, string>; steps: GithubStep[] }>;
  };
  if (doc.permissions?.['id-token'] !== 'write') throw new Error(`${file}: the job cannot get an OIDC token`);
  const temp = mkdtempSync(join(tmpdir(), 'ferry-gha-'));
  const run: RecipeRun = { steps: [], transcript: '' };
  try {
    const outputs: Record<string, Record<string, string>> = {};
    const exported: Record<string, string> = {};
    const expression = (text: string): string =>
      text.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_all, expr: string) => {
        let m: RegExpExecArray | null;
        if ((m = /^steps\.([\w-]+)\.outputs\.([\w-]+)$/.exec(expr))) {
          const value = outputs[m[1]]?.[m[2]];
          if (value === undefined) throw new Error(`${file}: \${{ ${expr} }} has no value yet`);
          return value;
        }
        if ((m = /^vars\.(\w+)$/.exec(expr))) {
          const value = ctx.vars[m[1]];
          if (value === undefined) throw new Error(`${file}: repository variable ${m[1]} is not set`);
          return value;
        }
        if (expr === 'github.sha') return ctx.github.sha;
        if (expr === 'github.repository') return ctx.github.repository;
        if (expr === 'github.ref') return ctx.github.ref;
        throw new Error(`${file}: the recipe runner does not know \${{ ${expr} }}`);
      });
    const resolveEnv = (env: Record<string, string> | undefined): Record<string, string> =>
      Object.fromEntries(Object.entries(env ?? {}).map(([k, v]) => [k, expression(String(v))]));
    const workflowEnv = resolveEnv(doc.env);

    for (const [jobName, job] of Object.entries(doc.jobs)) {
      const jobEnv = resolveEnv(job.env);
      for (const [index, step] of job.steps.entries()) {
        const name = step.name ?? step.id ?? step.uses ?? `${jobName} step ${index + 1}`;
        if (step.uses !== undefined) {
          // The checkout is the working directory already; any other action is something this runner cannot do.
          if (!step.uses.startsWith('actions/checkout@')) throw new Error(`${file}: cannot run action ${step.uses}`);
          continue;
        }
        if (step.id !== undefined && ctx.provided.includes(step.id)) continue;
        if (typeof step.run !== 'string') throw new Error(`${file}: step "${name}" has neither run nor uses`);
        const outputFile = join(temp, `output-${jobName}-${index}`);
        const envFile = join(temp, `env-${jobName}-${index}`);
        writeFileSync(outputFile, '');
        writeFileSync(envFile, '');
        const env: NodeJS.ProcessEnv = {
          ...ctx.env,
          CI: 'true',
          GITHUB_ACTIONS: 'true',
          GITHUB_SHA: ctx.github.sha,
          GITHUB_REF: ctx.github.ref,
          GITHUB_REPOSITORY: ctx.github.repository,
          GITHUB_RUN_NUMBER: String(ctx.github.runNumber),
          GITHUB_OUTPUT: outputFile,
          GITHUB_ENV: envFile,
          RUNNER_TEMP: temp,
          ACTIONS_ID_TOKEN_REQUEST_URL: ctx.idTokenRequest.url,
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: ctx.idTokenRequest.token,
          ...workflowEnv,
          ...jobEnv,
          ...exported,
          ...resolveEnv(step.env),
        };
        const result = await runBash(expression(step.run), ctx.cwd, env);
        const stepRun = { name, status: result.status, output: result.output };
        run.steps.push(stepRun);
        run.transcript += `## ${name}\n${result.output}`;
        if (result.status !== 0) {
          run.failed = stepRun;
          return run;
        }
        if (step.id !== undefined) outputs[step.id] = parseKeyValueFile(readIfAny(outputFile));
        Object.assign(exported, parseKeyValueFile(readIfAny(envFile)));
      }
    }
    return run;
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

interface GithubStep {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  env?: Record<string, string>;
}

export interface GitlabContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** CI/CD variables set in the project's settings (FERRY_URL). */
  variables: Record<string, string>;
  /** The predefined variables the recipe uses. */
  predefined: { CI_COMMIT_SHA: string; CI_PIPELINE_IID: string; CI_PROJECT_PATH: string; CI_COMMIT_BRANCH: string };
  /** Issues the ID token a job's `id_tokens:` asks for, for the audience given. */
  idToken: (audience: string) => Promise<string>;
}

interface GitlabJob {
  stage?: string;
  script: string[];
  before_script?: string[];
  variables?: Record<string, string>;
  id_tokens?: Record<string, { aud: string | string[] }>;
  artifacts?: { reports?: { dotenv?: string } };
}

/** Runs a GitLab CI pipeline's jobs in stage order (each job's lines in one shell); stops at the first failing job. */
export async function runGitlabPipeline(file: string, ctx: GitlabContext): Promise<RecipeRun> {
  const doc = parse(readFileSync(file, 'utf8')) as Record<string, unknown> & {
    stages?: string[];
    variables?: Record<string, string>;
  };
  const stages = doc.stages ?? ['build', 'test', 'deploy'];
  const jobs = Object.entries(doc)
    .filter(
      ([name]) => !['stages', 'variables', 'default', 'workflow', 'include'].includes(name) && !name.startsWith('.'),
    )
    .map(([name, value]) => [name, value as GitlabJob] as const)
    .sort(([, a], [, b]) => stages.indexOf(a.stage ?? 'test') - stages.indexOf(b.stage ?? 'test'));
  const run: RecipeRun = { steps: [], transcript: '' };
  const dotenv: Record<string, string> = {};
  for (const [name, job] of jobs) {
    if (!Array.isArray(job.script)) throw new Error(`${file}: job ${name} has no script`);
    const tokens: Record<string, string> = {};
    for (const [variable, spec] of Object.entries(job.id_tokens ?? {})) {
      const audience = Array.isArray(spec.aud) ? spec.aud[0] : spec.aud;
      tokens[variable] = await ctx.idToken(audience);
    }
    const env: NodeJS.ProcessEnv = {
      ...ctx.env,
      CI: 'true',
      GITLAB_CI: 'true',
      ...ctx.predefined,
      ...ctx.variables,
      ...(doc.variables ?? {}),
      ...(job.variables ?? {}),
      ...dotenv,
      ...tokens,
    };
    // GitLab runs a job's lines in one shell and stops at the first that fails.
    const script = [...(job.before_script ?? []), ...job.script].join('\n');
    const result = await runBash(script, ctx.cwd, env);
    const stepRun = { name, status: result.status, output: result.output };
    run.steps.push(stepRun);
    run.transcript += `## ${name}\n${result.output}`;
    if (result.status !== 0) {
      run.failed = stepRun;
      return run;
    }
    const report = job.artifacts?.reports?.dotenv;
    if (report) {
      Object.assign(dotenv, parseKeyValueFile(readFileSync(join(ctx.cwd, report), 'utf8')));
      rmSync(join(ctx.cwd, report));
    }
  }
  return run;
}
