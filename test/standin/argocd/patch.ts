// The two patch types PATCH /api/v1/applications/{name} takes: JSON merge patch (RFC 7386) and JSON patch
// (RFC 6902: add, remove, replace, test). A failed `test` is a plain error, as evanphx/json-patch reports it.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class PatchError extends Error {}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`invalid JSON pointer "${path}"`);
  return path
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

interface PatchOp {
  op: string;
  path: string;
  value?: unknown;
}

export function jsonPatch(document: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchError('json patch must be an array of operations');
  let doc = structuredClone(document);
  for (const raw of ops as PatchOp[]) {
    const parts = pointer(raw.path);
    if (parts.length === 0) {
      if (raw.op === 'replace' || raw.op === 'add') doc = structuredClone(raw.value);
      else throw new PatchError(`unsupported operation on the root: ${raw.op}`);
      continue;
    }
    const last = parts[parts.length - 1];
    let parent: unknown = doc;
    for (const part of parts.slice(0, -1)) {
      parent = Array.isArray(parent) ? parent[Number(part)] : isObject(parent) ? parent[part] : undefined;
      if (parent === undefined)
        throw new PatchError(`${raw.op} operation does not apply: doc is missing path: ${raw.path}`);
    }
    const has = Array.isArray(parent) ? Number(last) < parent.length : isObject(parent) && last in parent;
    const current = Array.isArray(parent) ? parent[Number(last)] : isObject(parent) ? parent[last] : undefined;
    switch (raw.op) {
      case 'test':
        if (JSON.stringify(current) !== JSON.stringify(raw.value))
          throw new PatchError(`testing value ${raw.path} failed: test failed`);
        break;
      case 'remove':
        if (!has) throw new PatchError(`remove operation does not apply: doc is missing path: ${raw.path}`);
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else if (isObject(parent)) delete parent[last];
        break;
      case 'replace':
        if (!has) throw new PatchError(`replace operation does not apply: doc is missing key: ${raw.path}`);
        if (Array.isArray(parent)) parent[Number(last)] = structuredClone(raw.value) as Json;
        else if (isObject(parent)) parent[last] = structuredClone(raw.value) as Json;
        break;
      case 'add':
        if (Array.isArray(parent)) {
          const index = last === '-' ? parent.length : Number(last);
          parent.splice(index, 0, structuredClone(raw.value) as Json);
        } else if (isObject(parent)) {
          parent[last] = structuredClone(raw.value) as Json;
        } else {
          throw new PatchError(`add operation does not apply: doc is missing path: ${raw.path}`);
        }
        break;
      default:
        throw new PatchError(`Unexpected kind: ${raw.op}`);
    }
  }
  return doc;
}
