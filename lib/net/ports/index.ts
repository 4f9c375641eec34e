/**
 * The registry: every port kind, one line each, in the order --help lists them; the first is the
 * default. A port is its file here (options, checks, features, help) and a factory of the same name
 * in native/net/ports/registry.cc. resolve.ts reads this list; nothing else in TypeScript names ports.
 */
export { user } from './user';
export { loopback } from './loopback';
export { tap } from './tap';
export { sink } from './sink';
export { source } from './source';
export { js } from './js';
export { switchPort } from './switch';
