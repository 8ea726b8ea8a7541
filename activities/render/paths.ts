// Paths inside the repository being rendered: relative, forward slashes, '' for the root. Engines name files in
// their failures by these paths, so a message points at the file in the repository, not at a temporary copy.
import { posix } from 'node:path';

/** `path` (relative to `dir`) as a path from the repository root. */
export function repositoryPath(dir: string, path: string): string {
  return dir === '' ? path : `${dir}/${path}`;
}

/**
 * Where `reference`, written in a file of directory `dir`, points in the repository; undefined when it leaves the
 * repository (an absolute path, or `..` above the root). An engine must never read outside the repository: a path
 * to the worker's own disk would publish the worker's files into git.
 */
export function resolveInRepository(dir: string, reference: string): string | undefined {
  if (reference.startsWith('/')) return undefined;
  const joined = posix.normalize(posix.join(dir === '' ? '.' : dir, reference));
  if (joined === '..' || joined.startsWith('../')) return undefined;
  return joined === '.' ? '' : joined.replace(/\/+$/, '');
}

/** The directory holding `path` ('' at the root). */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}
