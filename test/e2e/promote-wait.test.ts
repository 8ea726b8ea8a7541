// `ferry promote … --wait` against the real thing: a Temporal dev server, the worker with real git, the HTTP API on
// 127.0.0.1, and the CLI's entry run(argv, io) in this process. A promotion that needs an approval is followed
// while it waits, approved (exit 0) or rejected (exit 4) by another CLI run; a promotion whose render fails exits 3.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiServer } from '../../api/server';
import { WAIT_EXIT_CODES } from '../../cli/commands/promote';
import type { Io } from '../../cli/io';
import { run } from '../../cli/run';
import { validatePipeline } from '../../pipeline/load';
import { startStack, type Stack } from '../helpers/stack';

const TOKENS = { 'tok-alice-wait-0123456789abcdef': 'alice', 'tok-bob-wait-0123456789abcdef': 'bob' };
const [ALICE, BOB] = Object.keys(TOKENS);

interface Running {
  lines: string[];
  printed(pattern: RegExp): Promise<void>;
  done: Promise<{ code: number; stdout: string; stderr: string }>;
}

describe('ferry promote --wait on a real stack', () => {
  let dir: string;
  let stack: Stack;
  let api: ApiServer;

  /** Starts `ferry ARGS` as `token`'s user; the lines it has printed, a wait for one, and its end. */
  const ferry = (token: string, args: string[]): Running => {
    const lines: string[] = [];
    let stderr = '';
    const waiters: Array<[RegExp, () => void]> = [];
    const io: Io = {
      out: (line = '') => {
        lines.push(line);
        for (const [pattern, resolve] of waiters) if (pattern.test(line)) resolve();
      },
      err: (line) => void (stderr += `${line}\n`),
      env: { FERRY_URL: api.url, FERRY_TOKEN: token },
      cwd: dir,
      readStdin: () => '',
    };
    const done = run(args, io).then((code) => ({ code, stdout: lines.map((l) => `${l}\n`).join(''), stderr }));
    return {
      lines,
      done,
      printed: (pattern) =>
        lines.some((l) => pattern.test(l))
          ? Promise.resolve()
          : new Promise((resolve, reject) => {
              waiters.push([pattern, resolve]);
              void done.then((r) => reject(new Error(`ended (${r.code}) before ${pattern}:\n${r.stdout}${r.stderr}`)));
            }),
    };
  };

  before(async () => {
    stack = await startStack({ name: 'promote-wait', tokens: TOKENS });
    ({ api, dir } = stack);
    const client = stack.ferry;
    const repo = stack.repo;
    const loaded = validatePipeline({
      apiVersion: 'ferry.dev/v1alpha1',
      kind: 'Pipeline',
      metadata: { name: 'guestbook' },
      spec: {
        repo: { url: repo.url },
        artifacts: [{ name: 'guestbook', image: 'registry.example.com/team/guestbook' }],
        stages: [
          {
            name: 'staging',
            approval: { required: 1, approvers: ['bob'] },
            render: { strategy: 'branch', from: 'apps/guestbook/overlays/staging', to: 'env/staging' },
          },
          { name: 'broken', render: { strategy: 'branch', from: 'apps/guestbook/overlays/nowhere', to: 'env/broken' } },
        ],
      },
    });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    await client.applyPipeline(loaded.pipeline);
  });

  after(async () => {
    await stack?.close();
  });

  it('shows the approval it waits for, then the steps, and exits 0 once approved', async () => {
    const freight = (await ferry(ALICE, ['freight', 'add', 'guestbook', 'guestbook=1.4.2']).done).stdout.trim();
    const id = `promotion/guestbook/staging/${freight}`;
    const waiting = ferry(ALICE, ['promote', 'guestbook', 'staging', freight, '--wait', '--timeout', '5m']);
    await waiting.printed(/^waiting for 1 more approval \(0 of 1\) from: bob; ferry approve /);
    const approved = await ferry(BOB, ['approve', id, '-m', 'ship it']).done;
    assert.equal(approved.code, 0, approved.stderr);
    const result = await waiting.done;
    assert.equal(result.code, WAIT_EXIT_CODES.Succeeded, result.stdout + result.stderr);
    const lines = result.stdout.trimEnd().split('\n');
    assert.equal(lines[0], id);
    for (const expected of [
      /^phase: AwaitingApproval$/,
      /^approved by bob "ship it" \(1 of 1\)$/,
      /^step preflight: Succeeded: /,
      /^step render: Succeeded: pushed [0-9a-f]{12} to env\/staging/,
    ]) {
      assert.ok(
        lines.some((l) => expected.test(l)),
        `${expected} in:\n${result.stdout}`,
      );
    }
    assert.equal(lines.at(-1), 'phase: Succeeded');
  });

  it('exits 4 with who rejected it when an approver rejects', async () => {
    const freight = (await ferry(ALICE, ['freight', 'add', 'guestbook', 'guestbook=1.4.3']).done).stdout.trim();
    const id = `promotion/guestbook/staging/${freight}`;
    const waiting = ferry(ALICE, ['promote', 'guestbook', 'staging', freight, '--wait', '--timeout', '5m']);
    await waiting.printed(/^waiting for 1 more approval/);
    assert.equal((await ferry(BOB, ['reject', id, '-m', 'not this one']).done).code, 0);
    const result = await waiting.done;
    assert.equal(result.code, WAIT_EXIT_CODES.Rejected, result.stdout + result.stderr);
    assert.match(result.stdout, /^rejected by bob "not this one"$/m);
    assert.match(result.stdout, /phase: Rejected\n$/);
    assert.equal(result.stderr, `error: promotion ${id} ended Rejected: rejected by bob ("not this one")\n`);
  });

  it('exits 3 with the error and reason when the promotion fails', async () => {
    const freight = (await ferry(ALICE, ['freight', 'add', 'guestbook', 'guestbook=1.4.4']).done).stdout.trim();
    const result = await ferry(ALICE, ['promote', 'guestbook', 'broken', freight, '--wait', '--timeout', '5m']).done;
    assert.equal(result.code, WAIT_EXIT_CODES.Failed, result.stdout + result.stderr);
    assert.match(result.stdout, /^step (preflight|render): Failed: .*nowhere/m);
    assert.match(
      result.stderr,
      /^error: promotion promotion\/guestbook\/broken\/\w+ ended Failed: .*nowhere.* \[\w+\]\n$/,
    );
  });
});
