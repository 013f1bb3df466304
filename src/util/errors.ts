/**
 * An error the user can fix (a bad file, field, flag or shape). Its message names the thing at fault; the CLI
 * prints it as one line without a stack trace.
 */
export class UserError extends Error {
  override name = 'UserError';
}
