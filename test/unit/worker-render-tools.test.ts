// How the worker finds its kustomize and helm: the FERRY_*_PATH settings first, else the binaries on its PATH.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { describeRenderTools, findRenderTools } from '../../worker/render-tools';

describe('worker render tools', () => {
  it('takes FERRY_KUSTOMIZE_PATH and FERRY_HELM_PATH first, else executables named kustomize and helm on PATH', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-path-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const bin = join(dir, 'bin');
    const other = join(dir, 'other');
    mkdirSync(bin);
    mkdirSync(other);
    mkdirSync(join(other, 'kustomize')); // a directory of that name is not a binary
    writeFileSync(join(bin, 'helm'), '#!/bin/sh\n');
    chmodSync(join(bin, 'helm'), 0o755);
    writeFileSync(join(bin, 'kustomize'), 'not executable');
    const PATH = [other, '', bin].join(':');

    assert.deepEqual(findRenderTools({ PATH }), { helm: join(bin, 'helm') });
    assert.deepEqual(findRenderTools({ PATH, FERRY_KUSTOMIZE_PATH: '/opt/kustomize', FERRY_HELM_PATH: '/opt/helm' }), {
      kustomize: '/opt/kustomize',
      helm: '/opt/helm',
    });
    assert.deepEqual(findRenderTools({}), {});
  });

  it('says at start which engines the worker has, with versions, and how to add the others', () => {
    assert.equal(
      describeRenderTools({ kustomize: '/opt/kustomize', helm: '/opt/helm' }, { kustomize: 'v5.8.3' }),
      'render engines: plain, kustomize v5.8.3 (/opt/kustomize), helm unavailable (/opt/helm does not run)',
    );
    assert.equal(
      describeRenderTools({}, {}),
      'render engines: plain, kustomize unavailable (set FERRY_KUSTOMIZE_PATH or put kustomize on PATH), ' +
        'helm unavailable (set FERRY_HELM_PATH or put helm on PATH)',
    );
  });
});
