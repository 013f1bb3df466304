// The tasks layer's public face: generated tasks (Countdown, arithmetic word problems, instruction following,
// programs), users' JSONL files (math or code problems), and the registry that names them. Each task samples
// training examples, holds a fixed test set, and verifies.
export { verdictScore, verifyAll, type Example, type Task, type Verdict, type VerifyItem } from './task.ts';
export { taskByName, TASK_NAMES, type TaskOptions } from './registry.ts';
export {
  COUNTDOWN_LEVELS, countdownQuestion, countdownTask, evaluateExpression, solvesCountdown,
  type CountdownLevel, type CountdownOptions, type CountdownReference, type Evaluation, type Rational,
} from './countdown.ts';
export {
  ARITHMETIC_LEVELS, arithmeticTask, CHAIN_LANGUAGES, drawArithmeticProblem, pretrainingText, readableSolution, reasoningChain, rewriteReadable,
  stepsOfChain, workedSteps,
  type ArithmeticLevel, type ArithmeticOptions, type ArithmeticProblem, type ArithmeticStep, type ChainLanguage, type ChainLanguageMix,
  type PretrainingTextOptions,
} from './arithmetic.ts';
export {
  checkReasoningStyles, inverseCheck, styledPretrainingText, styledSolution, type ReasoningStyle, type ReasoningStyles, type StyledSolution, type StyledTextOptions,
} from './reasoning-styles.ts';
export {
  drawInstruction, INSTRUCTION_KINDS, instructionPreferencePairs, instructionResponse, instructionTask, REJECTION_KINDS, trainingInstructions,
  worseResponse, type Instruction, type InstructionKind, type PreferencePair,
} from './instructions.ts';
export { readableTask } from './readable.ts';
export { jsonlTask, readProblemsJsonl, type JsonlTask, type JsonlTaskOptions } from './jsonl.ts';
export {
  CODE_LEVELS, codeDrill, codeJsonlTask, codePretrainingText, evaluateFormula, formulaProgram, generatedCodeTask, readCodeProblems,
  type CodeJsonlOptions, type CodeLevel, type CodeReference, type CodeTaskOptions, type GeneratedCodeOptions,
} from './code.ts';
