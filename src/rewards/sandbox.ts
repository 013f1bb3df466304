// The sandbox that runs model-written programs (the code accuracy reward, SPEC.md 3). Model output is untrusted:
// a program must not read or change the machine's files, reach the network, see or signal its processes, or
// cost more than a bounded amount of time, memory, processes and output.
//
// Layout chosen: one process per run under bubblewrap (Debian's `bubblewrap`), the isolation tool Flatpak uses.
//   - Namespaces: new user, PID, network, IPC, UTS, cgroup and mount namespaces (`--unshare-all`); the network
//     namespace holds only a loopback device, so nothing outside is reachable. `--disable-userns` stops the
//     program from making nested user namespaces (and with them capabilities inside a namespace of its own).
//   - Files: the new root is empty; only the interpreter's folders are bound in, read-only (/usr, the /lib and
//     /bin links of the host, and the interpreter's own prefix when it lives elsewhere). /tmp is a private tmpfs of
//     bounded size, the program file is copied in read-only through a pipe (`--ro-bind-data`): nothing of the
//     host's repository, /tmp or home is visible, and no file of the host is written. Descriptors the caller
//     inherited (and did not mark close-on-exec) are closed before the interpreter starts.
//   - Identity: run as root (CI, containers), bwrap would map the program's uid onto the host's root, so the
//     chain first drops to an unprivileged uid (`setpriv`, 65534 by default); run as a user, bwrap needs no help
//     (unprivileged user namespaces must be allowed: see sandboxHelp below).
//   - Limits: rlimits set by `prlimit` inside the sandbox just before the interpreter starts, hard and soft, so the
//     program cannot raise them: CPU seconds, data segment (RLIMIT_DATA bounds what malloc/mmap can take, while
//     node's large PROT_NONE address-space reservations still fit, which RLIMIT_AS does not allow), address space as
//     a backstop against shared mappings, processes (threads count: node needs about ten), file size and open files.
//     Since Linux 5.14 the process count is kept per user namespace, so one sandbox's fork bomb does not use up
//     another's quota. Wall time and output size are enforced from outside: past either, the whole sandbox is
//     killed (bwrap's `--die-with-parent`; its PID namespace ends with its init, taking every process along, so no
//     background process outlives a verdict).
// Rejected alternative: cgroups v2 for memory and pids would bound a sandbox as a whole rather than per process,
// but need a delegated cgroup tree, which containers and CI machines often lack; rlimits work everywhere bwrap does.
//
// Many runs go in parallel, up to `workers` at once. The rest of r1ts is synchronous (a GRPO step scores its
// rollouts in a plain loop), so the pool runs in a worker thread that spawns the processes while the caller
// waits on an Atomics cell: a batch of G x P programs costs about its longest runs, not their sum.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { UserError } from '../util/errors.ts';

export const LANGUAGES = ['python', 'javascript'] as const;
export type Language = (typeof LANGUAGES)[number];

/** Resource limits of one run; every field is a setting (SandboxOptions.limits, `r1 run-code` flags). */
export interface SandboxLimits {
  /** Wall-clock time of one run, from spawn to exit, in milliseconds. */
  wallMs: number;
  /** CPU time of one run (all its processes and threads count), in whole seconds. */
  cpuSeconds: number;
  /** Data segment (heap, anonymous private mappings) of each process, in MiB. */
  memoryMb: number;
  /** Address space of each process, in MiB: a backstop for shared mappings (node reserves about 1 GiB at start). */
  addressSpaceMb: number;
  /** Processes and threads of the sandbox's user at once. */
  processes: number;
  /** stdout plus stderr kept of one run, in bytes; past it the run is killed and reported as output_limit. */
  outputBytes: number;
  /** Size of the private /tmp, and of any one file written, in MiB. */
  tmpMb: number;
}

export const defaultSandboxLimits: SandboxLimits = {
  wallMs: 10_000, cpuSeconds: 5, memoryMb: 512, addressSpaceMb: 4096, processes: 32, outputBytes: 1 << 20, tmpMb: 16,
};

