// The real bare git repository under a git-host stand-in (GitHub, GitLab): what a merge does to it is what the
// host would do. A merge is plumbing on the bare repository, as the hosts do it server-side: `git merge-tree
// --write-tree` computes the merged tree (exit 1 on conflicts, and the host refuses the merge), `git commit-tree`
// makes the merge (or squash) commit, and `git update-ref` moves the base branch only if it is still where the
// merge started from, so a push that lands in between makes the merge fail instead of being lost.
import { execFileSync, spawnSync } from 'node:child_process';

export interface Identity {
  name: string;
  email: string;
}

export interface MergeOutcome {
  /** The commit now at the tip of the base branch. */
  sha: string;
}

export class MergeConflict extends Error {
  constructor(readonly files: string[]) {
    super(`merge conflict in ${files.join(', ') || 'the tree'}`);
  }
}

/** The base branch moved while the merge was computed. */
export class BaseMoved extends Error {}

export class BareRepository {
  constructor(readonly path: string) {}

  git(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): string {
    return execFileSync('git', ['--git-dir', this.path, ...args], {
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
      ...(options.input !== undefined ? { input: options.input } : {}),
    }).trim();
  }

  /** The commit a branch points at, or undefined when there is no such branch. */
  branch(name: string): string | undefined {
    const result = spawnSync(
      'git',
      ['--git-dir', this.path, 'rev-parse', '--verify', '--quiet', `refs/heads/${name}^{commit}`],
      {
        encoding: 'utf8',
      },
    );
    return result.status === 0 ? result.stdout.trim() : undefined;
  }

  /** Every branch and its commit. */
  branches(): Map<string, string> {
    const out = this.git(['for-each-ref', '--format=%(refname:strip=2) %(objectname)', 'refs/heads']);
    return new Map(
      out
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split(' ') as [string, string]),
    );
  }

  isAncestor(ancestor: string, of: string): boolean {
    return spawnSync('git', ['--git-dir', this.path, 'merge-base', '--is-ancestor', ancestor, of]).status === 0;
  }

  commitExists(sha: string): boolean {
    return spawnSync('git', ['--git-dir', this.path, 'cat-file', '-e', `${sha}^{commit}`]).status === 0;
  }

  /** The tree of merging `head` into `base`, or the conflicting files. */
  mergeTree(base: string, head: string): { tree: string } | { conflicts: string[] } {
    const result = spawnSync('git', ['--git-dir', this.path, 'merge-tree', '--write-tree', '--name-only', base, head], {
      encoding: 'utf8',
    });
    if (result.status === 0) return { tree: result.stdout.trim().split('\n')[0] };
    if (result.status === 1) {
      // First line: the tree with conflict markers; then the conflicted paths; then a blank line and messages.
      const lines = result.stdout.split('\n');
      const end = lines.indexOf('', 1);
      return { conflicts: lines.slice(1, end === -1 ? undefined : end).filter((l) => l !== '') };
    }
    throw new Error(`git merge-tree failed (${result.status}): ${result.stderr}`);
  }

  commitTree(tree: string, parents: string[], message: string, author: Identity, committer: Identity): string {
    return this.git(['commit-tree', tree, ...parents.flatMap((p) => ['-p', p]), '-F', '-'], {
      input: message,
      env: {
        GIT_AUTHOR_NAME: author.name,
        GIT_AUTHOR_EMAIL: author.email,
        GIT_COMMITTER_NAME: committer.name,
        GIT_COMMITTER_EMAIL: committer.email,
      },
    });
  }

  /** Moves a branch from `from` to `to`, only if it is still at `from`. */
  moveBranch(name: string, to: string, from: string): void {
    const result = spawnSync('git', ['--git-dir', this.path, 'update-ref', `refs/heads/${name}`, to, from], {
      encoding: 'utf8',
    });
    if (result.status !== 0) throw new BaseMoved(`refs/heads/${name} moved: ${result.stderr.trim()}`);
  }

  deleteBranch(name: string): void {
    this.git(['update-ref', '-d', `refs/heads/${name}`]);
  }

  /**
   * Merges `head` into `base` as a host does: a merge commit with both parents (`merge`), or one commit with the
   * merged tree on top of the base (`squash`). Throws MergeConflict or BaseMoved.
   */
  merge(options: {
    base: string;
    head: string;
    method: 'merge' | 'squash';
    message: string;
    author: Identity;
    committer: Identity;
  }): MergeOutcome & { squash?: string } {
    const baseSha = this.branch(options.base);
    if (!baseSha) throw new BaseMoved(`base branch ${options.base} does not exist`);
    const merged = this.mergeTree(baseSha, options.head);
    if ('conflicts' in merged) throw new MergeConflict(merged.conflicts);
    const parents = options.method === 'merge' ? [baseSha, options.head] : [baseSha];
    const sha = this.commitTree(merged.tree, parents, options.message, options.author, options.committer);
    this.moveBranch(options.base, sha, baseSha);
    return { sha };
  }
}
