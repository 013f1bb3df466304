// Where progress lines go when a caller passes no `log` of its own: stderr, one line each, so that stdout keeps
// only a command's results.
export function logToStderr(line: string): void {
  process.stderr.write(`${line}\n`);
}