export interface SandboxOptions {
  limits?: Partial<SandboxLimits>;
  /** Runs at once (default: the number of CPUs). */
  workers?: number;
  /** The uid programs run as when r1ts runs as root (default 65534, `nobody`). */
  uid?: number;
  /**
   * 'bwrap' (the default) isolates; 'none' runs the interpreter directly under the same wall-time and output limits
   * and nothing else. 'none' exists so that bench/code_reward.ts can measure what the isolation costs: never run
   * a model's code with it.
   */
  isolation?: 'bwrap' | 'none';
  /** Interpreter paths to use instead of searching PATH. */
  interpreters?: Partial<Record<Language, string>>;
}

/** One program run: the source, what its stdin receives, and whether to run it or only check its syntax. */
export interface SandboxJob {
  language: Language;
  code: string;
  stdin?: string;
  /** 'check' only compiles the program (a syntax check), 'run' (the default) runs it. */
  mode?: 'run' | 'check';
}

export type RunStatus = 'ok' | 'runtime_error' | 'timeout' | 'memory_limit' | 'output_limit';

export interface RunResult {
  status: RunStatus;
  /** The program's exit code (null when a signal ended it). */
  exitCode: number | null;
  /** The signal that ended the program, e.g. SIGKILL (null when it exited). */
  signal: string | null;
  stdout: string;
  stderr: string;
  wallMs: number;
}

/** How to run each language: file name in the sandbox, interpreter names, and the argument lists. */
interface LanguageRunner {
  fileName: string;
  /** Names looked up on PATH, in order. */
  commands: readonly string[];
  run: (file: string) => string[];
  check: (file: string) => string[];
  /** The same two with the source as an argument (isolation 'none', which has no file system of its own). */
  runInline: (code: string) => string[];
  checkInline: (code: string) => string[];
  /** stderr of a run that died of memory exhaustion (the interpreter's own message). */
  outOfMemory: RegExp;
  /** stderr of a program that does not compile. */
  syntaxError: RegExp;
}

