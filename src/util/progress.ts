// Progress bars of long work (training steps, rejection sampling, tokenizer training): drawn on stderr only when
// it is a terminal, so logs and pipes get the trainer's plain lines instead of cursor codes.
import cliProgress from 'cli-progress';

/**
 * A bar in cli-progress's format tokens ({bar}, {value}, {total}, {eta_formatted} and the payload's names), or null
 * when `show` is false or stderr is not a terminal. `etaBuffer`: the updates the rate and ETA average over.
 */
export function progressBar(format: string, show = true, options: { etaBuffer?: number; clearOnComplete?: boolean } = {}): cliProgress.SingleBar | null {
  if (!show || !process.stderr.isTTY) return null;
  return new cliProgress.SingleBar({ format, hideCursor: true, ...options }, cliProgress.Presets.shades_classic);
}
