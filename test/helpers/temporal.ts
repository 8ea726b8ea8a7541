// A real Temporal dev server for a test file: the CLI found (or installed) by the project, Ferry's search attributes.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { ensureTemporalCli } from '../../dev/temporal';
import { FERRY_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';

let runtimeInstalled = false;

/** `extraArgs` go to `temporal server start-dev`, e.g. `--dynamic-config-value` to lower limits. */
export async function createTemporalTestEnv(extraArgs: string[] = []): Promise<TestWorkflowEnvironment> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: ensureTemporalCli() },
      ip: '127.0.0.1',
      searchAttributes: FERRY_SEARCH_ATTRIBUTES,
      extraArgs,
    },
  });
}
