// `npm run bench -- <name> [options]`: runs one benchmark; without a name, lists them. Each benchmark compares
// Ferry with the floor (the same work done by plain git or a plain HTTP server) in the same run, interleaved.
interface Benchmark {
  describe: string;
  usage: string;
  load(): Promise<{ run(argv: readonly string[]): Promise<void> }>;
}

const BENCHMARKS: Record<string, Benchmark> = {
  'simple-git': {
    describe: 'the cost per git call of simple-git against Ferry’s own runner (porcelain, remote and plumbing calls)',
    usage: '[--calls 200]',
    load: () => import('./simple-git'),
  },
  orchestration: {
    describe:
      'a promotion, a three-stage auto chain, 200 concurrent promotions and an evicted status query, end to end ' +
      'through the HTTP API on a real Temporal dev server, against plain git scripts',
    usage: '[--quick] [--runs N] [--concurrent-runs N] [--concurrency N] [--floor-concurrency N] [--timeout S]',
    load: () => import('./orchestration'),
  },
  git: {
    describe:
      'the git step end to end: a promotion into a warm repository, into a large repository (cold and warm), N ' +
      'concurrent promotions into one trunk, and the kustomize and helm renders, against plain git scripts and the ' +
      'binaries alone',
    usage:
      '[--quick] [--runs N] [--cold-runs N] [--trunk-runs N] [--render-runs N] [--concurrency N] ' +
      '[--floor-concurrency N] [--commits N] [--files N] [--timeout S]',
    load: () => import('./git-promotion'),
  },
};

async function main(): Promise<void> {
  const [name, ...argv] = process.argv.slice(2);
  const benchmark = name === undefined ? undefined : BENCHMARKS[name];
  if (!benchmark) {
    const lines = Object.entries(BENCHMARKS).map(
      ([key, b]) => `  npm run bench -- ${key} ${b.usage}\n      ${b.describe}`,
    );
    const intro = name === undefined ? 'Benchmarks:' : `No benchmark named "${name}". Benchmarks:`;
    process.stdout.write(`${intro}\n${lines.join('\n')}\nResults and how to read them: docs/performance.md\n`);
    process.exitCode = name === undefined ? 0 : 2;
    return;
  }
  await (await benchmark.load()).run(argv);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
