// A task asked in R1's readable form (SPEC.md 4): the model thinks in `<think>…</think>` and then writes a summary
// that states the answer, as R1 after its cold start does, instead of R1-Zero's `<answer>` tags. The same
// problems and test set; only the place the verifier reads the answer from changes: the \boxed{} of the summary
// (R1v2 B.3.2's summary prompt asks for one), never anything inside the think block.
import { checkAnswer } from '../rewards/answer.ts';
import { summaryOf } from '../rewards/format.ts';
import { UserError } from '../util/errors.ts';
import type { Example, Task, Verdict } from './task.ts';

export function readableTask(task: Task): Task {
  return {
    name: task.name,
    description: `${task.description}, answered in R1's readable form`,
    sample: (rng, count) => task.sample(rng, count),
    testSet: (size) => task.testSet(size),
    verify(completion: string, example: Example): Verdict {
      if (typeof example.reference !== 'string') throw new UserError(`task ${task.name}: the readable form checks answers given as text; ${example.id} has a structured reference`);
      return checkAnswer(summaryOf(completion), example.reference, ['boxed']);
    },
  };
}
