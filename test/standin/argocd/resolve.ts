// Branch/tag → commit SHA, as Argo CD's repo-server does it: an explicit repo map set by tests first, then, for
// file:// remotes, the real `git ls-remote` (so end-to-end tests against a bare repository see real pushes).
import { execFile } from 'node:child_process';

export type RepoMap = Map<string, Map<string, string>>;

const SHA = /^[0-9a-f]{40}$/;

/** The same repository whether written with or without a trailing slash or `.git`. */
export function repoKey(url: string): string {
  return url.replace(/\/+$/, '').replace(/\.git$/, '');
}

export class RevisionNotResolvable extends Error {
  constructor(readonly revision: string) {
    super(`unable to resolve '${revision}' to a commit SHA`);
  }
}

/** Map keys are short names: `env/dev` and `refs/heads/env/dev` are the same ref. */
export function shortRef(ref: string): string {
  return ref.replace(/^refs\/(heads|tags)\//, '');
}

function lsRemote(url: string): Promise<Map<string, string>> {
  return new Promise((resolve, reject) => {
    execFile('git', ['ls-remote', url], { timeout: 10_000 }, (error, stdout) => {
      if (error) {
        reject(error);
        return;
      }
      const refs = new Map<string, string>();
      for (const line of stdout.split('\n')) {
        const [sha, ref] = line.split('\t');
        if (!sha || !ref) continue;
        // Annotated tags: the peeled `^{}` line names the commit.
        if (ref.endsWith('^{}')) refs.set(ref.slice(0, -3), sha);
        else if (!refs.has(ref)) refs.set(ref, sha);
      }
      resolve(refs);
    });
  });
}

/** Resolves `revision` of `repoURL` to a SHA, or throws RevisionNotResolvable. */
export async function resolveRevision(repos: RepoMap, repoURL: string, revision: string | undefined): Promise<string> {
  const wanted = revision === undefined || revision === '' ? 'HEAD' : revision;
  if (SHA.test(wanted)) return wanted;
  const mapped = repos.get(repoKey(repoURL));
  if (mapped) {
    const sha = mapped.get(shortRef(wanted));
    if (sha) return sha;
  }
  if (repoURL.startsWith('file://')) {
    let refs: Map<string, string>;
    try {
      refs = await lsRemote(repoURL);
    } catch {
      throw new RevisionNotResolvable(wanted);
    }
    const candidates =
      wanted === 'HEAD' || wanted.startsWith('refs/') ? [wanted] : [`refs/heads/${wanted}`, `refs/tags/${wanted}`];
    for (const candidate of candidates) {
      const sha = refs.get(candidate);
      if (sha) return sha;
    }
  }
  throw new RevisionNotResolvable(wanted);
}
