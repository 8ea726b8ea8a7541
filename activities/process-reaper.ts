// git, kustomize and helm run in a process group of their own (so that a timeout stops their helpers too), which
// also means nothing stops them when the worker is SIGKILLed. A reaper, one awk process per worker in a group of its
// own, reads "+<group>" and "-<group>" lines on its stdin for every child process started and finished; when the
// worker dies, for any reason, the pipe closes and the reaper kills the groups still listed.
import { spawn } from 'node:child_process';

const REAPER_PROGRAM =
  '/^\\+[0-9]+$/ { live[substr($0, 2)] = 1 } /^-[0-9]+$/ { delete live[substr($0, 2)] } ' +
  'END { for (g in live) system("kill -s KILL -- -" g " 2>/dev/null") }';

export interface Reaper {
  watch(group: number): void;
  forget(group: number): void;
}

let reaper: Reaper | undefined;

/** The worker's reaper, started on first use (and again if it died). */
export function processReaper(): Reaper {
  if (reaper) return reaper;
  let alive = true;
  const child = spawn('awk', [REAPER_PROGRAM], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  const gone = () => {
    alive = false;
    reaper = undefined; // the next child process starts a new one
  };
  child.on('error', gone);
  child.on('exit', gone);
  child.stdin.on('error', gone);
  // Neither the reaper nor its pipe keeps the worker's event loop alive.
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  const send = (line: string) => {
    if (alive) child.stdin.write(line);
  };
  reaper = { watch: (group) => send(`+${group}\n`), forget: (group) => send(`-${group}\n`) };
  return reaper;
}
