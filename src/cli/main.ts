// The `r1` command: one file per subcommand, each thin over the library (it parses flags into a config and
// calls one library function). Errors a user can fix are printed as one line, without a stack.
import { Command, CommanderError } from 'commander';
import { UserError } from '../util/errors.ts';

const program = new Command('r1')
  .description('Train reasoning language models the way DeepSeek-R1 was trained.')
  .version('0.1.0')
  .showHelpAfterError();

// Subcommands register themselves here, in the order `r1 --help` lists them.
const commands: Array<() => Promise<{ register(program: Command): void }>> = [
  () => import('./tokenizer.ts'),
  () => import('./sample.ts'),
  () => import('./logits.ts'),
  () => import('./pretrain.ts'),
  () => import('./sft.ts'),
  () => import('./verify-answer.ts'),
  () => import('./run-code.ts'),
  () => import('./zero.ts'),
  () => import('./rl.ts'),
  () => import('./reward-model.ts'),
  () => import('./rejection-sample.ts'),
  () => import('./distill.ts'),
  () => import('./pipeline.ts'),
  () => import('./eval.ts'),
  () => import('./serve.ts'),
  () => import('./dashboard.ts'),
  () => import('./launch.ts'),
];

export async function main(argv: string[]): Promise<void> {
  for (const load of commands) (await load()).register(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof UserError) {
      console.error(`r1: ${err.message}`);
      process.exitCode = 1;
    } else if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
    } else {
      throw err;
    }
  }
}
