// Git's own rules for branch names and the rules for paths inside a repository, as pure functions: the loader runs
// in the API, where a `git check-ref-format` subprocess per field would be slow. test/unit/pipeline.test.ts checks
// that branchNameProblem agrees with `git check-ref-format --branch` on a table of names.

/**
 * The longest branch name Ferry accepts, in bytes: `refs/heads/<name>` then fits in 255 bytes, the file-name limit
 * of common file systems, where git stores loose refs (and their `.lock` files) one path component per file.
 */
export const MAX_BRANCH_BYTES = 244;

/** Characters git never allows in a ref name (besides ASCII control characters and DEL). */
const FORBIDDEN = new Set([' ', '~', '^', ':', '?', '*', '[', '\\']);

function describeChar(c: string): string {
  const code = c.charCodeAt(0);
  if (code < 0x20 || code === 0x7f)
    return `the control character U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  return c === ' ' ? 'a space' : `"${c}"`;
}

/**
 * Why git would refuse `name` as a branch name (`git check-ref-format --branch`), or undefined when it is valid.
 * Also refused, beyond git: `@` alone (git reads it as HEAD) and names longer than MAX_BRANCH_BYTES.
 */
export function branchNameProblem(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name === 'HEAD' || name === '@') return `"${name}" means the current commit to git, not a branch`;
  if (name.startsWith('-')) return 'it starts with "-" (git would read it as an option)';
  for (const c of name) {
    const code = c.charCodeAt(0);
    if (code < 0x20 || code === 0x7f || FORBIDDEN.has(c)) return `it contains ${describeChar(c)}`;
  }
  if (name.includes('..')) return 'it contains ".."';
  if (name.includes('@{')) return 'it contains "@{"';
  if (name.startsWith('/')) return 'it starts with "/"';
  if (name.endsWith('/')) return 'it ends with "/"';
  if (name.includes('//')) return 'it contains "//" (an empty path component)';
  if (name.endsWith('.')) return 'it ends with "."';
  for (const component of name.split('/')) {
    if (component.startsWith('.')) return `its path component "${component}" starts with "."`;
    if (component.endsWith('.lock')) return `its path component "${component}" ends with ".lock"`;
  }
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_BRANCH_BYTES) return `it is ${bytes} bytes long; the limit is ${MAX_BRANCH_BYTES}`;
  return undefined;
}

/**
 * Why `path` is not a clean relative path inside a repository, or undefined when it is. `.` and a leading `./` or
 * trailing `/` are accepted (the repository root, the same directory); `..`, absolute paths, backslashes, empty
 * components and control characters are not.
 */
export function repoPathProblem(path: string): string | undefined {
  if (path === '') return 'must not be empty';
  for (const c of path) {
    const code = c.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) return `must not contain ${describeChar(c)}`;
  }
  if (path.startsWith('/')) return 'must be a path relative to the repository root, not an absolute path';
  if (path.includes('\\')) return 'must use "/" between directories, not "\\"';
  const parts = path
    .replace(/^(\.\/)+/, '')
    .replace(/\/$/, '')
    .split('/');
  if (parts.some((p) => p === '..')) return 'must stay inside the repository: ".." is not allowed';
  if (parts.length > 1 && parts.some((p) => p === '' || p === '.'))
    return 'must not contain empty or "." path components';
  if (parts.some((p) => p === '.git')) return 'must not point into ".git"';
  return undefined;
}