const RUNNERS: Record<Language, LanguageRunner> = {
  python: {
    fileName: 'main.py',
    commands: ['python3'],
    // -I: isolated mode (no user site-packages, no PYTHON* variables, script folder not on sys.path); -B: no .pyc.
    run: (file) => ['-I', '-B', file],
    check: (file) => ['-I', '-B', '-c', 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")', file],
    runInline: (code) => ['-I', '-B', '-c', code],
    checkInline: (code) => ['-I', '-B', '-c', 'import sys; compile(sys.argv[1], "main.py", "exec")', code],
    outOfMemory: /^MemoryError\b/m,
    syntaxError: /^(SyntaxError|IndentationError|TabError)\b/m,
  },
  javascript: {
    fileName: 'main.js',
    commands: ['node', 'nodejs'],
    run: (file) => [file],
    check: (file) => ['--check', file],
    runInline: (code) => ['-e', code],
    checkInline: (code) => ['-e', 'new (require("node:vm").Script)(process.argv[1])', code],
    outOfMemory: /heap out of memory|Fatal process out of memory|Array buffer allocation failed|Failed to reserve virtual memory/,
    syntaxError: /^SyntaxError\b/m,
  },
};

/**
 * Closes every file descriptor above stderr, then runs its arguments. Neither node's spawn nor bwrap closes the
 * descriptors the caller inherited without close-on-exec (a pipe or socket of whatever started r1ts), and the
 * program could write to them; bash is the one shell sure to be there that closes descriptors above 9.
 */
const CLOSE_INHERITED_FDS = 'for fd in /proc/self/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; exec "$@"';

/** Where the program file lives inside the sandbox (copied in read-only); /tmp is its working folder. */
const SANDBOX_DIR = '/sandbox';

/** A ready sandbox: tools and interpreters found and checked, limits fixed. */
export class Sandbox {
  readonly limits: SandboxLimits;
  readonly workers: number;
  readonly isolation: 'bwrap' | 'none';
  /** The interpreter of each language that works here (a language whose interpreter is missing is absent). */
  readonly interpreters: Partial<Record<Language, string>>;
  /** What starts bwrap (setpriv first when running as root), and prlimit's path inside the sandbox. */
  private readonly prefix: string[];
  private readonly prlimit: string;
  private readonly bash: string;
  /** The read-only binds of the host's system folders. */
  private readonly binds: string[];
  /** Why the last interpreter probe failed (for the error when none works). */
  private probeFailure: string | null = null;

  constructor(options: SandboxOptions = {}) {
    this.limits = { ...defaultSandboxLimits, ...options.limits };
    validateLimits(this.limits);
    const workers = options.workers ?? availableParallelism();
    if (!Number.isInteger(workers) || workers < 1) throw new UserError(`sandbox workers must be a whole number of at least 1, got ${workers}`);
    this.workers = workers;
    this.isolation = options.isolation ?? 'bwrap';
    if (this.isolation === 'bwrap') {
      const bwrap = findCommand('bwrap');
      if (bwrap === null) throw new UserError(`bubblewrap (bwrap) is not installed: code rewards run programs only inside it. ${INSTALL_HINT}`);
      const prlimit = findCommand('prlimit');
      if (prlimit === null) throw new UserError('prlimit is not installed (util-linux): the sandbox sets its limits with it. Debian/Ubuntu: apt-get install util-linux');
      const uid = options.uid ?? 65534;
      let dropRoot: string[] = [];
      if (process.getuid?.() === 0) {
        const setpriv = findCommand('setpriv');
        if (setpriv === null) throw new UserError('setpriv is not installed (util-linux): running as root, the sandbox drops to an unprivileged uid with it');
        dropRoot = [setpriv, `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all'];
      }
      this.prefix = [...dropRoot, bwrap];
      this.prlimit = prlimit;
      const bash = findCommand('bash');
      if (bash === null) throw new UserError('bash is not installed: the sandbox closes inherited file descriptors with it');
      this.bash = bash;
      this.binds = hostSystemBinds();
    } else {
      this.prefix = [];
      this.prlimit = '';
      this.bash = '';
      this.binds = [];
    }
    this.interpreters = {};
    for (const language of LANGUAGES) {
      const found = this.findInterpreter(language, options.interpreters?.[language]);
      if (found !== null) this.interpreters[language] = found;
    }
    if (this.isolation === 'bwrap' && Object.keys(this.interpreters).length === 0) {
      // Nothing ran: most likely bwrap itself cannot make namespaces here. Say what it said.
      throw new UserError(`the sandbox cannot run any interpreter: ${this.probeFailure ?? 'no python3 or node on PATH'}. ${sandboxHelp(this.probeFailure ?? '')}`);
    }
  }

  /** The interpreter of a language, or a UserError naming the language and how to get one. */
  interpreter(language: Language): string {
    const found = this.interpreters[language];
    if (found === undefined) {
      const names = RUNNERS[language].commands.join(' or ');
      throw new UserError(`no working ${language} interpreter for the sandbox (looked for ${names} on PATH${this.probeFailure === null ? '' : `; ${this.probeFailure}. ${sandboxHelp(this.probeFailure)}`})`);
    }
    return found;
  }

  /** Runs the jobs, `workers` at a time, and returns their results in order. Blocks until the last one ends. */
  runSync(jobs: readonly SandboxJob[]): RunResult[] {
    if (jobs.length === 0) return [];
    const raw = runPoolSync(jobs.map((job) => this.processJob(job)), this.workers);
    return raw.map((result, i) => classify(jobs[i].language, result, this.isolation));
  }

  /** The argv, stdin and program bytes of one job. */
  private processJob(job: SandboxJob): PoolJob {
    const runner = RUNNERS[job.language];
    const interpreter = this.interpreter(job.language);
    const limits = this.limits;
    if (this.isolation === 'none') {
      // Measurement only: the same interpreter with the program as an argument, under the same wall and output limits.
      const args = job.mode === 'check' ? runner.checkInline(job.code) : runner.runInline(job.code);
      return { argv: [interpreter, ...args], stdin: job.stdin ?? '', program: null, statusFd: false, wallMs: limits.wallMs, outputBytes: limits.outputBytes };
    }
    const file = `${SANDBOX_DIR}/${runner.fileName}`;
    const mib = 1024 * 1024;
    const rlimits = [
      `--cpu=${limits.cpuSeconds}:${limits.cpuSeconds + 1}`, // SIGXCPU at the soft limit, SIGKILL one second later
      `--data=${limits.memoryMb * mib}`,
      `--as=${limits.addressSpaceMb * mib}`,
      `--nproc=${limits.processes}`,
      `--fsize=${limits.tmpMb * mib}`,
      '--nofile=64',
      '--core=0',
    ];
    const argv = [
      ...this.prefix,
      '--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session',
      '--uid', '1000', '--gid', '1000', '--hostname', 'sandbox',
      '--clearenv', '--setenv', 'PATH', '/usr/bin:/bin', '--setenv', 'HOME', '/tmp', '--setenv', 'LANG', 'C.UTF-8',
      ...this.binds, ...interpreterBinds(interpreter),
      '--proc', '/proc', '--dev', '/dev',
      '--size', String(limits.tmpMb * mib), '--tmpfs', '/tmp',
      '--dir', SANDBOX_DIR, '--ro-bind-data', '3', file,
      // The root (bwrap's own tmpfs, holding the mount points) and /dev become read-only: only the bounded /tmp is writable.
      '--remount-ro', '/dev', '--remount-ro', '/',
      '--chdir', '/tmp', '--json-status-fd', '4',
      '--', this.bash, '-c', CLOSE_INHERITED_FDS, 'close-inherited-fds', this.prlimit, ...rlimits, '--',
      interpreter, ...(job.mode === 'check' ? runner.check(file) : runner.run(file)),
    ];
    return { argv, stdin: job.stdin ?? '', program: job.code, statusFd: true, wallMs: limits.wallMs, outputBytes: limits.outputBytes };
  }

  /** The first interpreter of the language that runs a one-line program in this sandbox, or null. */
  private findInterpreter(language: Language, given: string | undefined): string | null {
    const runner = RUNNERS[language];
    const candidates = given !== undefined ? [given] : runner.commands.flatMap((name) => findAllCommands(name));
    const probe = language === 'python' ? 'print(6 * 7)' : 'console.log(6 * 7)';
    for (const candidate of candidates) {
      const path = realExecutable(candidate, language);
      if (path === null) continue;
      this.interpreters[language] = path;
      try {
        const [result] = this.runSync([{ language, code: probe }]);
        if (result.status === 'ok' && result.stdout.trim() === '42') return path;
        this.probeFailure = `${path} failed a one-line program in the sandbox: ${(result.stderr.trim() || `${result.status}, exit ${result.exitCode}`).slice(0, 300)}`;
      } catch (err) {
        // bwrap refused this interpreter (typically: its folder is not readable by the sandbox's uid); try the next.
        this.probeFailure = `${path}: ${(err as Error).message}`;
      } finally {
        delete this.interpreters[language];
      }
    }
    if (given !== undefined && this.probeFailure === null) this.probeFailure = `${given} is not an executable`;
    return null;
  }
}

let shared: { key: string; sandbox: Sandbox } | null = null;

/** One sandbox per process and settings: finding and probing the interpreters costs a few runs, so it is done once. */
export function sharedSandbox(options: SandboxOptions = {}): Sandbox {
  const key = JSON.stringify(options);
  if (shared === null || shared.key !== key) shared = { key, sandbox: new Sandbox(options) };
  return shared.sandbox;
}

const INSTALL_HINT = 'Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap; Arch: pacman -S bubblewrap';

/** What to do when bwrap fails in the way `failure` says (the usual causes, with their fixes). */
export function sandboxHelp(failure: string): string {
  if (/Permission denied/.test(failure) && /source path/.test(failure)) {
    return 'The sandbox runs as an unprivileged uid that cannot open that folder (an interpreter installed under /root, e.g. by pyenv or nvm): ' +
      'install one system-wide (apt-get install python3 / nodejs) or give the path of one the uid can read';
  }
  return 'bwrap needs user namespaces: run as a user, they must be allowed for unprivileged users ' +
    '(Ubuntu 24.04 restricts them through AppArmor: sysctl kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for bwrap; ' +
    'elsewhere check sysctl user.max_user_namespaces > 0); in a container, the container must allow unshare(CLONE_NEWUSER) ' +
    '(Docker\'s default seccomp profile allows it when the host does; --privileged or --security-opt seccomp=unconfined otherwise)';
}

function validateLimits(limits: SandboxLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) throw new UserError(`sandbox limit ${name} must be a whole number of at least 1, got ${value}`);
  }
}

/** Every executable named `name` on PATH, in PATH order. */
function findAllCommands(name: string): string[] {
  const found: string[] = [];
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (dir === '') continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      if (!found.includes(path)) found.push(path);
    } catch {
      // not here
    }
  }
  return found;
}

function findCommand(name: string): string | null {
  return findAllCommands(name)[0] ?? null;
}

/**
 * The real interpreter behind a PATH entry: version managers (pyenv, asdf, nvm shims) put shell scripts on PATH
 * that the sandbox cannot run, so Python is asked for sys.executable and node for process.execPath.
 */
function realExecutable(candidate: string, language: Language): string | null {
  const ask = language === 'python' ? ['-c', 'import sys; print(sys.executable)'] : ['-e', 'console.log(process.execPath)'];
  const result = spawnSync(candidate, ask, { encoding: 'utf8', timeout: 10_000 });
  const path = result.status === 0 ? result.stdout.trim() : '';
  if (path === '' || !existsSync(path)) return null;
  return realpathSync(path);
}

/** The host's system folders, read-only, as the host lays them out (merged /usr: /lib, /bin are links into it). */
function hostSystemBinds(): string[] {
  const binds = ['--ro-bind', '/usr', '/usr'];
  for (const top of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    if (!existsSync(top)) continue;
    const stat = lstatSync(top);
    if (stat.isSymbolicLink()) binds.push('--symlink', readlinkSync(top), top);
    else binds.push('--ro-bind', top, top);
  }
  // Dynamic-linker cache and the files some runtimes read at start (time zone, locale aliases); nothing secret.
  for (const file of ['/etc/ld.so.cache', '/etc/localtime']) if (existsSync(file)) binds.push('--ro-bind', file, file);
  return binds;
}

/** The interpreter's installation prefix (its bin/ folder's parent), bound read-only when it is not under /usr. */
function interpreterBinds(interpreter: string): string[] {
  const prefix = dirname(dirname(interpreter));
  if (prefix === '/usr' || prefix.startsWith('/usr/') || prefix === '/') return [];
  return ['--ro-bind', prefix, prefix];
}

// ---------------------------------------------------------------------------------------------------------
// The process pool: plain JavaScript evaluated in a worker thread, so that it runs whatever loader the caller
// uses (tsx in tests, compiled dist/ for users). It spawns each job with a minimal environment of its own (bwrap,
// the sandbox's init, keeps the environment it was started with, readable in /proc/1/environ: never the caller's,
// which may hold secrets), feeds stdin and the program (fd 3), keeps output up to the limit, and at the wall-time or
// output limit kills the sandbox's init (its PID namespace then ends, taking every process along, and bwrap, its
// parent, reaps it and exits), or the job's process group when there is no sandbox. Killing the outer bwrap instead
// would orphan the init, leaving a zombie for the machine's init to reap.

interface PoolJob {
  argv: string[];
  stdin: string;
  /** Written to the job's fd 3 (bwrap copies it into the sandbox), or null for none. */
  program: string | null;
  /** bwrap reports the host pid of the sandbox's init on fd 4 (--json-status-fd): killing it ends the sandbox. */
  statusFd: boolean;
  wallMs: number;
  outputBytes: number;
}

interface PoolResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  timedOut: boolean;
  outputExceeded: boolean;
  spawnError: string | null;
}

const POOL_SOURCE = String.raw`
const { workerData } = require('node:worker_threads');
const { spawn } = require('node:child_process');
const { jobs, workers, done, port } = workerData;

function runOne(job) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const stdio = ['pipe', 'pipe', 'pipe', job.program !== null ? 'pipe' : 'ignore'];
    if (job.statusFd) stdio.push('pipe');
    let child;
    try {
      child = spawn(job.argv[0], job.argv.slice(1), { stdio, detached: true, env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' } });
    } catch (err) {
      resolve({ exitCode: null, signal: null, stdout: '', stderr: '', wallMs: 0, timedOut: false, outputExceeded: false, spawnError: String(err) });
      return;
    }
    const out = [], err = [];
    let kept = 0, timedOut = false, outputExceeded = false, spawnError = null, exit = null, initPid = null, status = '';
    const kill = () => { try { process.kill(initPid !== null ? initPid : -child.pid, 'SIGKILL'); } catch {} };
    if (job.statusFd) child.stdio[4].on('data', (chunk) => {
      status += chunk.toString('utf8');
      const match = /"child-pid"\s*:\s*(\d+)/.exec(status);
      if (match && initPid === null) initPid = Number(match[1]);
    });
    const timer = setTimeout(() => { timedOut = true; kill(); }, job.wallMs);
    const collect = (chunks) => (chunk) => {
      const room = job.outputBytes - kept;
      if (chunk.length > room) {
        if (room > 0) chunks.push(chunk.subarray(0, room));
        kept = job.outputBytes;
        if (!outputExceeded) { outputExceeded = true; kill(); }
        return;
      }
      chunks.push(chunk);
      kept += chunk.length;
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    for (const stream of child.stdio) if (stream) stream.on('error', () => {});
    child.on('error', (e) => { spawnError = String(e); });
    child.stdin.end(job.stdin);
    if (job.program !== null) child.stdio[3].end(job.program);
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      resolve({ exitCode: exit ? exit.code : null, signal: exit ? exit.signal : null, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), wallMs, timedOut, outputExceeded, spawnError });
    };
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // A process that escaped the group could hold the pipes open: give the output a moment, then stop reading.
      setTimeout(() => { for (const stream of child.stdio) if (stream) stream.destroy(); finish(); }, 200).unref();
    });
    child.on('close', finish);
  });
}

const reply = (message) => {
  port.postMessage(message);
  Atomics.store(done, 0, 1);
  Atomics.notify(done, 0);
};
(async () => {
  const results = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(workers, jobs.length) }, async () => {
    while (next < jobs.length) { const i = next++; results[i] = await runOne(jobs[i]); }
  }));
  return results;
})().then((results) => reply({ results }), (err) => reply({ error: String((err && err.stack) || err) }));
`;

/** Runs the pool in a worker thread and blocks this thread until every job has ended. */
function runPoolSync(jobs: PoolJob[], workers: number): PoolResult[] {
  const done = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(POOL_SOURCE, { eval: true, workerData: { jobs, workers, done, port: port2 }, transferList: [port2] });
  // Every job ends by its own wall limit, so the whole batch has a bound; past it the pool itself has failed (its
  // 'error' event cannot arrive while this thread waits), and the wait ends with an error instead of hanging.
  const longestWallMs = Math.max(...jobs.map((job) => job.wallMs));
  const deadline = Date.now() + Math.ceil(jobs.length / workers) * (longestWallMs + 2000) + 30_000;
  try {
    while (Atomics.load(done, 0) === 0) {
      Atomics.wait(done, 0, 0, 1000);
      if (Date.now() > deadline) throw new Error(`sandbox pool: no results past the longest time its ${jobs.length} jobs could take (the pool's worker thread failed)`);
    }
    const reply = receiveMessageOnPort(port1)?.message as { results?: PoolResult[]; error?: string } | undefined;
    if (reply?.results === undefined) throw new Error(`sandbox pool failed: ${reply?.error ?? 'finished without results'}`);
    return reply.results;
  } finally {
    port1.close();
    void worker.terminate();
  }
}

