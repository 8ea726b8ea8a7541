// Provisions schemathesis, the API fuzzer `npm test` runs against the HTTP API (test/e2e/schemathesis.test.ts): PyPI's
// `schemathesis`, pinned, in a virtualenv under .tools/, the way temporal.ts installs the Temporal CLI.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LOCAL_TOOLS_DIR } from './temporal';

/** The schemathesis release the project tests with; its checks and report format are what the test reads. */
export const SCHEMATHESIS_VERSION = '4.32.5';

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** `schemathesis --version` prints `schemathesis, version X`; undefined when it does not run. */
export function schemathesisVersion(executable: string): string | undefined {
  const result = spawnSync(executable, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? /version (\S+)/.exec(result.stdout)?.[1] : undefined;
}

/**
 * Returns the path of schemathesis SCHEMATHESIS_VERSION: `SCHEMATHESIS_PATH` when set (it must be that version),
 * else `<toolsDir>/schemathesis/bin/schemathesis`, created with `python3 -m venv` and pip when missing or another
 * version. Fails with what to do when Python cannot provide it.
 */
export function ensureSchemathesis(
  options: { env?: NodeJS.ProcessEnv; toolsDir?: string; log?: (line: string) => void } = {},
): string {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const wrongVersion = (path: string, found: string | undefined): Error =>
    new Error(
      `${path} is not schemathesis ${SCHEMATHESIS_VERSION} (\`--version\` says ${found ?? 'nothing it knows'}); ` +
        `install that version (pip install schemathesis==${SCHEMATHESIS_VERSION}) or unset SCHEMATHESIS_PATH`,
    );
  if (env.SCHEMATHESIS_PATH) {
    const found = schemathesisVersion(env.SCHEMATHESIS_PATH);
    if (found !== SCHEMATHESIS_VERSION) throw wrongVersion(`SCHEMATHESIS_PATH=${env.SCHEMATHESIS_PATH}`, found);
    return env.SCHEMATHESIS_PATH;
  }
  const venv = join(options.toolsDir ?? LOCAL_TOOLS_DIR, 'schemathesis');
  const executable = join(venv, 'bin', 'schemathesis');
  if (isExecutable(executable) && schemathesisVersion(executable) === SCHEMATHESIS_VERSION) return executable;

  log(`installing schemathesis==${SCHEMATHESIS_VERSION} from PyPI into ${venv} …`);
  mkdirSync(venv, { recursive: true });
  const steps: Array<[string, string[]]> = [
    ['python3', ['-m', 'venv', '--clear', venv]],
    [
      join(venv, 'bin', 'python'),
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `schemathesis==${SCHEMATHESIS_VERSION}`],
    ],
  ];
  for (const [command, args] of steps) {
    const result = spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (result.status !== 0) {
      throw new Error(
        `could not install schemathesis: \`${command} ${args.join(' ')}\` ${result.error ? `failed (${result.error.message})` : `exited ${result.status}`}. ` +
          `Needs Python 3.10+ with venv and pip (apt: python3-venv), or set SCHEMATHESIS_PATH to a schemathesis ` +
          `${SCHEMATHESIS_VERSION} executable.`,
      );
    }
  }
  const installed = schemathesisVersion(executable);
  if (installed !== SCHEMATHESIS_VERSION) throw wrongVersion(executable, installed);
  return executable;
}
