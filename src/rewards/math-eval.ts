// LaTeX expression -> values at fixed sample points, for answer equivalence (answer.ts). The Compute Engine
// (@cortex-js/compute-engine) parses the LaTeX into canonical MathJSON, in a worker thread with a time limit: its
// parser takes exponential time on some short inputs (measured below), and a reward must never hang a run. The
// evaluation is ours, in double-precision
// complex arithmetic over a closed list of operators, so that it always terminates quickly: the engine's own
// evaluator computes exact big integers and would spend minutes (and gigabytes) on an answer like 9^{9^{9}}, while
// here that overflows to Infinity in a few operations. A head we do not know (sums, integrals, matrices, errors)
// makes the expression "not evaluable" and the caller falls back to comparing text.
//
// Free variables get values that depend only on their name and the point index, drawn from a seeded generator, so
// the two sides of a comparison are evaluated at the same points without knowing each other's variables, and
// every run draws the same points.
import { Worker } from 'node:worker_threads';
import { Rng } from '../tensor/random.ts';

/** Number of points at which expressions with free variables are compared. */
export const SAMPLE_POINTS = 6;

/** A complex value [re, im]; real numbers have im = 0. */
export type Complex = readonly [number, number];

/** MathJSON as the Compute Engine writes it (numbers, symbols, strings, function expressions, number objects). */
type MathJson = number | string | { num: string } | readonly MathJson[] | Record<string, unknown>;

/**
 * Time limit of one parse, in milliseconds. Typical parses take 1-5 ms; the first use of a parser path can take
 * ~0.3 s on a loaded 2-core machine, which the worker's warm-up mostly absorbs.
 */
export const PARSE_TIMEOUT_MS = 2000;
/** Time limit for the worker to load the engine. */
const WORKER_START_TIMEOUT_MS = 30_000;
const CHANNEL_BYTES = 1 << 16;

// The parser runs in a worker thread that the main thread waits for synchronously (rewards are synchronous):
// control[0] is the state (PARSE_REQUEST set by the caller, PARSE_DONE by the worker, which also marks it ready),
// control[1] the request length and control[2] the response length (-1: no parse), both in bytes of `data`.
const PARSE_REQUEST = 1;
const PARSE_DONE = 2;
interface ParseChannel {
  control: Int32Array;
  data: Uint8Array;
}

interface ParseWorker {
  worker: Worker;
  channel: ParseChannel;
}

let parser: ParseWorker | null = null;
let startFailure: Error | null = null;
let timeouts = 0;

/** How many parses were abandoned at PARSE_TIMEOUT_MS in this process (each restarts the worker). */
export function parseTimeouts(): number {
  return timeouts;
}

const WARM_UP = [
  '\\frac{1}{2}+\\sqrt{2}x^2-3y_{1}', '(1,2)', '\\{1,2\\}', 'x=1', '|x|+\\log_2 8+\\ln e', '\\sin(\\pi/6)\\cdot 3!',
  'e^{i\\pi}', '\\sqrt[3]{-8}', '2\\times 10^{3}', '\\infty', '0.5', '-\\frac{a}{b}',
];

// The worker's program, plain JavaScript run with `eval` (so it needs no TypeScript loader, from sources or from
// the build). It loads the engine from the URL the main thread resolved and then serves parses forever. Each parse
// runs in its own scope: the engine infers and remembers symbol types (after `x+1`, `x_1` no longer parses as a
// subscript), and one sample's answer must not change how the next one is read.
const PARSER_PROGRAM = `
const { workerData } = require('node:worker_threads');
const { control, data, engineUrl } = workerData;
import(engineUrl).then(({ ComputeEngine }) => {
  const engine = new ComputeEngine();
  const parse = (latex) => {
    engine.pushScope();
    try {
      const expr = engine.parse(latex);
      return expr.isValid ? JSON.stringify(expr.json) : null;
    } catch {
      return null;
    } finally {
      engine.popScope();
    }
  };
  // Warm-up: the parser's paths are slow on first use (JIT); take that cost before the first timed request.
  for (const latex of ${JSON.stringify(WARM_UP)}) parse(latex);
  for (;;) {
    Atomics.store(control, 0, ${PARSE_DONE});
    Atomics.notify(control, 0);
    Atomics.wait(control, 0, ${PARSE_DONE});
    const json = parse(new TextDecoder().decode(data.slice(0, Atomics.load(control, 1))));
    const bytes = json === null ? null : new TextEncoder().encode(json);
    const fits = bytes !== null && bytes.length <= data.length;
    if (fits) data.set(bytes);
    Atomics.store(control, 2, fits ? bytes.length : -1);
  }
});
`;

