// Preflight: every check a promotion can make before its first git write. PLACEHOLDER being replaced on branch
// h-git; it checks nothing yet.
import type { PreflightInput, PreflightResult } from './types';

export function createPreflightActivities() {
  async function preflightPromotion(_input: PreflightInput): Promise<PreflightResult> {
    return { checked: [] };
  }
  return { preflightPromotion };
}
