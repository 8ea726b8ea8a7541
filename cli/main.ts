// The `ferry` process (bin/ferry.js): the CLI of run.ts with this process's arguments, streams and environment.
import { processIo } from './io';
import { run } from './run';

// A closed pipe (`ferry status x | head -1`) is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

void run(process.argv.slice(2), processIo()).then((code) => {
  process.exitCode = code;
});