function startParser(): ParseWorker {
  const channel: ParseChannel = {
    control: new Int32Array(new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT)),
    data: new Uint8Array(new SharedArrayBuffer(CHANNEL_BYTES)),
  };
  const engineUrl = import.meta.resolve('@cortex-js/compute-engine');
  const worker = new Worker(PARSER_PROGRAM, { eval: true, execArgv: [], workerData: { ...channel, engineUrl } });
  worker.unref(); // an idle parser must not keep the process alive
  if (Atomics.wait(channel.control, 0, 0, WORKER_START_TIMEOUT_MS) === 'timed-out') {
    void worker.terminate();
    // Remembered: every later parse fails at once instead of waiting again.
    startFailure = new Error(`the LaTeX parser worker (@cortex-js/compute-engine) did not start within ${WORKER_START_TIMEOUT_MS} ms`);
    throw startFailure;
  }
  return { worker, channel };
}

/**
 * Canonical MathJSON of a LaTeX string, or null when it is not safely parseable, the engine reports an error, or
 * the parse takes longer than timeoutMs (then the worker is abandoned and a fresh one starts on the next call).
 */
export function parseLatex(latex: string, timeoutMs = PARSE_TIMEOUT_MS): MathJson | null {
  const safe = parseableLatex(latex);
  if (safe === null) return null;
  const request = new TextEncoder().encode(safe);
  if (startFailure !== null) throw startFailure;
  parser ??= startParser();
  const { control, data } = parser.channel;
  if (request.length > data.length) return null;
  data.set(request);
  Atomics.store(control, 1, request.length);
  Atomics.store(control, 0, PARSE_REQUEST);
  Atomics.notify(control, 0);
  if (Atomics.wait(control, 0, PARSE_REQUEST, timeoutMs) === 'timed-out') {
    timeouts++;
    void parser.worker.terminate();
    parser = null;
    return null;
  }
  const length = Atomics.load(control, 2);
  return length < 0 ? null : (JSON.parse(new TextDecoder().decode(data.slice(0, length))) as MathJson);
}

/** Longest expression handed to the engine. */
export const MAX_PARSE_CHARS = 400;
/** Deepest bracket nesting handed to the engine. */
export const MAX_NESTING = 8;

/**
 * The engine's parser backtracks over brackets: its time grows exponentially with nested or unbalanced brackets
 * (measured on 0.27: 16 nested `(` left open take 14 s, 16 nested `[…]` 8 s, 4 nested unclosed `[(` 0.6 s), while
 * braces and parentheses that nest properly stay in milliseconds. So only short expressions whose brackets are
 * balanced, matched by kind and at most MAX_NESTING deep go to the engine, with square brackets (other than
 * `\sqrt[n]`) read as parentheses; anything else is not parsed (null).
 */
