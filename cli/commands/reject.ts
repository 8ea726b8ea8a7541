// `ferry reject ID [-m COMMENT]`: rejects a promotion waiting at its approval gate; it ends Rejected.
import { decisionCommand } from './decide';

export const reject = decisionCommand('reject', 'reject a promotion');
