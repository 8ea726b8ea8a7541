// When two repository URLs name the same repository. Dependency-free: the client, the activities and the webhooks
// compare URLs the same way.

/** Repository URLs compared for "the same repository": case of scheme and host, a trailing `.git` or `/`, a user. */
export function sameRepository(a: string, b: string): boolean {
  return normalizeRepositoryUrl(a) === normalizeRepositoryUrl(b);
}

export function normalizeRepositoryUrl(url: string): string {
  const out = url
    .trim()
    .replace(/\/+$/, '')
    .replace(/\.git$/, '');
  const match = /^([a-z+]+:\/\/)([^/]*)(.*)$/i.exec(out);
  return match ? `${match[1].toLowerCase()}${match[2].toLowerCase().replace(/^[^@]*@/, '')}${match[3]}` : out;
}
