// `r1 dashboard [DIR]`: the live training dashboard over a runs folder (src/serve/dashboard.ts), and the
// --dashboard option of the training commands, which serves it beside the run they start.
import { mkdir } from 'node:fs/promises';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { defaultDashboardConfig, serveDashboard, type RunningDashboard } from '../serve/dashboard.ts';
import { DEVICE_HELP, parseDevice, selectDevice } from './device.ts';
import type { CommandText, Settings } from './settings.ts';

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new InvalidArgumentError('expected a port number (0: any free one)');
  return port;
}

/**
 * Registers a training command (Settings.register) with `--dashboard [port]`: with the flag, the dashboard serves
 * `runsDir(config)` (made if missing, so the run appears there when it starts) while `run` goes, and stays up after.
 */
export function registerWithDashboard<C extends object>(settings: Settings<C>, parent: Command, text: CommandText, runsDir: (config: C) => string,
  run: (config: C) => Promise<void>): Command {
  const command = settings.register(parent, text, async (config, flags) => {
    const dashboard = await startDashboardFor(flags.dashboard, runsDir(config));
    await run(config);
    if (dashboard) console.error(`the dashboard stays up at ${dashboard.url}/; Ctrl-C stops it`);
  });
  return command.option('--dashboard [port]', `serve the live dashboard of the runs folder on 127.0.0.1 while the run goes (default port ${defaultDashboardConfig.port})`, parsePort);
}

/** Starts the dashboard over `runsDir` when the flag was given, printing its address; null otherwise. */
async function startDashboardFor(flag: unknown, runsDir: string): Promise<RunningDashboard | null> {
  if (flag === undefined || flag === false) return null;
  await mkdir(runsDir, { recursive: true });
  const dashboard = await serveDashboard({ ...defaultDashboardConfig, dir: runsDir, port: typeof flag === 'number' ? flag : defaultDashboardConfig.port });
  console.error(`dashboard: ${dashboard.url}/ (runs in ${runsDir})`);
  return dashboard;
}

export function register(program: Command): void {
  program
    .command('dashboard')
    .argument('[dir]', 'folder of runs: every folder below it with a metrics.jsonl', 'runs')
    .summary('a live web dashboard of training runs (curves, samples, settings) with a chat box')
    .description(
      'Serves a page on 127.0.0.1 with every run under DIR: curves of each metric (reward and its parts, accuracy, format rate, ' +
        'response length, KL, entropy, loss, learning rate, tokens/s, ...) that grow as the runs write metrics.jsonl, runs side by ' +
        'side, the sampled completions of each step with their rewards, and the settings of each run. With --model, a chat box ' +
        'talks to that model through the same engine and API as `r1 serve`.',
    )
    .option('--host <address>', 'address to listen on', defaultDashboardConfig.host)
    .option('--port <n>', 'port (0: any free one)', parsePort, defaultDashboardConfig.port)
    .option('--model <dir>', 'model folder for the chat box')
    .option('--device <device>', DEVICE_HELP, parseDevice, 'cpu')
    .action(async (dir: string, opts: { host: string; port: number; model?: string; device: 'cpu' | 'cuda' }) => {
      selectDevice(opts.device);
      const dashboard = await serveDashboard({ ...defaultDashboardConfig, dir, host: opts.host, port: opts.port, model: opts.model ?? null });
      console.log(`dashboard of ${dir} at ${dashboard.url}/${dashboard.served ? ` (chat with ${dashboard.served.name})` : ''}; Ctrl-C stops`);
      const stop = () => void dashboard.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