/** A run's status from how it ended: our limits first, then the interpreter's own out-of-memory message. */
function classify(language: Language, raw: PoolResult, isolation: 'bwrap' | 'none'): RunResult {
  if (raw.spawnError !== null) throw new Error(`sandbox: could not start a run: ${raw.spawnError}`);
  let { exitCode, signal } = raw;
  // bwrap exits with 128 + n when the program dies of signal n.
  if (isolation === 'bwrap' && exitCode !== null && exitCode > 128 && exitCode < 128 + 65) {
    signal = signalName(exitCode - 128);
    exitCode = null;
  }
  if (isolation === 'bwrap' && exitCode !== null && exitCode !== 0 && /^bwrap: /m.test(raw.stderr) && raw.stdout === '') {
    // The sandbox itself failed (not the program): never score that as the program's error.
    throw new Error(`sandbox: bwrap failed: ${raw.stderr.trim().slice(0, 500)}`);
  }
  let status: RunStatus;
  if (raw.outputExceeded) status = 'output_limit';
  else if (raw.timedOut || signal === 'SIGXCPU') status = 'timeout';
  else if (RUNNERS[language].outOfMemory.test(raw.stderr)) status = 'memory_limit';
  else if (exitCode === 0) status = 'ok';
  else status = 'runtime_error';
  return { status, exitCode, signal, stdout: raw.stdout, stderr: raw.stderr, wallMs: raw.wallMs };
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 15: 'SIGTERM', 24: 'SIGXCPU', 25: 'SIGXFSZ' };

function signalName(n: number): string {
  return SIGNALS[n] ?? `signal ${n}`;
}

/** Whether a run's stderr says the program did not compile (a check run then confirms it). */
export function looksLikeSyntaxError(language: Language, stderr: string): boolean {
  return RUNNERS[language].syntaxError.test(stderr);
}
