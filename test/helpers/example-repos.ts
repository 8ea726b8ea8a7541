// The examples' repositories as real git remotes: `examples/<name>/repo/` is the content of the example's GitOps
// repository, committed as one commit on main into a bare repository, the way a team's repository would start.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../dev/temporal';
import { git } from './git';

/** The example's pipeline file. */
export function examplePipelinePath(name: string): string {
  return join(PROJECT_ROOT, 'examples', name, 'pipeline.yaml');
}

/** A bare repository at `path` holding `examples/<name>/repo/` on main; returns its head. */
export function createRepoFromExample(name: string, path: string): string {
  const work = mkdtempSync(join(tmpdir(), `ferry-example-${name}-`));
  try {
    cpSync(join(PROJECT_ROOT, 'examples', name, 'repo'), work, { recursive: true });
    git(work, 'init', '--quiet', '--initial-branch=main');
    git(work, 'add', '.');
    git(work, 'commit', '--quiet', '-m', `the ${name} example`);
    git(work, 'clone', '--quiet', '--bare', work, path);
    return git(path, 'rev-parse', 'main');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
