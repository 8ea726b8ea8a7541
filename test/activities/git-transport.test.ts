// Promotions over the real transports, against real servers on loopback: Debian's sshd (key authentication, a
// host key of its own) and git http-backend behind an HTTPS server whose certificate a private CA signed (HTTP basic
// auth). renderAndPush writes the stage branch; plain git on the server's repository checks the commit. Every wrong
// credential fails at once (non-retryable, one git command, one connection or none) with the remote named and no
// secret in the message; the preflight gives the same answer before anything is written.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { createPreflightActivities } from '../../activities/preflight';
import { createGitActivities } from '../../activities/render-and-push';
import { createSecretResolver, type SecretResolver } from '../../activities/secrets';
import type { RenderAndPushInput } from '../../activities/types';
import type { Repo } from '../../pipeline/schema';
import { createExampleRepo, EXAMPLE_IMAGE } from '../../dev/example';
import { git } from '../helpers/git';
import {
  createPrivateCa,
  generateKeyPair,
  recordGitCalls,
  startSshd,
  type GitCalls,
  type KeyPair,
  type PrivateCa,
  type Sshd,
} from '../helpers/transport-servers';
import { startGitHttpServer, type GitHttpServer } from '../helpers/git-http-server';

process.env.GIT_CONFIG_GLOBAL = '/dev/null';
process.env.GIT_CONFIG_NOSYSTEM = '1';

let dir: string;
let gitCalls: GitCalls;
const originalPath = process.env.PATH;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-transport-'));
  // Ferry runs `git` from PATH: a recording git first on it counts the commands that talked to the remote.
  gitCalls = recordGitCalls(join(dir, 'calls'));
  process.env.PATH = `${gitCalls.bin}:${originalPath}`;
});
after(() => {
  process.env.PATH = originalPath;
  rmSync(dir, { recursive: true, force: true });
});

let promotions = 0;
function promotion(repo: Repo): RenderAndPushInput {
  const n = ++promotions;
  return {
    pipeline: 'guestbook',
    stage: 'dev',
    promotionId: `promotion/guestbook/dev/f-${n}`,
    runId: `run-${n}`,
    repo,
    render: { strategy: 'branch', engine: 'plain', from: 'apps/guestbook/overlays/dev', to: 'env/dev' },
    artifacts: [{ name: 'guestbook', image: EXAMPLE_IMAGE }],
    freight: { id: `f-${n}`, artifacts: { guestbook: `1.0.${n}` } },
  };
}

function activities(secrets: SecretResolver) {
  const workspaceRoot = join(dir, 'workspaces');
  return {
    ...createGitActivities({ workspaceRoot, secrets }),
    ...createPreflightActivities({ workspaceRoot, secrets }),
  };
}

/** Every form a secret could leak in: itself, its base64, each line of a key, user:secret in base64. */
function leakForms(secrets: string[]): string[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    forms.add(secret);
    forms.add(Buffer.from(secret).toString('base64'));
    for (const line of secret.split('\n')) if (line.length >= 8 && !line.startsWith('-----')) forms.add(line.trim());
    for (const user of ['x-access-token', 'ferry-bot']) forms.add(Buffer.from(`${user}:${secret}`).toString('base64'));
  }
  return [...forms];
}

function assertNoSecret(text: string, secrets: string[], where: string): void {
  for (const form of leakForms(secrets))
    assert.ok(!text.includes(form), `${where} holds a secret (${form.slice(0, 6)}…)`);
}

interface Refusal {
  type: string;
  patterns: RegExp[];
  /** Secret values that must appear nowhere. */
  secrets: string[];
  /** git commands that may talk to the remote: 1 (it tried once) or 0 (refused before connecting). */
  networkCalls: 0 | 1;
  /** What reached the server (ssh connections, HTTP requests): one attempt, or none. */
  reached: 0 | 1;
}

