/**
 * Whether a process with this pid runs on this machine. Signal 0 checks without
 * signalling; EPERM means it runs under another user. Only meaningful on the same host.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
