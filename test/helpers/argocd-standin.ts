// One Argo CD stand-in for a whole test file, clean for every test.
import { after, afterEach, before } from 'node:test';
import { startArgoCdStandIn, type ArgoCdStandIn, type ArgoCdStandInOptions } from '../standin/argocd/server';

/**
 * Registers the file's hooks: the stand-in starts before the first test and is handed to `use`, is reset to `options`
 * after each test (control.reset: no apps, repos, injections or recorded requests; the tokens and timing it started
 * with), and closes after the last.
 */
export function argoCdStandInForFile(options: ArgoCdStandInOptions, use: (standIn: ArgoCdStandIn) => void): void {
  let standIn: ArgoCdStandIn;
  before(async () => {
    standIn = await startArgoCdStandIn(options);
    use(standIn);
  });
  after(async () => {
    await standIn.close();
  });
  afterEach(() => {
    standIn.control.reset();
  });
}