function parseableLatex(latex: string): string | null {
  // Runs of signs are the other exponential case found (25 minus signs: 12 s); no answer needs three in a row.
  if (latex.length > MAX_PARSE_CHARS || /[-+]\s*[-+]\s*[-+]/.test(latex)) return null;
  const chars = latex.split('');
  const stack: string[] = [];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === '\\') {
      i++;
      if (chars[i] === '{' || chars[i] === '}') {
        // `\{` and `\}` (set braces) nest like braces.
        if (chars[i] === '{') stack.push('}');
        else if (stack.pop() !== '}') return null;
      }
      continue;
    }
    if (c === '[' && latex.slice(0, i).endsWith('\\sqrt')) {
      stack.push(']');
    } else if (c === '(' || c === '[') {
      stack.push(')');
      chars[i] = '(';
    } else if (c === '{') {
      stack.push('}');
    } else if (c === ')' || c === ']' || c === '}') {
      const expected = stack.pop();
      if (expected === ']' ? c !== ']' : c === '}' ? expected !== '}' : expected !== ')') return null;
      if (expected === ')') chars[i] = ')';
    }
    if (stack.length > MAX_NESTING) return null;
  }
  return stack.length === 0 ? chars.join('') : null;
}

/**
 * The values of a LaTeX expression at the SAMPLE_POINTS points (all equal when it has no free variables), or null
 * when it does not parse or uses an operator outside our evaluator.
 */
export function sampleValues(latex: string): Complex[] | null {
  // The gold answer of a group is compared with each of its G samples: keep recent results.
  const cached = recentValues.get(latex);
  if (cached !== undefined) return cached;
  const values = computeSampleValues(latex);
  if (recentValues.size >= RECENT_VALUES_SIZE) recentValues.clear();
  recentValues.set(latex, values);
  return values;
}

const RECENT_VALUES_SIZE = 4096;
const recentValues = new Map<string, Complex[] | null>();

function computeSampleValues(latex: string): Complex[] | null {
  const json = parseLatex(latex);
  if (json === null) return null;
  const values: Complex[] = [];
  const constant = freeSymbols(json).size === 0;
  for (let point = 0; point < SAMPLE_POINTS; point++) {
    if (constant && point > 0) {
      values.push(values[0]);
      continue;
    }
    const value = evaluate(json, point);
    if (value === null) return null;
    values.push(value);
  }
  return values;
}

/** Relative tolerance of numeric comparisons: far above double rounding, far below any rounding a model writes. */
export const RELATIVE_TOLERANCE = 1e-9;

/** Two values equal within RELATIVE_TOLERANCE (infinities equal when both real and of the same sign). */
export function valuesClose(a: Complex, b: Complex): boolean {
  if (!isFiniteComplex(a) || !isFiniteComplex(b)) {
    return a[1] === 0 && b[1] === 0 && Math.abs(a[0]) === Infinity && a[0] === b[0];
  }
  const scale = Math.max(1, Math.hypot(a[0], a[1]), Math.hypot(b[0], b[1]));
  return Math.hypot(a[0] - b[0], a[1] - b[1]) <= RELATIVE_TOLERANCE * scale;
}

export function isFiniteComplex(z: Complex): boolean {
  return Number.isFinite(z[0]) && Number.isFinite(z[1]);
}

// ---- variables ----------------------------------------------------------------------------------------------

const CONSTANTS: Record<string, Complex> = {
  Pi: [Math.PI, 0],
  ExponentialE: [Math.E, 0],
  ImaginaryUnit: [0, 1],
  PositiveInfinity: [Infinity, 0],
  NegativeInfinity: [-Infinity, 0],
  Half: [0.5, 0],
  GoldenRatio: [(1 + Math.sqrt(5)) / 2, 0],
};

const variableValues = new Map<string, number[]>();

/**
 * The value of a free variable at a point: |v| in [0.5, 3) with a random sign, non-integer almost surely, seeded by
 * the variable's name (FNV-1a), so `x` has the same values in the gold and in the prediction.
 */
function variableValue(name: string, point: number): number {
  let values = variableValues.get(name);
  if (values === undefined) {
    let hash = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
    const rng = new Rng(hash);
    values = Array.from({ length: SAMPLE_POINTS }, () => (rng.uniform() < 0.5 ? -1 : 1) * (0.5 + 2.5 * rng.uniform()));
    variableValues.set(name, values);
  }
  return values[point];
}

