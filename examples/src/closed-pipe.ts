/**
 * `tapfit train ... | head`: when the reader of stdout (or stderr) goes away, the next
 * write fails with EPIPE. That is the user's choice, not a bug: end quietly (exit 0), as
 * other command-line tools do, instead of an unhandled 'error' event's stack trace.
 * Any other stream error is still thrown.
 */
export function exitQuietlyWhenPipeCloses(streams: readonly NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
}