/** Runs a promotion expected to fail as described, then the preflight of the same repository, and compares. */
async function refusedTwice(
  ferry: ReturnType<typeof activities>,
  repo: Repo,
  expected: Refusal,
  serverSaw: () => number,
): Promise<{ promotion: ApplicationFailure; preflight: ApplicationFailure }> {
  const failures: ApplicationFailure[] = [];
  for (const run of [
    () => ferry.renderAndPush(promotion(repo)),
    () => ferry.preflightPromotion({ pipeline: 'guestbook', stage: 'dev', repo, render: promotion(repo).render }),
  ]) {
    gitCalls.reset();
    const before = serverSaw();
    let caught: unknown;
    try {
      await run();
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(caught)}`);
    assert.equal(caught.type, expected.type, caught.message);
    assert.equal(caught.nonRetryable, true, `${caught.message} is non-retryable`);
    for (const pattern of expected.patterns) assert.match(caught.message, pattern);
    assert.equal(gitCalls.networkCalls().length, expected.networkCalls, gitCalls.networkCalls().join('\n'));
    assert.equal(serverSaw() - before, expected.reached, 'what reached the server: one attempt, or none');
    assertNoSecret(
      `${caught.message}\n${caught.stack ?? ''}\n${JSON.stringify(caught)}`,
      expected.secrets,
      'the failure',
    );
    assertNoSecret(gitCalls.calls().join('\n'), expected.secrets, "git's arguments");
    failures.push(caught);
  }
  const [fromPromotion, fromPreflight] = failures as [ApplicationFailure, ApplicationFailure];
  // The same words from both, up to what each was doing (`git fetch …` or `git ls-remote …`, the preflight's prefix).
  const gist = (m: string) =>
    m
      .replace(/^(stage dev: spec\.repo\.credentials: )?/, '')
      .replace(/git (fetch|ls-remote) /, 'git … ')
      .replace(/ \(branch [^)]*\)/, '');
  assert.equal(gist(fromPreflight.message), gist(fromPromotion.message));
  return { promotion: fromPromotion, preflight: fromPreflight };
}

describe('git over ssh:// against Debian sshd on loopback', () => {
  let sshd: Sshd;
  let remote: string;
  let ferryKey: KeyPair;
  let strangerKey: KeyPair;
  let otherHostLine: string;

  before(async () => {
    sshd = await startSshd(join(dir, 'sshd'));
    remote = createExampleRepo(join(dir, 'ssh-remote', 'gitops.git')).path;
    ferryKey = generateKeyPair(join(dir, 'keys'), 'ferry');
    strangerKey = generateKeyPair(join(dir, 'keys'), 'stranger');
    sshd.authorize(ferryKey.publicKey);
    // Another server's key under this server's name: what a machine in the middle would offer.
    const other = generateKeyPair(join(dir, 'keys'), 'other-host');
    otherHostLine = `[127.0.0.1]:${sshd.port} ${other.publicKey.split(' ').slice(0, 2).join(' ')}`;
  });
  after(async () => sshd?.stop());

  const url = () => sshd.repoUrl(remote);
  const display = () => `ssh://127.0.0.1:${sshd.port}${remote}`;
  const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const secretsWith = (fields: Record<string, string>, env: NodeJS.ProcessEnv = {}) =>
    createSecretResolver({
      env: { ...Object.fromEntries(Object.entries(fields).map(([k, v]) => [`FERRY_SECRET_GITOPS_${k}`, v])), ...env },
    });
  const repo = (): Repo => ({ url: url(), branch: 'main', credentials: 'gitops' });

  it('promotes with the credential’s key and known hosts: the commit is on the server', async () => {
    const ferry = activities(secretsWith({ SSH_KEY: ferryKey.privateKey, KNOWN_HOSTS: sshd.knownHostsLine }));
    const checked = await ferry.preflightPromotion({
      pipeline: 'guestbook',
      stage: 'dev',
      repo: repo(),
      render: promotion(repo()).render,
    });
    assert.match(checked.checked[0]!, new RegExp(`^git: ${escaped(display())} answers; main at [0-9a-f]{12}`));
    const input = promotion(repo());
    const result = await ferry.renderAndPush(input);
    assert.equal(result.created, true);
    assert.equal(git(remote, 'rev-parse', 'env/dev'), result.commit);
    assert.match(
      git(remote, 'log', '-1', '--format=%B', 'env/dev'),
      new RegExp(`Ferry-Promotion: ${input.promotionId}`),
    );
    assert.match(
      git(remote, 'show', 'env/dev:deployment.yaml'),
      new RegExp(`${escaped(EXAMPLE_IMAGE)}:${input.freight.artifacts.guestbook}`),
    );
    assert.match(sshd.log(), /Accepted publickey for \S+ from 127\.0\.0\.1 port \d+ ssh2: ED25519/);
  });

  it('promotes with the worker-wide FERRY_SSH_KNOWN_HOSTS when the credential has no known hosts', async () => {
    const file = join(dir, 'worker_known_hosts');
    writeFileSync(file, `# the operator's list\n${sshd.knownHostsLine}\n`);
    const ferry = activities(secretsWith({ SSH_KEY: ferryKey.privateKey }, { FERRY_SSH_KNOWN_HOSTS: file }));
    const result = await ferry.renderAndPush(promotion(repo()));
    assert.equal(git(remote, 'rev-parse', 'env/dev'), result.commit);
  });

  it('a wrong key fails at once: GitAuthFailed, the remote and the field named, no key in any output', async () => {
    const { promotion: failure } = await refusedTwice(
      activities(secretsWith({ SSH_KEY: strangerKey.privateKey, KNOWN_HOSTS: sshd.knownHostsLine })),
      repo(),
      {
        type: 'GitAuthFailed',
        patterns: [
          new RegExp(
            `^git (fetch|ls-remote) ${escaped(display())}( \\(branch main\\))?: authentication failed: the server refused the SSH key`,
          ),
          /check the ssh_key of credential "gitops" \(FERRY_SECRET_GITOPS_SSH_KEY\)/,
          /Permission denied \(publickey\)/,
        ],
        secrets: [strangerKey.privateKey, ferryKey.privateKey],
        networkCalls: 1,
        reached: 1,
      },
      () => sshd.connections(),
    );
    assert.ok(!failure.message.includes(`${sshd.user}@`), 'the URL is shown without its user');
  });

  it('a key ssh cannot read fails at once: GitAuthFailed, saying what form the ssh_key must have', async () => {
    const notAKey = 'this-is-not-a-private-key';
    await refusedTwice(
      activities(secretsWith({ SSH_KEY: notAKey, KNOWN_HOSTS: sshd.knownHostsLine })),
      repo(),
      {
        type: 'GitAuthFailed',
        patterns: [
          new RegExp(
            `^git (fetch|ls-remote) ${escaped(display())}( \\(branch main\\))?: ssh cannot read the ssh_key of credential "gitops" \\(FERRY_SECRET_GITOPS_SSH_KEY\\)`,
          ),
          /it must be an unencrypted private key in OpenSSH or PEM format \(ssh: /,
        ],
        secrets: [notAKey],
        networkCalls: 1,
        reached: 1,
      },
      () => sshd.connections(),
    );
  });

  it('a host key that differs from the known hosts line fails at once: GitHostKeyChanged, with the offered fingerprint', async () => {
    await refusedTwice(
      activities(secretsWith({ SSH_KEY: ferryKey.privateKey, KNOWN_HOSTS: otherHostLine })),
      repo(),
      {
        type: 'GitHostKeyChanged',
        patterns: [
          new RegExp(
            `^git (fetch|ls-remote) ${escaped(display())}( \\(branch main\\))?: host key verification failed: the host offered a key that does not match its line`,
          ),
          /the known_hosts of credential "gitops" \(FERRY_SECRET_GITOPS_KNOWN_HOSTS\)/,
          new RegExp(`offered ${escaped(fingerprint(sshd.knownHostsLine))}\\)`),
        ],
        secrets: [ferryKey.privateKey],
        networkCalls: 1,
        reached: 1,
      },
      () => sshd.connections(),
    );
  });

  it('known hosts of another host only fail at once: GitHostKeyUnknown, saying how to get the line', async () => {
    const elsewhere = sshd.knownHostsLine.replace(/^\[127\.0\.0\.1\]:\d+/, 'git.example.com');
    await refusedTwice(
      activities(secretsWith({ SSH_KEY: ferryKey.privateKey, KNOWN_HOSTS: elsewhere })),
      repo(),
      {
        type: 'GitHostKeyUnknown',
        patterns: [
          new RegExp(
            `^git (fetch|ls-remote) ${escaped(display())}( \\(branch main\\))?: host key verification failed: no line for this host`,
          ),
          /the known_hosts of credential "gitops" \(FERRY_SECRET_GITOPS_KNOWN_HOSTS\) or FERRY_SSH_KNOWN_HOSTS/,
          new RegExp(`ssh-keyscan -p ${sshd.port} 127\\.0\\.0\\.1`),
        ],
        secrets: [ferryKey.privateKey],
        networkCalls: 1,
        reached: 1,
      },
      () => sshd.connections(),
    );
  });

  it('no known hosts at all is refused before connecting (no blind trust), naming the credential and the fields', async () => {
    await refusedTwice(
      activities(secretsWith({ SSH_KEY: ferryKey.privateKey })),
      repo(),
      {
        type: 'GitHostKeyUnknown',
        patterns: [
          new RegExp(
            `${escaped(display())}: credential "gitops" has no known_hosts and the worker has no FERRY_SSH_KNOWN_HOSTS`,
          ),
          /Ferry does not connect: set FERRY_SECRET_GITOPS_KNOWN_HOSTS to the host's known_hosts line/,
        ],
        secrets: [ferryKey.privateKey],
        networkCalls: 0,
        reached: 0,
      },
      () => sshd.connections(),
    );
  });

  it('a token for ssh:// is refused before connecting, as before', async () => {
    await refusedTwice(
      activities(secretsWith({ TOKEN: 'ghp_ssh-token-value' })),
      repo(),
      {
        type: 'InvalidArgument',
        patterns: [/credential "gitops" holds a token or password, which git cannot use over ssh:\/\//],
        secrets: ['ghp_ssh-token-value'],
        networkCalls: 0,
        reached: 0,
      },
      () => sshd.connections(),
    );
  });
});

/** The SHA256 fingerprint of a known_hosts line's key, as ssh-keygen prints it. */
function fingerprint(line: string): string {
  const file = join(dir, `fp-${Date.now()}-${Math.random()}`);
  writeFileSync(file, `${line}\n`);
  return /SHA256:[A-Za-z0-9+/=]+/.exec(execFileSync('ssh-keygen', ['-lf', file], { encoding: 'utf8' }))![0];
}

describe('git over https:// against git http-backend behind HTTPS with a private CA', () => {
  const token = 'ghp_tr4nsport-token-value';
  const password = 'c0rrect-h0rse-battery';
  let ca: PrivateCa;
  let otherCa: PrivateCa;
  let server: GitHttpServer;
  let projectRoot: string;

  before(async () => {
    ca = createPrivateCa(join(dir, 'ca'));
    otherCa = createPrivateCa(join(dir, 'other-ca'), 'Someone Else CA');
    projectRoot = join(dir, 'https-remotes');
    createExampleRepo(join(projectRoot, 'gitops.git'));
    server = await startGitHttpServer(projectRoot, {
      tls: { cert: ca.cert, key: ca.key },
      authorization: [`x-access-token:${token}`, `ferry-bot:${password}`].map(
        (pair) => `Basic ${Buffer.from(pair).toString('base64')}`,
      ),
    });
  });
  after(async () => server?.close());

  const remote = () => join(projectRoot, 'gitops.git');
  const url = () => server.url('gitops.git');
  const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const repo = (): Repo => ({ url: url(), branch: 'main', credentials: 'gitops' });
  const secretsWith = (fields: Record<string, string>) =>
    createSecretResolver({
      env: Object.fromEntries(Object.entries(fields).map(([k, v]) => [`FERRY_SECRET_GITOPS_${k}`, v])),
    });
  let seenBefore = 0;
  beforeEach(() => {
    seenBefore = server.seen.length;
  });

  for (const [label, fields, header] of [
    ['a token', () => ({ TOKEN: token, CA: ca.caPem }), () => `x-access-token:${token}`],
    [
      'a username and password',
      () => ({ USERNAME: 'ferry-bot', PASSWORD: password, CA: ca.caPem }),
      () => `ferry-bot:${password}`,
    ],
  ] as const) {
    it(`promotes with ${label}, trusting the server through the credential's CA: the commit is on the server`, async () => {
      const input = promotion(repo());
      const result = await activities(secretsWith(fields())).renderAndPush(input);
      assert.equal(result.created, true);
      assert.equal(git(remote(), 'rev-parse', 'env/dev'), result.commit);
      assert.match(git(remote(), 'log', '-1', '--format=%B', 'env/dev'), new RegExp(`Ferry-Run: ${input.runId}`));
      const sent = server.seen.slice(seenBefore);
      assert.ok(sent.length >= 2, 'fetch and push reached the server');
      assert.ok(
        sent.every((h) => h === `Basic ${Buffer.from(header()).toString('base64')}`),
        'every request carried it',
      );
    });
  }

  it('a wrong password fails at once: GitAuthFailed, one request, the remote and the fields named, no secret', async () => {
    const wrong = 'wr0ng-h0rse-battery';
    await refusedTwice(
      activities(secretsWith({ USERNAME: 'ferry-bot', PASSWORD: wrong, CA: ca.caPem })),
      repo(),
      {
        type: 'GitAuthFailed',
        patterns: [
          new RegExp(
            `^git (fetch|ls-remote) ${escaped(url())}( \\(branch main\\))?: authentication failed \\(the server refused credential "gitops"`,
          ),
          /check its token \(FERRY_SECRET_GITOPS_TOKEN\), or its username and password \(FERRY_SECRET_GITOPS_USERNAME, FERRY_SECRET_GITOPS_PASSWORD\)/,
        ],
        secrets: [wrong],
        networkCalls: 1,
        reached: 1,
      },
      () => server.seen.length,
    );
  });

  it('a wrong token fails at once the same way', async () => {
    const wrong = 'ghp_wr0ng-token-value';
    await refusedTwice(
      activities(secretsWith({ TOKEN: wrong, CA: ca.caPem })),
      repo(),
      {
        type: 'GitAuthFailed',
        patterns: [
          new RegExp(`^git (fetch|ls-remote) ${escaped(url())}( \\(branch main\\))?: authentication failed`),
          /credential "gitops"/,
        ],
        secrets: [wrong],
        networkCalls: 1,
        reached: 1,
      },
      () => server.seen.length,
    );
  });

  for (const [label, fields] of [
    ['no CA (the system roots only)', () => ({ TOKEN: token })],
    ['another CA', () => ({ TOKEN: token, CA: otherCa.caPem })],
  ] as const) {
    it(`an untrusted certificate (${label}) fails at once: GitTlsUntrusted, before any request, naming the ca field`, async () => {
      await refusedTwice(
        activities(secretsWith(fields())),
        repo(),
        {
          type: 'GitTlsUntrusted',
          patterns: [
            new RegExp(
              `^git (fetch|ls-remote) ${escaped(url())}( \\(branch main\\))?: the server's TLS certificate is not trusted`,
            ),
            /set the ca of credential "gitops" \(FERRY_SECRET_GITOPS_CA\)/,
            /certificate checks are never turned off/,
            /SSL certificate problem|server certificate verification failed/,
          ],
          secrets: [token],
          networkCalls: 1,
          // No request gets through a handshake the client broke off.
          reached: 0,
        },
        () => server.seen.length,
      );
    });
  }
});
