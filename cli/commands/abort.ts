// `ferry abort ID [-m COMMENT]`: ends an unfinished promotion at whatever step it is (docs/concepts.md says who may).
import { decisionCommand } from './decide';

export const abort = decisionCommand('abort', 'abort a promotion');
