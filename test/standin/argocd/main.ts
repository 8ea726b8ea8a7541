// Runs the Argo CD stand-in as its own process:
//   tsx test/standin/argocd/main.ts [--port 0] [--token <jwt>]... [--timing '{"syncDurationMs":100}']
// Prints one JSON line {"url":"http://127.0.0.1:PORT"} on stdout once listening; exits on SIGTERM/SIGINT.
// Everything else (apps, repos, tokens, injections) is set through the /__standin/* control API.
import { parseArgs } from 'node:util';
import { startArgoCdStandIn } from './server';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      token: { type: 'string', multiple: true, default: [] },
      timing: { type: 'string' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port must be a port number, got "${values.port}"`);
  const standIn = await startArgoCdStandIn({
    port,
    tokens: Object.fromEntries(values.token.map((t) => [t, true])),
    ...(values.timing ? { timing: JSON.parse(values.timing) as Record<string, number> } : {}),
  });
  process.stdout.write(`${JSON.stringify({ url: standIn.url })}\n`);
  const stop = (): void => {
    void standIn.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`argocd stand-in: ${(err as Error).message}\n`);
  process.exit(1);
});
