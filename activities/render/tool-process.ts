// Running kustomize and helm: each render gets a private temporary directory (the sources, HOME and the tools'
// config, cache and data directories all inside it, removed when the render ends), a clean environment (nothing
// of the worker's: no PATH, no kubeconfig, no proxy, no HELM_* or KUSTOMIZE_* settings) and a bounded time. The
// binary runs in a process group of its own, stopped on timeout, on cancellation and (through the reaper) when the
// worker dies. Its failures become typed, non-retryable ApplicationFailures whose message is the tool's own error
// with the temporary paths turned back into repository paths.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { activityContext } from '../context';
import { processReaper } from '../process-reaper';

export type RenderToolName = 'kustomize' | 'helm';

/** The worker settings naming each binary; `npm run tools` installs the pinned versions. */
export const RENDER_TOOL_ENV: Readonly<Record<RenderToolName, string>> = {
  kustomize: 'FERRY_KUSTOMIZE_PATH',
  helm: 'FERRY_HELM_PATH',
};

/** Where kustomize and helm write their output on the stage's branch when `render.output` is not given. */
export const DEFAULT_RENDER_OUTPUT = 'manifests.yaml';

/** How long one run of a binary may take before it is stopped (a retryable failure). */
export const DEFAULT_RENDER_TIMEOUT_MS = 60_000;

/** How to make a render engine's binary available on a worker, for messages. */
export function installHint(engine: string): string {
  const env = RENDER_TOOL_ENV[engine as RenderToolName];
  if (!env) return `this worker has no render engine "${engine}"`;
  return (
    `set ${env} to a ${engine} binary on the worker, or put ${engine} on the worker's PATH ` +
    '(`npm run tools` installs the pinned version into .tools/bin)'
  );
}

/** The non-retryable failure for an engine whose binary this worker does not have. */
export function renderToolMissing(engine: string, context: string, detail?: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `${context} is not available on this worker${detail ? ` (${detail})` : ''}: ${installHint(engine)}`,
    'RenderToolMissing',
    { engine },
  );
}

const TEMP_PREFIX = 'ferry-render-';
const PROCESS_TAG = `${process.pid}.${randomBytes(4).toString('hex')}`;
let swept = false;

/** A render's private directory: `sources` mirrors the repository, `home` holds HOME and the tools' directories. */
export interface RenderDir {
  root: string;
  sources: string;
  env: NodeJS.ProcessEnv;
  /** Turns the temporary paths in a tool's message back into repository paths. */
  scrub(text: string): string;
}

/** Runs `fn` with a fresh render directory and removes the directory afterwards, whatever happened. */
export async function withRenderDir<T>(fn: (dir: RenderDir) => Promise<T>): Promise<T> {
  if (!swept) {
    swept = true;
    await sweepLeftovers();
  }
  const made = await mkdtemp(join(tmpdir(), `${TEMP_PREFIX}${PROCESS_TAG}-`));
  try {
    // The tools report real paths (symlinks resolved); /tmp may itself be a link.
    const root = await realpath(made);
    const sources = join(root, 'src');
    const home = join(root, 'home');
    const env: NodeJS.ProcessEnv = {
      HOME: home,
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_CACHE_HOME: join(home, '.cache'),
      XDG_DATA_HOME: join(home, '.local', 'share'),
      HELM_CONFIG_HOME: join(home, 'helm', 'config'),
      HELM_CACHE_HOME: join(home, 'helm', 'cache'),
      HELM_DATA_HOME: join(home, 'helm', 'data'),
      TMPDIR: join(root, 'tmp'),
      // Nothing to find on PATH: no git for remote bases, no plugins, no post-renderers.
      PATH: '',
    };
    await Promise.all([mkdir(sources, { recursive: true }), mkdir(env.TMPDIR!, { recursive: true })]);
    const scrub = (text: string) =>
      [made, root].reduce(
        (out, dir) =>
          out
            .split(`${join(dir, 'src')}/`)
            .join('')
            .split(join(dir, 'src'))
            .join('.')
            .split(dir)
            .join('<render dir>'),
        text,
      );
    return await fn({ root, sources, env, scrub });
  } finally {
    await rm(made, { recursive: true, force: true });
  }
}

/** Render directories of workers that died mid-render (their pid is gone). */
async function sweepLeftovers(): Promise<void> {
  const names = await readdir(tmpdir()).catch(() => [] as string[]);
  for (const name of names) {
    const pid = Number(new RegExp(`^${TEMP_PREFIX}(\\d+)\\.`).exec(name)?.[1] ?? Number.NaN);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') {
        await rm(join(tmpdir(), name), { recursive: true, force: true });
      }
    }
  }
}

export interface ToolRun {
  tool: RenderToolName;
  binary: string;
  args: readonly string[];
  cwd: string;
  dir: RenderDir;
  timeoutMs: number;
  /** The command as the failure names it, e.g. `kustomize build apps/guestbook/dev`. */
  what: string;
}

/** Runs the binary; resolves with its stdout, exactly as written. */
export function runRenderTool(run: ToolRun): Promise<Buffer> {
  const signal = activityContext()?.cancellationSignal;
  return new Promise((resolvePromise, reject) => {
    if (signal?.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : new Error(`${run.tool} cancelled`));
      return;
    }
    const child = spawn(run.binary, [...run.args], {
      cwd: run.cwd,
      env: run.dir.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const group = child.pid;
    const reaper = group !== undefined ? processReaper() : undefined;
    if (group !== undefined) reaper?.watch(group);
    let timedOut = false;
    const stop = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, run.timeoutMs);
    signal?.addEventListener('abort', stop, { once: true });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (group !== undefined) reaper?.forget(group);
      signal?.removeEventListener('abort', stop);
      outcome();
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      // A binary that cannot be started never runs: say which setting names it.
      const missing = ['ENOENT', 'EACCES', 'ENOTDIR', 'ENOEXEC'].includes(err.code ?? '');
      settle(() => reject(missing ? renderToolMissing(run.tool, `${run.tool} (${run.binary})`, `${err.code}`) : err));
    });
    child.on('close', (code) =>
      settle(() => {
        if (signal?.aborted) {
          reject(signal.reason instanceof Error ? signal.reason : new Error(`${run.what} cancelled`));
        } else if (timedOut) {
          reject(
            ApplicationFailure.retryable(
              `${run.what} did not finish within ${formatMs(run.timeoutMs)} and was stopped`,
              'RenderTimedOut',
            ),
          );
        } else if (code === 0) {
          resolvePromise(Buffer.concat(stdout));
        } else {
          const said = toolMessage(run.dir.scrub(Buffer.concat(stderr).toString('utf8')));
          reject(
            ApplicationFailure.nonRetryable(`${run.what} failed: ${said}`, 'RenderFailed', {
              tool: run.tool,
              exitCode: code,
            }),
          );
        }
      }),
    );
  });
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${Math.round(ms / 1000)}s`;
}

/** The tool's error without its usage text, on one line, bounded. */
export function toolMessage(stderr: string): string {
  const lines: string[] = [];
  for (const line of stderr.split('\n')) {
    // kustomize prints the command's whole help after an error.
    if (/^Usage:\s*$/.test(line.trim())) break;
    if (line.trim()) lines.push(line.trim());
  }
  const said = lines.join('; ') || 'no output on stderr';
  return said.length > 2000 ? `${said.slice(0, 1000)}…${said.slice(-1000)}` : said;
}
