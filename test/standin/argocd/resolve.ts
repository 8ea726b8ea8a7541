// Branch/tag → commit SHA, as Argo CD's repo-server does it: an explicit repo map set by tests first, then the real
// `git ls-remote` of the repository (file://, or http(s):// with the repository credentials registered for it, as
// Argo CD's repository secrets give them), so end-to-end tests see real pushes.
import { execFile } from 'node:child_process';

export type RepoMap = Map<string, Map<string, string>>;

/** Repository credentials by repoKey, as Argo CD's repository secrets hold them. */
export type RepoCredentials = Map<string, { username: string; password: string }>;

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

function lsRemote(url: string, credentials?: { username: string; password: string }): Promise<Map<string, string>> {
  const auth = credentials
    ? {
        GIT_CONFIG_COUNT: '1',
        GIT_CONFIG_KEY_0: `http.${url}.extraHeader`,
        GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`,
      }
    : {};
  return new Promise((resolve, reject) => {
    const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', ...auth };
    execFile('git', ['ls-remote', url], { timeout: 10_000, env }, (error, stdout) => {
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
export async function resolveRevision(
  repos: RepoMap,
  repoURL: string,
  revision: string | undefined,
  credentials?: RepoCredentials,
): Promise<string> {
  const wanted = revision === undefined || revision === '' ? 'HEAD' : revision;
  if (SHA.test(wanted)) return wanted;
  const mapped = repos.get(repoKey(repoURL));
  if (mapped) {
    const sha = mapped.get(shortRef(wanted));
    if (sha) return sha;
  }
  if (/^(file|https?):\/\//.test(repoURL)) {
    let refs: Map<string, string>;
    try {
      refs = await lsRemote(repoURL, credentials?.get(repoKey(repoURL)));
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
