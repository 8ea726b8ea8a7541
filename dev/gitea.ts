// The Gitea server the pull-request and HTTPS tests run against: code.gitea.io/gitea built from the Go module proxy
// into `.tools/gitea-<version>/gitea` (gitignored) when it is not there yet. `go install` refuses a module whose
// go.mod has `replace` lines, so the build goes through a small local module that requires Gitea and repeats them.
// Gitea reads its templates and locales from the module's source directory (app.ini `[server] STATIC_ROOT_PATH`),
// which `giteaSourceDir()` names.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isExecutable, LOCAL_TOOLS_DIR } from './temporal';

/** v1.27.x declares another module path and does not resolve from the proxy; v1.26.1 builds with Go 1.26. */
export const GITEA_VERSION = '1.26.1';
const MODULE = 'code.gitea.io/gitea';
const GITEA_DIR = join(LOCAL_TOOLS_DIR, `gitea-${GITEA_VERSION}`);
export const GITEA_BINARY = join(GITEA_DIR, 'gitea');

/** Whether `path` is a Gitea of GITEA_VERSION (`gitea --version` prints `gitea version 1.26.1 built with …`). */
function isGiteaBuild(path: string): boolean {
  if (!isExecutable(path)) return false;
  const run = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  return run.status === 0 && run.stdout.includes(`version ${GITEA_VERSION} `);
}

interface ModuleDownload {
  Dir?: string;
  GoMod?: string;
  Error?: string;
}

/** Downloads (or finds in the module cache) Gitea's source; returns its directory and its go.mod's text. */
function downloadSource(): { dir: string; goMod: string } {
  const run = spawnSync('go', ['mod', 'download', '-json', `${MODULE}@v${GITEA_VERSION}`], {
    encoding: 'utf8',
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '' },
    maxBuffer: 16 * 1024 * 1024,
  });
  if (run.error) {
    throw new Error(`Gitea ${GITEA_VERSION} needs Go to build (\`go\` did not start: ${run.error.message})`);
  }
  let info: ModuleDownload = {};
  try {
    info = JSON.parse(run.stdout) as ModuleDownload;
  } catch {
    // reported below with go's own stderr
  }
  if (run.status !== 0 || !info.Dir || !info.GoMod) {
    throw new Error(
      `go mod download ${MODULE}@v${GITEA_VERSION} failed: ${info.Error ?? run.stderr.trim() ?? `exit ${run.status}`}`,
    );
  }
  return { dir: info.Dir, goMod: readFileSync(info.GoMod, 'utf8') };
}

/** The `replace` directives of a go.mod, single-line and block form, as single lines. */
export function replaceLines(goMod: string): string[] {
  const lines: string[] = [];
  let inBlock = false;
  for (const raw of goMod.split('\n')) {
    const line = raw.replace(/\/\/.*$/, '').trim();
    if (inBlock) {
      if (line === ')') inBlock = false;
      else if (line) lines.push(`replace ${line}`);
    } else if (/^replace\s*\($/.test(line)) {
      inBlock = true;
    } else if (/^replace\s/.test(line)) {
      lines.push(line);
    }
  }
  return lines;
}

/** Gitea's source directory in the Go module cache: its `templates/` and `options/` (STATIC_ROOT_PATH). */
export function giteaSourceDir(): string {
  return downloadSource().dir;
}

/**
 * The path of a Gitea binary of GITEA_VERSION: the cached build, else built now (about 3 minutes on two cores with
 * an empty Go cache). The build writes to a scratch path first, so an interrupted build leaves nothing half-made.
 */
export function ensureGitea(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string {
  if (isGiteaBuild(GITEA_BINARY)) return GITEA_BINARY;
  const started = Date.now();
  log(`Building Gitea ${GITEA_VERSION} into ${GITEA_DIR} (go build ${MODULE}, a few minutes the first time) …`);
  const { goMod } = downloadSource();
  const buildModule = join(GITEA_DIR, 'build');
  mkdirSync(buildModule, { recursive: true });
  const goVersion = /^go\s+(\S+)/m.exec(goMod)?.[1] ?? '1.26';
  writeFileSync(
    join(buildModule, 'go.mod'),
    [
      'module ferry.dev/tools/gitea',
      '',
      `go ${goVersion}`,
      '',
      `require ${MODULE} v${GITEA_VERSION}`,
      '',
      ...replaceLines(goMod),
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(buildModule, 'tools.go'),
    `//go:build tools\n\n// The module exists to build ${MODULE} with its replace lines.\npackage tools\n\nimport _ "${MODULE}"\n`,
  );
  const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod', CGO_ENABLED: '1' };
  const tidy = spawnSync('go', ['mod', 'tidy'], { cwd: buildModule, env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (tidy.status !== 0) throw new Error(`go mod tidy for the Gitea build module failed (exit ${tidy.status})`);
  const scratch = `${GITEA_BINARY}.build-${process.pid}`;
  const build = spawnSync(
    'go',
    [
      'build',
      '-tags',
      'sqlite sqlite_unlock_notify',
      '-ldflags',
      `-s -w -X main.Version=${GITEA_VERSION}`,
      '-o',
      scratch,
      MODULE,
    ],
    { cwd: buildModule, env, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (build.status !== 0 || !isGiteaBuild(scratch)) {
    rmSync(scratch, { force: true });
    throw new Error(`go build ${MODULE}@v${GITEA_VERSION} failed (exit ${build.status ?? build.signal}); see above`);
  }
  renameSync(scratch, GITEA_BINARY);
  log(`Built Gitea ${GITEA_VERSION} in ${Math.round((Date.now() - started) / 1000)} s.`);
  return GITEA_BINARY;
}
