/**
 * `tapfit train ... | head`: when the reader of stdout (or stderr) goes away, the next
 * write fails with EPIPE. Unix tools then die of SIGPIPE (status 141), which `pipefail` and
 * CI see; the CLI does what a signal does instead (stop after the batch, save a checkpoint,
 * end with status 141), without a stack trace. Later writes to the closed stream are
 * dropped; any other stream error is still thrown.
 */
export function stopWhenPipeCloses(onClose: () => void, streams: readonly NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  let closed = false;
  for (const stream of streams) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && !(closed && err.code === 'ERR_STREAM_DESTROYED')) throw err;
      if (closed) return;
      closed = true;
      onClose();
    });
  }
}
