// `ferry approve ID [-m COMMENT]`: approves a promotion waiting at its approval gate.
import { decisionCommand } from './decide';

export const approve = decisionCommand('approve', 'approve a promotion');
