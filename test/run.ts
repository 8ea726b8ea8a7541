// `npm test`: makes sure the Temporal CLI, kustomize, helm and Gitea are there (installing them project-locally at the
// pinned versions if needed: dev/temporal.ts, dev/tools.ts, dev/gitea.ts), then runs every
// test file under test/ with Node's test runner, one file at a time (the workflow and end-to-end suites each start
// their own Temporal dev server; two cores do not run several at once well).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ensureTemporalCli, PROJECT_ROOT } from '../dev/temporal';
import { ensureGitea } from '../dev/gitea';
import { ensureRenderTools } from '../dev/tools';

function testFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) return testFiles(path);
      return entry.endsWith('.test.ts') ? [path] : [];
    });
}

const filters = process.argv.slice(2);
const files = testFiles(join(PROJECT_ROOT, 'test'))
  .map((f) => relative(PROJECT_ROOT, f))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  process.stderr.write(`no test files match ${filters.join(' ')}\n`);
  process.exit(1);
}

const cli = ensureTemporalCli();
const renderTools = ensureRenderTools();
// The pull-request and HTTPS tests run a real Gitea; built here so that no test waits for the build.
const gitea = process.env.FERRY_GITEA_PATH || ensureGitea();
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  {
    cwd: PROJECT_ROOT,
    stdio: 'inherit',
    env: { ...process.env, TEMPORAL_CLI_PATH: cli, ...renderTools, FERRY_GITEA_PATH: gitea },
  },
);
process.exit(result.status ?? 1);