function isSymbol(json: MathJson): json is string {
  // MathJSON strings in single quotes are string literals, not symbols.
  return typeof json === 'string' && !json.startsWith("'");
}

/** `x_{1}` and `a_{n}` parse as ["At", "x", 1] and ["At", "a", "n"]; read each as one variable (x_1, a_n). */
function subscriptedName(json: readonly MathJson[]): string | null {
  if (json[0] !== 'At' || json.length !== 3 || !isSymbol(json[1])) return null;
  return typeof json[2] === 'number' || isSymbol(json[2]) ? `${json[1]}_${json[2]}` : null;
}

function freeSymbols(json: MathJson, into = new Set<string>()): Set<string> {
  if (isSymbol(json)) {
    if (!(json in CONSTANTS)) into.add(json);
  } else if (Array.isArray(json)) {
    const name = subscriptedName(json);
    if (name !== null) into.add(name);
    else for (const arg of json.slice(1)) freeSymbols(arg, into);
  }
  return into;
}

// ---- complex arithmetic ---------------------------------------------------------------------------------------

const add = (a: Complex, b: Complex): Complex => [a[0] + b[0], a[1] + b[1]];
const neg = (a: Complex): Complex => [-a[0], -a[1]];
function mul(a: Complex, b: Complex): Complex {
  if (a[1] === 0 && b[1] === 0) return [a[0] * b[0], 0];
  return [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
}
function div(a: Complex, b: Complex): Complex {
  if (a[1] === 0 && b[1] === 0) return [a[0] / b[0], 0];
  const d = b[0] * b[0] + b[1] * b[1];
  return [(a[0] * b[0] + a[1] * b[1]) / d, (a[1] * b[0] - a[0] * b[1]) / d];
}
function exp(a: Complex): Complex {
  const m = Math.exp(a[0]);
  return a[1] === 0 ? [m, 0] : [m * Math.cos(a[1]), m * Math.sin(a[1])];
}
/** Principal logarithm. */
function log(a: Complex): Complex {
  if (a[1] === 0 && a[0] > 0) return [Math.log(a[0]), 0];
  return [Math.log(Math.hypot(a[0], a[1])), Math.atan2(a[1], a[0])];
}
function pow(base: Complex, exponent: Complex): Complex {
  if (base[1] === 0 && exponent[1] === 0) {
    const [b, e] = [base[0], exponent[0]];
    if (b >= 0 || Number.isInteger(e)) return [Math.pow(b, e), 0];
  }
  if (base[0] === 0 && base[1] === 0) return exponent[0] > 0 ? [0, 0] : [NaN, NaN];
  return exp(mul(exponent, log(base)));
}
/** n-th root; the real root of a negative real for odd n (as the engine's Root and the convention in answers). */
function root(a: Complex, n: Complex): Complex {
  if (a[1] === 0 && n[1] === 0 && a[0] < 0 && Number.isInteger(n[0]) && Math.abs(n[0]) % 2 === 1) {
    return [-Math.pow(-a[0], 1 / n[0]), 0];
  }
  return pow(a, div([1, 0], n));
}
function real(f: (x: number) => number): (a: Complex) => Complex {
  return (a) => (a[1] === 0 ? [f(a[0]), 0] : [NaN, NaN]);
}
function factorial(n: number): number {
  if (!Number.isInteger(n) || n < 0) return NaN;
  if (n > 170) return Infinity;
  let result = 1;
  for (let k = 2; k <= n; k++) result *= k;
  return result;
}

const UNARY: Record<string, (a: Complex) => Complex> = {
  Negate: neg,
  Sqrt: (a) => root(a, [2, 0]),
  Square: (a) => mul(a, a),
  Exp: exp,
  Ln: log,
  Lb: (a) => div(log(a), [Math.LN2, 0]),
  Lg: (a) => div(log(a), [Math.LN10, 0]),
  Abs: (a) => [Math.hypot(a[0], a[1]), 0],
  Sin: real(Math.sin),
  Cos: real(Math.cos),
  Tan: real(Math.tan),
  Cot: real((x) => 1 / Math.tan(x)),
  Sec: real((x) => 1 / Math.cos(x)),
  Csc: real((x) => 1 / Math.sin(x)),
  Arcsin: real(Math.asin),
  Arccos: real(Math.acos),
  Arctan: real(Math.atan),
  Sinh: real(Math.sinh),
  Cosh: real(Math.cosh),
  Tanh: real(Math.tanh),
  Floor: real(Math.floor),
  Ceil: real(Math.ceil),
  Factorial: real(factorial),
};

function numberValue(json: { num: string }): number {
  // The engine writes big or special numbers as strings: "123456789012345678901234", "+Infinity", "NaN",
  // and repeating decimals as "0.(3)".
  const text = json.num.replace(/[\s_]/g, '');
  if (text === '+Infinity' || text === 'Infinity') return Infinity;
  if (text === '-Infinity') return -Infinity;
  const repeating = /^([+-]?\d*)\.(\d*)\((\d+)\)$/.exec(text);
  if (repeating !== null) {
    const [, whole, fixed, period] = repeating;
    const sign = whole.startsWith('-') ? -1 : 1;
    const base = Math.abs(Number(`${whole || '0'}.${fixed || '0'}`));
    return sign * (base + Number(period) / (10 ** fixed.length * (10 ** period.length - 1)));
  }
  return Number(text);
}

/** The value of canonical MathJSON at a sample point, or null for an operator outside the table. */
function evaluate(json: MathJson, point: number): Complex | null {
  if (typeof json === 'number') return [json, 0];
  if (isSymbol(json)) return CONSTANTS[json] ?? [variableValue(json, point), 0];
  if (typeof json === 'string') return null;
  if (!Array.isArray(json)) {
    return typeof (json as { num?: unknown }).num === 'string' ? [numberValue(json as { num: string }), 0] : null;
  }
  const [head, ...args] = json;
  const name = subscriptedName(json);
  if (name !== null) return [variableValue(name, point), 0];
  if (head === 'Rational' || head === 'Complex') {
    if (args.length !== 2 || typeof args[0] !== 'number' || typeof args[1] !== 'number') {
      const values = args.map((a) => evaluate(a, point));
      if (values.length !== 2 || values.some((v) => v === null)) return null;
      return head === 'Rational' ? div(values[0]!, values[1]!) : add(values[0]!, mul([0, 1], values[1]!));
    }
    return head === 'Rational' ? [args[0] / args[1], 0] : [args[0], args[1]];
  }
  const values: Complex[] = [];
  for (const arg of args) {
    const value = evaluate(arg, point);
    if (value === null) return null;
    values.push(value);
  }
  switch (head) {
    case 'Add':
      return values.length === 0 ? null : values.reduce(add);
    case 'Subtract':
      return values.length === 2 ? add(values[0], neg(values[1])) : null;
    case 'Multiply':
      return values.length === 0 ? null : values.reduce(mul);
    case 'Divide':
      return values.length === 2 ? div(values[0], values[1]) : null;
    case 'Power':
      return values.length === 2 ? pow(values[0], values[1]) : null;
    case 'Root':
      return values.length === 2 ? root(values[0], values[1]) : null;
    case 'Log':
      // ["Log", x] is the common logarithm; ["Log", x, b] has base b.
      if (values.length === 1) return div(log(values[0]), [Math.LN10, 0]);
      return values.length === 2 ? div(log(values[0]), log(values[1])) : null;
    case 'Max':
    case 'Min': {
      if (values.length === 0 || values.some((v) => v[1] !== 0)) return null;
      const reals = values.map((v) => v[0]);
      return [head === 'Max' ? Math.max(...reals) : Math.min(...reals), 0];
    }
  }
  const unary = typeof head === 'string' ? UNARY[head] : undefined;
  return unary !== undefined && values.length === 1 ? unary(values[0]) : null;
}
