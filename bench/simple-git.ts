// What simple-git costs per git call against Ferry's own runner (activities/git.ts runGit: spawn in a process group
// of its own, watched by the reaper), for the calls a promotion makes: a local porcelain read (`git log`), a remote
// read (`git ls-remote` of a file:// remote) and a plumbing read (`git cat-file -t`). Both run the same git
// command; the rows alternate (runner, simple-git, runner, …) call by call.
//
//   npm run bench -- simple-git [--calls 200]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { runGit, runPorcelain } from '../activities/git';
import { formatRatio, formatSample, intOption, loadLine, median, table } from './stats';

export async function run(argv: readonly string[]): Promise<void> {
  const calls = intOption(argv, 'calls', 200);
  const loadBefore = loadLine();
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-simple-git-'));
  try {
    const env = {
      ...process.env,
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'Bench',
      GIT_AUTHOR_EMAIL: 'bench@example.com',
      GIT_COMMITTER_NAME: 'Bench',
      GIT_COMMITTER_EMAIL: 'bench@example.com',
      GIT_ALLOW_PROTOCOL: 'file',
    };
    const remote = join(dir, 'remote.git');
    const ws = join(dir, 'workspace.git');
    execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', remote], { env });
    const input = Array.from({ length: 20 }, (_, i) =>
      [
        `commit refs/heads/main`,
        `committer Bench <b@e> ${1700000000 + i} +0000`,
        `data ${`c${i}`.length}`,
        `c${i}`,
        '',
      ].join('\n'),
    ).join('\n');
    execFileSync('git', ['--git-dir', remote, 'fast-import', '--quiet'], { env, input });
    execFileSync('git', ['clone', '--quiet', '--bare', pathToFileURL(remote).href, ws], { env });
    execFileSync('git', ['--git-dir', ws, 'remote', 'set-url', 'origin', pathToFileURL(remote).href], { env });
    const head = execFileSync('git', ['--git-dir', ws, 'rev-parse', 'main'], { env, encoding: 'utf8' }).trim();

    const kinds: [string, string[]][] = [
      ['log -n20 (porcelain, local)', ['log', '-n20', '--format=%H%x1f%T', head, '--']],
      ['ls-remote (porcelain, remote)', ['ls-remote', '--heads', 'origin']],
      ['cat-file -t (plumbing)', ['cat-file', '-t', head]],
    ];
    const rows: string[][] = [];
    for (const [name, args] of kinds) {
      const runner: number[] = [];
      const simple: number[] = [];
      for (let i = 0; i < calls; i++) {
        let t = performance.now();
        await runGit(['--git-dir', ws, ...args], { env });
        runner.push(performance.now() - t);
        t = performance.now();
        await runPorcelain(ws, args, { env });
        simple.push(performance.now() - t);
      }
      rows.push([
        name,
        formatSample(runner),
        formatSample(simple),
        formatRatio(median(simple), median(runner)),
        `${(median(simple) - median(runner)).toFixed(2)} ms`,
      ]);
    }
    process.stdout.write(
      [
        `simple-git: ${calls} calls of each kind, alternating (runner, simple-git, …), one workspace on local disk`,
        `node ${process.version}; before: ${loadBefore}; after: ${loadLine()}`,
        '',
        table(['call', 'runner (runGit)', 'simple-git (runPorcelain)', 'ratio', 'difference'], rows),
        '',
      ].join('\n'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
