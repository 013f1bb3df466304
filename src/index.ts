// The r1ts library: everything the `r1` command can do, a TypeScript user can do from here.
export * from './tensor/index.ts';
export * from './nn/index.ts';
export * from './models/dense.ts';
export { UserError } from './util/errors.ts';
