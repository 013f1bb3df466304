// A command's settings as one table (field -> zod schema, flag, help), from which come its commander command and
// options (help showing each default), the validation of a --config JSON file and of flags, and the messages naming
// the flag or the file and field. Precedence: defaults, then the file, then flags, then the table's rules (required
// flags, which a --resume takes from its run's run.json when not given; cross-field checks); the library trusts the
// result. Settings shared by several commands: shared-fields.ts.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { readRunConfig } from '../io/checkpoint.ts';
import type { Device, Precision } from '../tensor/index.ts';
import { UserError } from '../util/errors.ts';
import { selectDevice } from './device.ts';

/** Number schemas the commands' tables share. */
export const positiveInt = z.number().int().positive();
export const nonNegativeInt = z.number().int().nonnegative();
export const nonNegative = z.number().nonnegative();
export const fraction = z.number().min(0).max(1);

export interface Field<T> {
  schema: z.ZodType<T>;
  /** commander flag spec; null: settable in --config only. */
  flag: string | null;
  help: string;
}

export type Fields<C> = { [K in keyof C]: Field<C[K]> };

/** What a command's table cannot say field by field. */
export interface SettingsRules<C> {
  /**
   * Text settings whose default, '', stands for "not given", each with what to give: the config fails with
   * `--flag: what to give` when one is still empty after the file and the flags.
   */
  required?: Partial<Record<keyof C, string>>;
  /** Checks across fields, run last (they throw a UserError naming the flag). */
  check?: (config: C) => void;
}

/** A command's words around its options: the one-line summary in `r1 --help` and the paragraph of its own --help. */
export interface CommandText {
  summary?: string;
  description: string;
}

export class Settings<C extends object> {
  private readonly fileSchema: z.ZodType;

  /** `command` is the command's name (a subcommand's after its group's: 'reward-model train'), for messages ("not a setting of r1 zero"). */
  constructor(readonly command: string, readonly fields: Fields<C>, readonly defaults: C, readonly rules: SettingsRules<C> = {}) {
    this.fileSchema = z.strictObject(Object.fromEntries(this.entries().map(([k, f]) => [k, f.schema.optional()])));
  }

  private entries(): Array<[string, Field<unknown>]> {
    return Object.entries(this.fields) as Array<[string, Field<unknown>]>;
  }

  /** Adds `--config` and one option per flagged field, its help ending in the default (none for '', "not given"; "required" for a required one). */
  addOptions(command: Command): void {
    command.option('--config <file.json>', `JSON object of settings (the field names of r1 ${this.command}'s config); flags override it`);
    for (const [key, field] of this.entries()) {
      if (field.flag === null) continue;
      const fallback = (this.defaults as unknown as Record<string, unknown>)[key];
      const required = this.rules.required?.[key as keyof C] !== undefined;
      const suffix = required ? ' (required)' : fallback === null || fallback === false || fallback === '' ? '' : ` (default: ${String(fallback)})`;
      command.option(field.flag, `${field.help}${suffix}`);
    }
  }

  /** Reads and validates a --config JSON file (every field optional). */
  readFile(file: string): Partial<C> {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new UserError(`${file}: cannot read a JSON config (${(error as Error).message})`);
    }
    const parsed = this.fileSchema.safeParse(raw);
    if (!parsed.success) {
      const where = (path: PropertyKey[]) => `${file}: field "${path.join('.') || '(root)'}"`;
      throw new UserError(parsed.error.issues.map((issue) => issue.code === 'unrecognized_keys'
        ? issue.keys.map((key) => `${where([...issue.path, key])}: not a setting of r1 ${this.command}`).join('; ')
        : `${where(issue.path)}: ${issue.message}`).join('; '));
    }
    return parsed.data as Partial<C>;
  }

  /** Flags (commander's parsed values) and the optional --config file -> a validated config. */
  fromFlags(flags: Record<string, unknown>): C {
    const fromFile = typeof flags.config === 'string' ? this.readFile(flags.config) : {};
    const config: Record<string, unknown> = { ...(this.defaults as unknown as Record<string, unknown>), ...fromFile };
    for (const [key, field] of this.entries()) {
      const value = flags[key];
      if (value === undefined || field.flag === null) continue;
      // Flag values arrive as strings: a field that does not take the string is read as a number.
      const asGiven = field.schema.safeParse(value);
      const check = asGiven.success || typeof value !== 'string' ? asGiven : field.schema.safeParse(value.trim() === '' ? NaN : Number(value));
      if (!check.success) throw new UserError(`${flagName(field.flag)} ${JSON.stringify(value)}: ${check.error.issues.map((i) => i.message).join('; ')}`);
      config[key] = check.data;
    }
    // A resume needs only --out: what a required setting names (the data, the model) is the run's own.
    const run = config.resume === true && typeof config.out === 'string' ? readRunConfig(config.out) : null;
    for (const [key, what] of Object.entries(this.rules.required ?? {}) as Array<[string, string]>) {
      if (config[key] === '' && run !== null && this.fields[key as keyof C].schema.safeParse(run[key]).success) config[key] = run[key];
      if (config[key] === '') throw new UserError(`${flagName(this.fields[key as keyof C].flag) ?? key}: ${what}`);
    }
    this.rules.check?.(config as unknown as C);
    return config as unknown as C;
  }

  /**
   * Adds the command (the last word of `command`) under `parent`, with its text and options; `run` gets the
   * validated config and commander's flags (for options outside the table, such as --dashboard). A table with a
   * `device` (and `precision`) has that device selected first, so that a missing GPU fails before any work.
   */
  register(parent: Command, text: CommandText, run: (config: C, flags: Record<string, unknown>) => Promise<void>): Command {
    const command = parent.command(this.command.split(' ').at(-1)!);
    if (text.summary !== undefined) command.summary(text.summary);
    command.description(text.description);
    this.addOptions(command);
    return command.action((flags: Record<string, unknown>) => {
      const config = this.fromFlags(flags);
      const { device, precision } = config as { device?: Device; precision?: Precision };
      if (device !== undefined) selectDevice(device, precision);
      return run(config, flags);
    });
  }
}

/** `--seed` of the flag spec '--seed <n>'. */
function flagName(flag: string | null): string | null {
  return flag === null ? null : flag.split(' ')[0];
}
